// The DreamBooth Pipeline web page: plain JavaScript, no build step, no dependencies.
// Every call goes to the API this page was served from, with the key the user saved; photos for a
// new model go straight to the data bucket with the presigned POSTs the API answers.
"use strict";

(() => {
  const KEY_STORE = "dreambooth.apiKey";
  const HISTORY_STORE = "dreambooth.generations";
  const TRAINING_STORE = "dreambooth.training";
  const HISTORY_MAX = 24;
  const WAIT_S = 20; // POST /generations waits this long for the result (the API caps it)
  const POLL_MS = 2000;
  const TRAIN_POLL_MS = 3000;
  const STATUS_REFRESH_MS = 15000;
  const RETRY_LIMIT_MS = 30 * 60 * 1000; // stop retrying a 503 after half an hour
  const SECONDS_PER_IMAGE = 15; // on ml.g4dn.2xlarge at 512 x 512 (README, Costs)
  // Prompt ideas, from the original story and a few more; each fills the prompt around the phrase.
  const PRESETS = ["on the sea", "with a hat", "with Donald Trump", "on the beach", "in the snow",
    "as an oil painting", "in space", "in a city at night"];
  const ENDPOINT_STATES = {
    none: "no endpoint yet (a trained model is deployed to create it)",
    creating: "being created",
    updating: "being updated to a new model",
    in_service: "in service",
    failed: "failed (the next generation, or the periodic check, re-creates it)",
  };
  const NOT_DEPLOYABLE = ["validating", "training", "deploying"];
  // Why the API answers 503, and about how long it lasts, by endpoint state.
  const UNAVAILABLE = {
    creating: ["The endpoint is being created", "usually 5-10 minutes"],
    updating: ["The endpoint is being updated", "usually 5-10 minutes; the current model serves meanwhile and requests queue"],
    none: ["There is no endpoint yet", "train a model first"],
    failed: ["The endpoint failed", "see Model and training"],
  };
  const TRAIN_PHASES = {
    waiting: "Uploaded; the pipeline starts once no photo has arrived for its quiet window",
    validating: "Checking the photos",
    training: "Training on SageMaker (typically 15-30 minutes)",
    deploying: "Deploying to the endpoint (the previous model keeps serving)",
    live: "Live",
    failed: "Failed",
  };
  const FIELD_LABELS = {
    prompt: "Prompt", negative_prompt: "Negative prompt", num_images: "Images", width: "Width", height: "Height",
    steps: "Steps", guidance_scale: "Guidance", seed: "Seed", dataset: "Dataset name",
    instance_prompt: "Prompt phrase", class_prompt: "Class prompt", files: "Photos",
  };

  // The script's own URL is <api>/web/app.js, whatever URL the page was opened with.
  const apiBase = new URL("../", document.currentScript.src);
  const iamMode = document.documentElement.dataset.apiAuth === "iam";
  const $ = (id) => document.getElementById(id);
  let statusTimer = null;
  let cancelWait = null; // ends the current cancellable sleep
  let stopRequested = false; // "Stop waiting" was pressed during this generation
  let lastStatus = null;
  let busy = false; // a generation is being asked for
  let chosenPhotos = [];
  let followingTraining = false;

  class ApiError extends Error {
    constructor(status, body, retryAfter) {
      const error = (body && body.error) || {};
      super(error.message || (body && body.message) || `the API answered ${status}`);
      this.status = status;
      this.code = error.code || (status ? `HTTP ${status}` : "NetworkError");
      this.fields = error.fields || [];
      this.reasons = error.reasons || [];
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

  function element(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  // --- one time format: local time, UTC on hover ---------------------------------------------------

  const LOCAL = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

  function timeNode(iso) {
    const node = element("time");
    const date = new Date(iso);
    if (!iso || Number.isNaN(date.getTime())) return element("span", iso || "");
    node.dateTime = date.toISOString();
    node.textContent = LOCAL.format(date);
    node.title = `${date.toISOString().replace("T", " ").slice(0, 19)} UTC`;
    return node;
  }

  function elapsedText(ms) {
    const seconds = Math.max(0, Math.floor(ms / 1000));
    if (seconds < 60) return `${seconds}s`;
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return `${minutes}m${String(seconds % 60).padStart(2, "0")}s`;
    return `${Math.floor(minutes / 60)}h${String(minutes % 60).padStart(2, "0")}m`;
  }

  // --- errors: plain words and the fix; the API's own message behind "Details" ----------------------

  function plainField(field) {
    const name = String(field.field || "");
    const base = name.replace(/\[\d+\]$/, "").split(".")[0];
    let message = String(field.message || "");
    if (/must match the pattern \\S/.test(message) || /at least 1 character/.test(message)) message = "must not be empty";
    else if (/must match the pattern/.test(message)) message = "has characters that are not allowed";
    else if (message === "is required") message = "is missing";
    return `${FIELD_LABELS[base] || name}: ${message}`;
  }

  function explain(error) {
    if (!(error instanceof ApiError)) return { title: String(error.message || error), fix: "" };
    const unavailable = lastStatus && UNAVAILABLE[lastStatus.endpoint.state];
    if (error.fromBucket) {
      return { title: "The bucket refused a photo; nothing was added to the dataset.",
        fix: "Try again; if it keeps happening, upload with `dreambooth upload` and quote the details below." };
    }
    switch (error.status) {
      case 0: return { title: "The API could not be reached.", fix: "Check your internet connection and try again." };
      case 400: return { title: "Some values are not accepted.", fix: "Correct them and try again.",
        items: error.fields.map(plainField) };
      case 403: return iamMode
        ? { title: "This API needs signed requests (apiAuth=iam), which this page cannot make.", fix: "Deploy with apiAuth=apiKey." }
        : { title: "The API did not accept the key.", fix: "Forget the key and enter it again: `dreambooth web` prints it." };
      case 404: return { title: "Not found.", fix: "It may have expired; start again." };
      case 409: return { title: "Not possible right now.", fix: error.message.replace(/^./, (c) => c.toUpperCase()) };
      case 422: return { title: "The pipeline would refuse these photos; nothing was added to the dataset.",
        fix: "Remove or replace the photos named below and try again.", items: error.reasons };
      case 429: return { title: "Too many requests for this API key.", fix: "Wait a few seconds and try again (or tomorrow, if the daily quota is used up)." };
      case 503: return unavailable
        ? { title: `${unavailable[0]}.`, fix: `Try again later (${unavailable[1]}).` }
        : { title: "The service is busy.", fix: "Try again in a minute." };
      default: return { title: "Something went wrong on the server.", fix: "Try again; if it keeps happening, quote the details below." };
    }
  }

  function showError(box, error) {
    box.replaceChildren();
    if (!error) {
      box.hidden = true;
      return;
    }
    const { title, fix, items } = explain(error);
    box.append(element("p", title, "error-title"));
    if (items && items.length) {
      const list = element("ul");
      for (const item of items) list.append(element("li", item));
      box.append(list);
    }
    if (fix) box.append(element("p", fix, "error-fix"));
    if (error instanceof ApiError) {
      const details = element("details");
      details.append(element("summary", "Details"));
      const raw = [`${error.code} (HTTP ${error.status}): ${error.message}`]
        .concat(error.fields.map((f) => `${f.field}: ${f.message}`));
      if (error.requestId) raw.push(`Request id: ${error.requestId}`);
      details.append(element("pre", raw.join("\n")));
      box.append(details);
    }
    box.hidden = false;
  }

  // --- key ------------------------------------------------------------------

  function showKeyState() {
    const key = savedKey();
    $("key-form").hidden = Boolean(key);
    $("key-saved").hidden = !key;
    $("key-tail").textContent = key ? `ends in …${key.slice(-4)}` : "";
    $("refresh-status").disabled = !key || iamMode;
    $("train").disabled = !key || iamMode;
    $("progress").textContent = key ? "" : "Save the API key to start.";
    updateGenerateState();
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

  // --- Generate enabled only with a live model; prompt help from its phrase -------------------------

  function livePhrase() {
    return (lastStatus && lastStatus.live_model && lastStatus.live_model.instance_prompt) || "";
  }

  function updateGenerateState() {
    const key = savedKey();
    const live = Boolean(lastStatus && lastStatus.live_model);
    let hint = "";
    if (iamMode) hint = "";
    else if (!key) hint = "Save the API key first.";
    else if (!lastStatus) hint = "Checking for a live model…";
    else if (!live) hint = "No model is live yet: train one below (Train a new model), then generate.";
    $("generate").disabled = !key || iamMode || !live || busy;
    $("generate-hint").textContent = hint;
    $("generate-hint").hidden = !hint;
  }

  function renderPromptHelp() {
    const phrase = livePhrase();
    $("phrase-box").hidden = !phrase;
    $("presets").hidden = !phrase;
    $("phrase").textContent = phrase;
    $("prompt").placeholder = phrase ? `${phrase} on the beach` : "describe the picture, with the model's prompt phrase";
    const presets = $("presets");
    if (presets.dataset.phrase === phrase) return;
    presets.dataset.phrase = phrase;
    presets.replaceChildren();
    for (const preset of PRESETS) {
      const button = element("button", preset);
      button.type = "button";
      button.setAttribute("aria-label", `Prompt idea: ${phrase} ${preset}`);
      button.addEventListener("click", () => {
        $("prompt").value = `${phrase} ${preset}`;
        $("prompt").focus();
      });
      presets.append(button);
    }
  }

  $("insert-phrase").addEventListener("click", () => {
    const prompt = $("prompt");
    const phrase = livePhrase();
    if (!phrase || prompt.value.includes(phrase)) {
      prompt.focus();
      return;
    }
    const at = prompt.selectionStart ?? prompt.value.length;
    const before = prompt.value.slice(0, at);
    const after = prompt.value.slice(at);
    const text = `${before && !before.endsWith(" ") ? " " : ""}${phrase}${after && !after.startsWith(" ") ? " " : ""}`;
    prompt.value = before + text + after;
    prompt.focus();
    prompt.setSelectionRange(before.length + text.length, before.length + text.length);
  });

  // --- status ---------------------------------------------------------------

  async function refreshStatus() {
    if (!savedKey() || iamMode) return null;
    try {
      const { data } = await call("GET", "status");
      lastStatus = data;
      renderStatus(data);
      renderModels((await call("GET", "models")).data);
      showError($("status-error"), null);
      return data;
    } catch (error) {
      showError($("status-error"), error);
      return null;
    } finally {
      renderPromptHelp();
      updateGenerateState();
    }
  }

  function cell(row, content) {
    const td = document.createElement("td");
    if (content instanceof Node) td.append(content);
    else td.textContent = content;
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
      cell(row, timeNode(model.updated_at || model.created_at));
      const action = cell(row, "");
      if (!model.live && model.artifact_uri && !NOT_DEPLOYABLE.includes(model.status)) {
        const button = element("button", "Make live");
        button.type = "button";
        button.setAttribute("aria-label", `Make ${model.model_id} live`);
        button.addEventListener("click", () => makeLive(model.model_id));
        action.append(button);
      }
      if (model.status === "failed" && model.retryable === true) {
        // A transient failure (no capacity, spot, internal error): train the same files again.
        const retry = actionButton("Retry", `Retry training ${model.model_id}`, () => retrain(model.model_id, retry));
        retry.title = model.failure_reason || "";
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

  function since(item, iso) {
    if (!iso) return;
    item.append(" (since ", timeNode(iso), ")");
  }

  function renderStatus(status) {
    const endpoint = status.endpoint;
    let state = `${endpoint.name}: ${ENDPOINT_STATES[endpoint.state] || endpoint.state}`;
    if (endpoint.failure_reason) state += ` (${endpoint.failure_reason})`;
    $("endpoint-state").textContent = state;
    $("endpoint-state").dataset.state = endpoint.state;
    const live = status.live_model;
    const liveBox = $("live-model");
    liveBox.replaceChildren();
    if (live) {
      liveBox.append([live.model_id, live.train_loss !== undefined ? `train loss ${live.train_loss}` : null]
        .filter(Boolean).join(" · "));
      since(liveBox, live.updated_at);
    } else {
      liveBox.textContent = "none yet: train one (Train a new model)";
    }
    $("live-prompt").textContent = (live && live.instance_prompt) || "–";
    const list = $("training");
    list.replaceChildren();
    for (const model of status.training) {
      const item = element("li", `${model.model_id}: ${model.status}`);
      since(item, model.updated_at);
      list.append(item);
    }
    if (!status.training.length) list.append(element("li", "nothing training"));
    const updated = $("status-updated");
    updated.replaceChildren("Updated ", timeNode(new Date().toISOString()));
  }

  $("refresh-status").addEventListener("click", refreshStatus);

  // --- generating -----------------------------------------------------------

  // Calls `request`; on 503 with Retry-After, says why and for about how long, counts down, tries again.
  async function withRetries(request) {
    const started = Date.now();
    for (;;) {
      try {
        return await request();
      } catch (error) {
        const retryable = error instanceof ApiError && error.status === 503 && error.retryAfterS !== null;
        if (!retryable || Date.now() - started > RETRY_LIMIT_MS) throw error;
        const status = await refreshStatus();
        const [why, howLong] = UNAVAILABLE[status && status.endpoint.state] || ["The API is busy", "a moment"];
        for (let left = error.retryAfterS; left > 0; left -= 1) {
          $("progress").textContent = `${why}, retrying in ${left} s. (${howLong}; waiting ${elapsedText(Date.now() - started)} so far: ${error.message})`;
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

  // Why a generation has not finished yet, and about how long it takes.
  function waitingText(generation) {
    const images = generation.parameters.num_images;
    const drawing = `about ${images * SECONDS_PER_IMAGE} s for ${images} image(s)`;
    const reason = generation.queue_reason;
    if (reason) return `Queued: ${reason}, then ${drawing}.`;
    const state = lastStatus && lastStatus.endpoint.state;
    if (state && state !== "in_service" && UNAVAILABLE[state]) {
      const [why, howLong] = UNAVAILABLE[state];
      return `Queued: ${why.replace(/^The/, "the")} (${howLong}), then ${drawing}.`;
    }
    return `Queued: waiting for the endpoint to take it (seconds), then ${drawing}.`;
  }

  $("generate-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    showError($("error"), null);
    stopRequested = false;
    busy = true;
    updateGenerateState();
    $("cancel").hidden = false;
    try {
      let { data: generation } = await withRetries(() => call("POST", "generations", generationRequest()));
      remember(generation.id);
      renderGeneration(generation);
      while (generation.status === "queued") {
        $("progress").textContent = waitingText(generation);
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
      busy = false;
      $("cancel").hidden = true;
      updateGenerateState();
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
    const dd = element("dd");
    if (value instanceof Node) dd.append(value);
    else dd.textContent = value;
    dd.dataset.fact = name.toLowerCase().replace(/\s+/g, "-");
    list.append(element("dt", name), dd);
  }

  function reuse(generation) {
    const p = generation.parameters;
    $("prompt").value = generation.prompt;
    $("negative-prompt").value = p.negative_prompt || "";
    $("num-images").value = String(p.num_images);
    const size = `${p.width}x${p.height}`;
    if (![...$("size").options].some((o) => o.value === size)) $("size").append(new Option(`${p.width} × ${p.height}`, size));
    $("size").value = size;
    $("steps").value = String(p.steps);
    $("guidance").value = String(p.guidance_scale);
    $("seed").value = String(p.seed);
    $("progress").textContent = "Settings of that generation are in the form (same seed: same pictures).";
    $("prompt").focus();
  }

  // --- "Download all": one zip file (stored, not compressed: JPEGs do not shrink) -------------------

  const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });

  function crc32(bytes) {
    let crc = 0xffffffff;
    for (const byte of bytes) crc = CRC_TABLE[(crc ^ byte) & 0xff] ^ (crc >>> 8);
    return (crc ^ 0xffffffff) >>> 0;
  }

  function zip(files) {
    const encoder = new TextEncoder();
    const parts = [];
    const central = [];
    let offset = 0;
    for (const { name, bytes } of files) {
      const fileName = encoder.encode(name);
      const crc = crc32(bytes);
      const local = new DataView(new ArrayBuffer(30));
      [[0, 0x04034b50, 4], [4, 20, 2], [8, 0, 2], [14, crc, 4], [18, bytes.length, 4], [22, bytes.length, 4],
        [26, fileName.length, 2]].forEach(([at, value, size]) => (size === 4 ? local.setUint32(at, value, true) : local.setUint16(at, value, true)));
      const entry = new DataView(new ArrayBuffer(46));
      [[0, 0x02014b50, 4], [4, 20, 2], [6, 20, 2], [16, crc, 4], [20, bytes.length, 4], [24, bytes.length, 4],
        [28, fileName.length, 2], [42, offset, 4]].forEach(([at, value, size]) => (size === 4 ? entry.setUint32(at, value, true) : entry.setUint16(at, value, true)));
      parts.push(local, fileName, bytes);
      central.push(entry, fileName);
      offset += 30 + fileName.length + bytes.length;
    }
    const size = central.reduce((sum, part) => sum + part.byteLength, 0);
    const end = new DataView(new ArrayBuffer(22));
    [[0, 0x06054b50, 4], [8, files.length, 2], [10, files.length, 2], [12, size, 4], [16, offset, 4]]
      .forEach(([at, value, width]) => (width === 4 ? end.setUint32(at, value, true) : end.setUint16(at, value, true)));
    return new Blob([...parts, ...central, end], { type: "application/zip" });
  }

  function saveBlob(blob, name) {
    const link = element("a");
    link.href = URL.createObjectURL(blob);
    link.download = name;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60000);
  }

  async function downloadAll(generation, button) {
    button.disabled = true;
    try {
      const files = [];
      for (const image of generation.images) {
        const response = await fetch(image.url, { cache: "no-store" });
        if (!response.ok) throw new Error(`${image.file_name}: the bucket answered ${response.status}`);
        files.push({ name: image.file_name, bytes: new Uint8Array(await response.arrayBuffer()) });
      }
      const first = generation.images[0].file_name.replace(/\.jpg$/, "");
      const lastSeed = generation.images[generation.images.length - 1].seed;
      saveBlob(zip(files), `${first}-${lastSeed}.zip`);
    } catch (error) {
      showError($("error"), new Error(`The images could not be fetched for one zip file (${error.message}). `
        + "Download them one by one with their Download links (a reused bucket needs a CORS rule allowing GET from this page)."));
    } finally {
      button.disabled = false;
    }
  }

  function actionButton(text, label, onClick) {
    const button = element("button", text);
    button.type = "button";
    button.setAttribute("aria-label", label);
    button.addEventListener("click", onClick);
    return button;
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
      card = element("article", null, "generation");
      card.dataset.id = generation.id;
      $("gallery").prepend(card);
    }
    card.dataset.status = generation.status;
    card.replaceChildren();

    card.append(element("h3", generation.prompt));
    const waiting = generation.status === "queued";
    card.append(element("p", waiting ? waitingText(generation) : generation.status, "state"));

    const actions = element("div", null, "actions");
    if (generation.images.length > 1) {
      const all = actionButton("Download all", `Download all ${generation.images.length} images of “${generation.prompt}” as one zip file`,
        () => downloadAll(generation, all));
      actions.append(all);
    }
    actions.append(actionButton("Reuse these settings", `Reuse the settings of “${generation.prompt}”`, () => reuse(generation)));
    actions.append(actionButton("Remove", `Remove “${generation.prompt}” from this page's history`, () => {
      forget(generation.id);
      card.remove();
      $("gallery-empty").hidden = Boolean(document.querySelector("article.generation"));
    }));
    card.append(actions);

    const images = element("div", null, "images");
    generation.images.forEach((image, index) => {
      const figure = element("figure");
      const img = element("img");
      img.src = image.url;
      img.width = parameters.width;
      img.height = parameters.height;
      img.alt = `Image ${index + 1} of ${parameters.num_images} for “${generation.prompt}”, seed ${image.seed}`;
      img.loading = "lazy";
      const caption = element("figcaption");
      const download = element("a", "Download", "button");
      download.href = image.download_url;
      download.download = image.file_name;
      download.title = image.file_name;
      download.setAttribute("aria-label", `Download ${image.file_name}`);
      caption.append(element("span", `seed ${image.seed}`), download);
      const link = element("a");
      link.href = image.url;
      link.append(img);
      figure.append(link, caption);
      images.append(figure);
    });
    for (let i = generation.images.length; i < parameters.num_images && generation.status !== "failed"; i += 1) {
      images.append(element("div", waiting ? "waiting…" : "generating…", "placeholder"));
    }
    card.append(images);

    const facts = element("dl", null, "facts");
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
    fact(facts, "Created", timeNode(generation.created_at));
    if (generation.images.length) fact(facts, "Links expire", timeNode(generation.images[0].expires_at));
    card.append(facts);

    if (generation.error) card.append(element("p", generation.error, "error"));
    $("gallery-empty").hidden = true;
  }

  // Brings back the generations made in this browser (their image links are signed anew);
  // one still queued is looked at again until it ends.
  async function loadGallery() {
    const ids = history();
    for (const id of ids.slice().reverse()) {
      try {
        const { data } = await call("GET", `generations/${id}`);
        renderGeneration(data);
        if (data.status === "queued") followLater(id);
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
        if (data.status === "queued") followLater(id);
      } catch (error) {
        if (error.status === 503) followLater(id);
      }
    }, POLL_MS * 2);
  }

  // --- training from the browser ----------------------------------------------------------------------

  function setPhotos(files) {
    chosenPhotos = [...files];
    const bytes = chosenPhotos.reduce((sum, f) => sum + f.size, 0);
    $("photo-summary").textContent = chosenPhotos.length
      ? `${chosenPhotos.length} photo(s), ${(bytes / 1048576).toFixed(1)} MB: ${chosenPhotos.map((f) => f.name).slice(0, 5).join(", ")}${chosenPhotos.length > 5 ? ", …" : ""}`
      : "No photos chosen.";
  }

  $("photos").addEventListener("change", () => setPhotos($("photos").files));
  const dropZone = $("drop-zone");
  dropZone.addEventListener("dragover", (event) => {
    event.preventDefault();
    dropZone.classList.add("over");
  });
  dropZone.addEventListener("dragleave", () => dropZone.classList.remove("over"));
  dropZone.addEventListener("drop", (event) => {
    event.preventDefault();
    dropZone.classList.remove("over");
    setPhotos(event.dataTransfer.files);
  });

  async function uploadPhoto(upload, file) {
    const form = new FormData();
    for (const [name, value] of Object.entries(upload.fields)) form.append(name, value);
    form.append("file", file);
    let response;
    try {
      response = await fetch(upload.url, { method: "POST", body: form });
    } catch (error) {
      throw new Error(`The photo ${file.name} could not be sent to the bucket (${error.message}). If the stack reuses an existing bucket (bucketName), that bucket needs a CORS rule allowing POST from this page; or upload with \`dreambooth upload\`.`);
    }
    if (!response.ok) {
      const text = await response.text();
      const code = (text.match(/<Code>([^<]+)<\/Code>/) || [])[1] || `HTTP ${response.status}`;
      const message = (text.match(/<Message>([^<]+)<\/Message>/) || [])[1] || "";
      const error = new ApiError(response.status, { error: { code, message: `S3 refused ${file.name}: ${message}` } });
      error.fromBucket = true;
      throw error;
    }
  }

  $("train-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    showError($("train-error"), null);
    const dataset = $("dataset-name").value.trim();
    const instancePrompt = $("instance-prompt").value.trim();
    const classPrompt = $("class-prompt").value.trim();
    if (!chosenPhotos.length) {
      showError($("train-error"), new Error("Choose or drop 3-100 photos first."));
      return;
    }
    $("train").disabled = true;
    try {
      const known = (await call("GET", "models")).data.models.map((m) => m.model_id);
      const request = { dataset, instance_prompt: instancePrompt, files: chosenPhotos.map((f) => ({ name: f.name, size: f.size })) };
      if (classPrompt) request.class_prompt = classPrompt;
      $("train-progress").textContent = "Checking the photos' names and sizes…";
      const { data: upload } = await call("POST", "datasets", request);
      const byName = new Map(chosenPhotos.map((f) => [f.name, f]));
      let done = 0;
      for (const item of upload.uploads) {
        $("train-progress").textContent = `Uploading photo ${done + 1} of ${upload.uploads.length} (${item.name})…`;
        await uploadPhoto(item, byName.get(item.name));
        done += 1;
      }
      $("train-progress").textContent = "Checking the photos with the pipeline's rules…";
      const commit = { upload_id: upload.upload_id, instance_prompt: instancePrompt };
      if (classPrompt) commit.class_prompt = classPrompt;
      const { data: committed } = await call("POST", `datasets/${encodeURIComponent(dataset)}/commit`, commit);
      const training = { dataset, known, started: Date.now(), phases: [], images: committed.images.length };
      localStorage.setItem(TRAINING_STORE, JSON.stringify(training));
      $("train-progress").textContent = `${committed.images.length} photos are in datasets/${dataset}/.`
        + (committed.warnings.length ? ` (${committed.warnings.join("; ")})` : "");
      followTraining(training);
    } catch (error) {
      $("train-progress").textContent = "";
      showError($("train-error"), error);
    } finally {
      $("train").disabled = !savedKey();
    }
  });

  function showPhase(training, phase, detail) {
    const last = training.phases[training.phases.length - 1];
    if (last && last.phase === phase) return;
    training.phases.push({ phase, detail, at: Date.now() });
    localStorage.setItem(TRAINING_STORE, JSON.stringify(training));
    renderPhases(training);
  }

  function renderPhases(training) {
    const list = $("train-phases");
    list.replaceChildren();
    for (const item of training.phases) {
      const li = element("li", `[${elapsedText(item.at - training.started)}] ${TRAIN_PHASES[item.phase] || item.phase}${item.detail ? `: ${item.detail}` : ""}`);
      li.dataset.phase = item.phase;
      list.append(li);
    }
    list.hidden = !training.phases.length;
  }

  // Follows the dataset's new model until it is live or failed, with the elapsed time.
  async function followTraining(training) {
    if (followingTraining) return;
    followingTraining = true;
    renderPhases(training);
    if (!training.phases.length) showPhase(training, "waiting");
    for (;;) {
      const last = training.phases[training.phases.length - 1];
      if (last && (last.phase === "live" || last.phase === "failed")) {
        localStorage.removeItem(TRAINING_STORE);
        followingTraining = false;
        return;
      }
      $("train-progress").textContent = `Training ${training.dataset}: ${elapsedText(Date.now() - training.started)} so far.`;
      await sleep(TRAIN_POLL_MS, false);
      let models;
      try {
        models = (await call("GET", "models")).data.models;
      } catch (error) {
        continue; // a passing network or 5xx problem: look again
      }
      const fresh = models.filter((m) => m.dataset === training.dataset && !training.known.includes(m.model_id));
      if (!fresh.length) continue;
      const model = fresh.sort((a, b) => (a.created_at < b.created_at ? 1 : -1))[0];
      if (model.status === "failed") {
        showPhase(training, "failed", model.failure_reason || "the pipeline gave no reason");
        $("train-progress").textContent = `Training ${training.dataset} failed after ${elapsedText(Date.now() - training.started)}.`;
      } else if (model.status === "live" && model.live) {
        const status = await refreshStatus();
        if (status && status.endpoint.state === "in_service") {
          showPhase(training, "live", `${model.model_id}; prompt phrase “${model.instance_prompt}”`);
          $("train-progress").textContent = `Model ${model.model_id} is live after ${elapsedText(Date.now() - training.started)}. Generate with its prompt phrase above.`;
        } else {
          showPhase(training, "deploying", model.model_id);
        }
      } else {
        showPhase(training, model.status, model.model_id);
      }
    }
  }

  function resumeTraining() {
    try {
      const training = JSON.parse(localStorage.getItem(TRAINING_STORE) || "null");
      if (training && training.dataset) followTraining(training);
    } catch (error) {
      localStorage.removeItem(TRAINING_STORE);
    }
  }

  function start() {
    if (!savedKey() || iamMode) return;
    refreshStatus();
    loadGallery();
    resumeTraining();
    clearInterval(statusTimer);
    statusTimer = setInterval(() => {
      if (document.visibilityState === "visible") refreshStatus();
    }, STATUS_REFRESH_MS);
  }

  $("iam-notice").hidden = !iamMode;
  showKeyState();
  renderPromptHelp();
  start();
})();
