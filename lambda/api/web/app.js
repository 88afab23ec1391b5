// The DreamBooth Pipeline web page: plain JavaScript, no build step, no dependencies.
// Every call goes to the API this page was served from, with the key the user saved.
"use strict";

(() => {
  const KEY_STORE = "dreambooth.apiKey";
  const HISTORY_STORE = "dreambooth.generations";
  const HISTORY_MAX = 24;
  const WAIT_S = 20; // POST /generations waits this long for the result (the API caps it)
  const POLL_MS = 2000;
  const STATUS_REFRESH_MS = 15000;
  const RETRY_LIMIT_MS = 30 * 60 * 1000; // stop retrying a 503 after half an hour
  const ENDPOINT_STATES = {
    none: "no endpoint yet (a trained model is deployed to create it)",
    creating: "being created",
    updating: "being updated to a new model",
    in_service: "in service",
    failed: "failed",
    asleep: "asleep (the next generation wakes it up)",
    waking: "waking up",
  };
  const NOT_DEPLOYABLE = ["validating", "training", "deploying"];
  const UNAVAILABLE = {
    asleep: "The endpoint is waking up",
    waking: "The endpoint is waking up",
    creating: "The endpoint is being created",
    updating: "The endpoint is being updated",
    none: "There is no endpoint yet",
    failed: "The endpoint failed",
  };

  // The script's own URL is <api>/web/app.js, whatever URL the page was opened with.
  const apiBase = new URL("../", document.currentScript.src);
  const iamMode = document.documentElement.dataset.apiAuth === "iam";
  const $ = (id) => document.getElementById(id);
  let statusTimer = null;
  let cancelWait = null; // ends the current cancellable sleep
  let stopRequested = false; // "Stop waiting" was pressed during this generation

  class ApiError extends Error {
    constructor(status, body, retryAfter) {
      const error = (body && body.error) || {};
      super(error.message || `the API answered ${status}`);
      this.status = status;
      this.code = error.code || (status ? `HTTP ${status}` : "NetworkError");
      this.fields = error.fields || [];
      this.requestId = error.request_id || null;
      this.retryAfterS = retryAfter === null || retryAfter === undefined ? null : parseInt(retryAfter, 10);
    }
  }

  class Cancelled extends Error {}

  function savedKey() {
    return localStorage.getItem(KEY_STORE);
  }

  async function call(method, path, body) {
    const headers = { "x-api-key": savedKey() || "" };
    const init = { method, headers, cache: "no-store" };
    if (body !== undefined) {
      headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(new URL(path, apiBase), init);
    } catch (error) {
      throw new ApiError(0, { error: { code: "NetworkError", message: `the API could not be reached (${error.message})` } });
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (error) {
      data = null;
    }
    if (!response.ok) {
      throw new ApiError(response.status, data, response.headers.get("Retry-After"));
    }
    return { status: response.status, data };
  }

  function sleep(ms, cancellable) {
    return new Promise((resolve, reject) => {
      if (cancellable && stopRequested) {
        reject(new Cancelled("stopped waiting"));
        return;
      }
      const timer = setTimeout(() => {
        cancelWait = null;
        resolve();
      }, ms);
      if (cancellable) {
        cancelWait = () => {
          clearTimeout(timer);
          reject(new Cancelled("stopped waiting"));
        };
      }
    });
  }

  // --- errors -------------------------------------------------------------

  function showError(box, error) {
    box.replaceChildren();
    if (!error) {
      box.hidden = true;
      return;
    }
    const head = document.createElement("p");
    head.textContent = error instanceof ApiError ? `${error.code}: ${error.message}` : String(error.message || error);
    box.append(head);
    if (error.fields && error.fields.length) {
      const list = document.createElement("ul");
      for (const field of error.fields) {
        const item = document.createElement("li");
        item.textContent = `${field.field}: ${field.message}`;
        list.append(item);
      }
      box.append(list);
    }
    if (error.status === 403) {
      const hint = document.createElement("p");
      hint.textContent = iamMode
        ? "This API needs SigV4-signed requests (apiAuth=iam), which this page cannot make."
        : "Check the API key: forget it and enter it again.";
      box.append(hint);
    }
    if (error.requestId) {
      const id = document.createElement("p");
      id.className = "hint";
      id.textContent = `Request id: ${error.requestId}`;
      box.append(id);
    }
    box.hidden = false;
  }

  // --- key ------------------------------------------------------------------

  function showKeyState() {
    const key = savedKey();
    $("key-form").hidden = Boolean(key);
    $("key-saved").hidden = !key;
    $("key-tail").textContent = key ? `ends in …${key.slice(-4)}` : "";
    $("generate").disabled = !key || iamMode;
    $("refresh-status").disabled = !key || iamMode;
    $("progress").textContent = key ? "" : "Save the API key to start.";
  }

  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (!key) return;
    localStorage.setItem(KEY_STORE, key);
    $("api-key").value = "";
    showKeyState();
    start();
  });

  $("forget-key").addEventListener("click", () => {
    localStorage.removeItem(KEY_STORE);
    clearInterval(statusTimer);
    statusTimer = null;
    showKeyState();
    $("api-key").focus();
  });

  // --- status ---------------------------------------------------------------

  async function refreshStatus() {
    if (!savedKey() || iamMode) return null;
    try {
      const { data } = await call("GET", "status");
      renderStatus(data);
      renderModels((await call("GET", "models")).data);
      showError($("status-error"), null);
      return data;
    } catch (error) {
      showError($("status-error"), error);
      return null;
    }
  }

  // "2026-11-20T11:00:00Z" -> "2026-11-20 11:00" (UTC, as the registry records it)
  function shortTime(iso) {
    return iso ? iso.replace("T", " ").slice(0, 16) : "";
  }

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text;
    row.append(td);
    return td;
  }

  function renderModels(listing) {
    const body = $("models").tBodies[0];
    body.replaceChildren();
    for (const model of listing.models) {
      const row = document.createElement("tr");
      row.dataset.model = model.model_id;
      row.className = model.live ? "live" : "";
      cell(row, model.model_id);
      cell(row, model.live ? "live" : model.status);
      cell(row, shortTime(model.updated_at || model.created_at));
      const action = cell(row, "");
      if (!model.live && model.artifact_uri && !NOT_DEPLOYABLE.includes(model.status)) {
        const button = document.createElement("button");
        button.type = "button";
        button.textContent = "Make live";
        button.setAttribute("aria-label", `Make ${model.model_id} live`);
        button.addEventListener("click", () => makeLive(model.model_id));
        action.append(button);
      }
      if (model.status === "failed" && model.retryable === true) {
        // A transient failure (no capacity, spot, internal error): train the same files again.
        const retry = document.createElement("button");
        retry.type = "button";
        retry.textContent = "Retry";
        retry.title = model.failure_reason || "";
        retry.setAttribute("aria-label", `Retry training ${model.model_id}`);
        retry.addEventListener("click", () => retrain(model.model_id, retry));
        action.append(retry);
      }
      body.append(row);
    }
    if (!listing.models.length) {
      const row = document.createElement("tr");
      cell(row, "no model trained yet").colSpan = 4;
      body.append(row);
    }
  }

  // PUT /models/live: the pipeline's deployment updates the endpoint; the live model serves meanwhile.
  async function makeLive(modelId) {
    if (!window.confirm(`Put ${modelId} live? The endpoint is updated in a few minutes; the current model serves until then.`)) {
      return;
    }
    showError($("status-error"), null);
    try {
      const { data } = await call("PUT", "models/live", { model_id: modelId });
      $("switch-result").textContent = data.state === "already_live"
        ? `${modelId} is already live.`
        : `Deploying ${modelId}: the endpoint is being updated; the current model serves until it is done.`;
    } catch (error) {
      $("switch-result").textContent = "";
      showError($("status-error"), error);
    }
    refreshStatus();
  }

  // POST /models/{id}/retrain: one click, one retrain (the button is disabled at once; the API
  // refuses a second start with 409 anyway).
  async function retrain(modelId, button) {
    button.disabled = true;
    showError($("status-error"), null);
    try {
      const { data } = await call("POST", `models/${encodeURIComponent(modelId)}/retrain`);
      $("switch-result").textContent =
        `Retraining ${modelId} on the same files (training job ${data.training_job_name}); nothing is uploaded again.`;
    } catch (error) {
      $("switch-result").textContent = "";
      showError($("status-error"), error);
    }
    refreshStatus();
  }

  function renderStatus(status) {
    const endpoint = status.endpoint;
    let state = `${endpoint.name}: ${ENDPOINT_STATES[endpoint.state] || endpoint.state}`;
    if (endpoint.failure_reason) state += ` (${endpoint.failure_reason})`;
    $("endpoint-state").textContent = state;
    $("endpoint-state").dataset.state = endpoint.state;
    const live = status.live_model;
    $("live-model").textContent = live
      ? [live.model_id, live.train_loss !== undefined ? `train loss ${live.train_loss}` : null,
         live.updated_at ? `since ${shortTime(live.updated_at)} UTC` : null].filter(Boolean).join(" · ")
      : "none yet: upload photos under datasets/<name>/ to train one";
    $("live-prompt").textContent = (live && live.instance_prompt) || "–";
    const list = $("training");
    list.replaceChildren();
    for (const model of status.training) {
      const item = document.createElement("li");
      item.textContent = `${model.model_id}: ${model.status}` + (model.updated_at ? ` (since ${shortTime(model.updated_at)} UTC)` : "");
      list.append(item);
    }
    if (!status.training.length) {
      const item = document.createElement("li");
      item.textContent = "nothing training";
      list.append(item);
    }
    $("status-updated").textContent = `Updated ${new Date().toLocaleTimeString()}`;
  }

  $("refresh-status").addEventListener("click", refreshStatus);

  // --- generating -----------------------------------------------------------

  // Calls `request`; on 503 with Retry-After, says why, counts down and tries again.
  async function withRetries(request) {
    const started = Date.now();
    for (;;) {
      try {
        return await request();
      } catch (error) {
        const retryable = error instanceof ApiError && error.status === 503 && error.retryAfterS !== null;
        if (!retryable || Date.now() - started > RETRY_LIMIT_MS) throw error;
        const status = await refreshStatus();
        const state = status && status.endpoint.state;
        const why = UNAVAILABLE[state] || "The API is busy";
        for (let left = error.retryAfterS; left > 0; left -= 1) {
          $("progress").textContent = `${why}, retrying in ${left} s. (${error.message})`;
          await sleep(1000, true);
        }
        $("progress").textContent = `${why}, retrying now…`;
      }
    }
  }

  function generationRequest() {
    const [width, height] = $("size").value.split("x").map(Number);
    const request = {
      prompt: $("prompt").value,
      num_images: Number($("num-images").value),
      width,
      height,
      steps: Number($("steps").value),
      guidance_scale: Number($("guidance").value),
      wait: WAIT_S,
    };
    if ($("negative-prompt").value) request.negative_prompt = $("negative-prompt").value;
    if ($("seed").value !== "") request.seed = Number($("seed").value);
    return request;
  }

  $("generate-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    showError($("error"), null);
    stopRequested = false;
    $("generate").disabled = true;
    $("cancel").hidden = false;
    try {
      let { data: generation } = await withRetries(() => call("POST", "generations", generationRequest()));
      remember(generation.id);
      renderGeneration(generation);
      while (generation.status === "queued" || generation.status === "running") {
        $("progress").textContent = `Generating (${generation.status})…`;
        await sleep(POLL_MS, true);
        ({ data: generation } = await withRetries(() => call("GET", `generations/${generation.id}`)));
        renderGeneration(generation);
      }
      $("progress").textContent = generation.status === "succeeded"
        ? `Done: ${generation.images.length} image(s).`
        : `The generation failed: ${generation.error || "no reason given"}`;
    } catch (error) {
      if (error instanceof Cancelled) {
        $("progress").textContent = "Stopped waiting. A started generation still finishes and appears after a reload.";
      } else {
        $("progress").textContent = "";
        showError($("error"), error);
      }
    } finally {
      cancelWait = null;
      $("cancel").hidden = true;
      $("generate").disabled = !savedKey();
      refreshStatus();
    }
  });

  $("cancel").addEventListener("click", () => {
    stopRequested = true; // a request in flight finishes; the next wait ends at once
    if (cancelWait) cancelWait();
  });

  // --- gallery --------------------------------------------------------------

  function history() {
    try {
      const ids = JSON.parse(localStorage.getItem(HISTORY_STORE) || "[]");
      return Array.isArray(ids) ? ids.filter((id) => typeof id === "string") : [];
    } catch (error) {
      return [];
    }
  }

  function remember(id) {
    const ids = [id, ...history().filter((other) => other !== id)].slice(0, HISTORY_MAX);
    localStorage.setItem(HISTORY_STORE, JSON.stringify(ids));
  }

  function forget(id) {
    localStorage.setItem(HISTORY_STORE, JSON.stringify(history().filter((other) => other !== id)));
  }

  function fact(list, name, value) {
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    dd.textContent = value;
    dd.dataset.fact = name.toLowerCase().replace(/\s+/g, "-");
    list.append(dt, dd);
  }

  // "42 to 45"; seeds wrap at 2^32 (every seed shown can be sent back), then they are listed.
  function seedText(seeds) {
    const last = seeds[seeds.length - 1];
    return last - seeds[0] === seeds.length - 1 ? `${seeds[0]} to ${last}` : seeds.join(", ");
  }

  function renderGeneration(generation) {
    const parameters = generation.parameters;
    let card = document.querySelector(`article[data-id="${CSS.escape(generation.id)}"]`);
    if (!card) {
      card = document.createElement("article");
      card.className = "generation";
      card.dataset.id = generation.id;
      $("gallery").prepend(card);
    }
    card.dataset.status = generation.status;
    card.replaceChildren();

    const title = document.createElement("h3");
    title.textContent = generation.prompt;
    const state = document.createElement("p");
    state.className = "state";
    state.textContent = generation.status;
    card.append(title, state);

    const images = document.createElement("div");
    images.className = "images";
    generation.images.forEach((image, index) => {
      const figure = document.createElement("figure");
      const img = document.createElement("img");
      img.src = image.url;
      img.width = parameters.width;
      img.height = parameters.height;
      img.alt = `Image ${index + 1} of ${parameters.num_images} for “${generation.prompt}”, seed ${image.seed}`;
      img.loading = "lazy";
      const caption = document.createElement("figcaption");
      caption.textContent = `seed ${image.seed}`;
      const link = document.createElement("a");
      link.href = image.url;
      link.append(img);
      figure.append(link, caption);
      images.append(figure);
    });
    for (let i = generation.images.length; i < parameters.num_images && generation.status !== "failed"; i += 1) {
      const placeholder = document.createElement("div");
      placeholder.className = "placeholder";
      placeholder.textContent = "generating…";
      images.append(placeholder);
    }
    card.append(images);

    const facts = document.createElement("dl");
    facts.className = "facts";
    fact(facts, "Seed", generation.images.length > 1
      ? seedText(generation.images.map((image) => image.seed)) : String(parameters.seed));
    fact(facts, "Steps", String(parameters.steps));
    fact(facts, "Guidance", String(parameters.guidance_scale));
    fact(facts, "Size", `${parameters.width} × ${parameters.height}`);
    fact(facts, "Model", generation.model_id);
    if (parameters.negative_prompt) fact(facts, "Negative prompt", parameters.negative_prompt);
    if (generation.timings && generation.timings.total_ms !== undefined) {
      fact(facts, "Time", `${(generation.timings.total_ms / 1000).toFixed(1)} s`);
    }
    fact(facts, "Created", generation.created_at);
    if (generation.images.length) fact(facts, "Links expire", generation.images[0].expires_at);
    card.append(facts);

    if (generation.error) {
      const error = document.createElement("p");
      error.className = "error";
      error.textContent = generation.error;
      card.append(error);
    }
    $("gallery-empty").hidden = true;
  }

  // Brings back the generations made in this browser (their image links are signed anew);
  // one still queued or running is looked at again until it ends.
  async function loadGallery() {
    const ids = history();
    for (const id of ids.slice().reverse()) {
      try {
        const { data } = await call("GET", `generations/${id}`);
        renderGeneration(data);
        if (data.status === "queued" || data.status === "running") followLater(id);
      } catch (error) {
        if (error.status === 404) {
          forget(id); // expired (generationTtlDays)
        } else {
          showError($("error"), error);
          return;
        }
      }
    }
  }

  function followLater(id) {
    setTimeout(async () => {
      try {
        const { data } = await call("GET", `generations/${id}`);
        renderGeneration(data);
        if (data.status === "queued" || data.status === "running") followLater(id);
      } catch (error) {
        if (error.status === 503) followLater(id);
      }
    }, POLL_MS * 2);
  }

  function start() {
    if (!savedKey() || iamMode) return;
    refreshStatus();
    loadGallery();
    clearInterval(statusTimer);
    statusTimer = setInterval(() => {
      if (document.visibilityState === "visible") refreshStatus();
    }, STATUS_REFRESH_MS);
  }

  $("iam-notice").hidden = !iamMode;
  showKeyState();
  start();
})();
