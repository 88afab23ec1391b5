"""POST /generations and GET /generations/{id}: create, dispatch, wait for and show generations.

The image work happens in the worker function (worker.py), started with an asynchronous Lambda
invocation, so no request depends on the model finishing within API Gateway's 29 s.
"""

from __future__ import annotations

import json
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from botocore.exceptions import ClientError

import records
import spec
from aws import Clients
from endpoint import EndpointWatcher
from errors import Conflict, NotFound, Unavailable
from records import FAILED, LIVE_POINTER_ID, QUEUED, RUNNING, SEED_LIMIT, TERMINAL, image_seed
from settings import Settings
from wake import Wakeup, sleep_state

REQUEST_SCHEMA = "GenerationRequest"
# Guidance scale is kept to this many decimals: finer steps change nothing in the image, and
# DynamoDB numbers cannot hold the tiniest floats JSON allows (e.g. 5e-324).
GUIDANCE_DECIMALS = 4
POLL_INTERVAL_S = 0.25
# A worker that has not recorded anything this long after its own timeout has died.
STALE_GRACE_S = 60
DOWNLOAD_NAME_CHARS = 60


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    num_images: int
    width: int
    height: int
    steps: int
    guidance_scale: float
    seed: Optional[int] = None
    negative_prompt: Optional[str] = None
    model_id: Optional[str] = None
    wait: int = 0

    @classmethod
    def from_body(cls, body: Any) -> "GenerationRequest":
        values = {**spec.defaults(REQUEST_SCHEMA), **spec.validate(REQUEST_SCHEMA, body)}
        values["guidance_scale"] = round(float(values["guidance_scale"]), GUIDANCE_DECIMALS)
        return cls(**values)


def download_name(prompt: str, seed: int) -> str:
    """A stable file name for an image: the prompt (lower case, letters and digits, at most
    DOWNLOAD_NAME_CHARS) and the seed, e.g. "a-photo-of-sks-dog-on-the-sea-seed42.jpg"."""
    slug = "-".join(re.findall(r"[a-z0-9]+", prompt.lower()))[:DOWNLOAD_NAME_CHARS].strip("-") or "image"
    return f"{slug}-seed{seed}.jpg"


@dataclass
class Generations:
    settings: Settings
    clients: Clients
    endpoint: EndpointWatcher
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    new_id: Callable[[], str] = field(default=lambda: str(uuid.uuid4()))
    new_seed: Callable[[], int] = field(default=lambda: secrets.randbelow(SEED_LIMIT))

    def __post_init__(self) -> None:
        self.wakeup = Wakeup(self.settings, self.clients, self.clock)

    def create(self, request: GenerationRequest) -> tuple[int, dict[str, Any]]:
        """Record and dispatch a generation; answer (202, queued) or (200, finished) within `wait`.

        A sleeping endpoint (deleted after idleMinutes) is woken: 503 EndpointWaking, nothing recorded."""
        pointer = self.wakeup.touch()
        model_id = self._resolve_model(request.model_id, pointer)
        if sleep_state(pointer):
            self.wakeup.wake(pointer)
        self.endpoint.state().require_in_service()
        now = self.clock()
        generation_id = self.new_id()
        seed = request.seed if request.seed is not None else self.new_seed()
        item = {
            "generationId": generation_id,
            "status": QUEUED,
            "prompt": request.prompt,
            "negativePrompt": request.negative_prompt,
            "numImages": request.num_images,
            "width": request.width,
            "height": request.height,
            "steps": request.steps,
            "guidanceScale": request.guidance_scale,
            "seed": seed,
            "modelId": model_id,
            "endpointName": self.endpoint.name,
            "createdAt": records.iso(now),
            "expiresAt": int(now) + self.settings.generation_ttl_days * 86400,
        }
        self.clients.dynamodb.put_item(
            TableName=self.settings.generations_table,
            Item=records.to_item(item),
            ConditionExpression="attribute_not_exists(generationId)",
        )
        self._dispatch(generation_id)
        wait_s = min(request.wait, self.settings.max_wait_s)
        if wait_s > 0:
            finished = self._wait(generation_id, deadline=now + wait_s)
            if finished is not None:
                return 200, self.present(finished)
        return 202, self.present(item)

    def get(self, generation_id: str) -> dict[str, Any]:
        item = self._load(generation_id)
        if item is None:
            raise NotFound(f"no generation with id {generation_id!r} (records expire after "
                           f"{self.settings.generation_ttl_days} days)")
        return self.present(item)

    def present(self, item: dict[str, Any]) -> dict[str, Any]:
        """The API's view of a record: presigned image URLs, seeds, timings, reason of failure."""
        status, error = item["status"], item.get("error")
        stale = self._stale_reason(item)
        if stale:
            status, error = FAILED, stale
        seed = int(item["seed"])
        parameters = {
            "num_images": item["numImages"], "width": item["width"], "height": item["height"],
            "steps": item["steps"], "guidance_scale": item["guidanceScale"], "seed": seed,
        }
        if item.get("negativePrompt") is not None:
            parameters["negative_prompt"] = item["negativePrompt"]
        expires_at = records.iso(self.clock() + self.settings.image_url_expiry_s)
        images = [self._image(key, item["prompt"], image_seed(seed, index), expires_at)
                  for index, key in enumerate(item.get("imageKeys") or [])]
        body: dict[str, Any] = {
            "id": item["generationId"], "status": status, "prompt": item["prompt"],
            "model_id": item["modelId"], "parameters": parameters, "images": images,
            "timings": self._timings(item), "created_at": item["createdAt"],
        }
        for source, target in (("startedAt", "started_at"), ("finishedAt", "finished_at")):
            if item.get(source):
                body[target] = item[source]
        if error:
            body["error"] = error
        return body

    def _resolve_model(self, requested: Optional[str], pointer: Optional[dict[str, Any]]) -> str:
        live = pointer.get("liveModelId") if pointer else None
        if requested is None:
            if not live:
                raise Conflict("no model has been trained and put live yet: upload a dataset under "
                               "datasets/<name>/ to train one, or deploy a trained one with PUT /models/live")
            return live
        if requested == LIVE_POINTER_ID or self._registry_item(requested) is None:
            raise NotFound(f"no model with id {requested!r}")
        if requested != live:
            raise Conflict(f"model {requested!r} is not the live model (live: {live or 'none'}); the endpoint "
                           "serves one model at a time: switch with PUT /models/live first")
        return requested

    def _registry_item(self, model_id: str) -> Optional[dict[str, Any]]:
        answer = self.clients.dynamodb.get_item(
            TableName=self.settings.registry_table, Key=records.key("modelId", model_id), ConsistentRead=True
        )
        return records.from_item(answer["Item"]) if "Item" in answer else None

    def _dispatch(self, generation_id: str) -> None:
        try:
            self.clients.lambda_.invoke(
                FunctionName=self.settings.worker_function_name,
                InvocationType="Event",
                Payload=json.dumps({"generationId": generation_id}).encode(),
            )
        except ClientError as error:
            reason = f"could not start the worker: {error.response.get('Error', {}).get('Code', 'error')}"
            self._mark_failed(generation_id, reason)
            raise Unavailable(f"{reason}; nothing was generated, try again", retry_after_s=5) from None

    def _mark_failed(self, generation_id: str, reason: str) -> None:
        self.clients.dynamodb.update_item(
            TableName=self.settings.generations_table,
            Key=records.key("generationId", generation_id),
            UpdateExpression="SET #s = :failed, #e = :reason, finishedAt = :now",
            ExpressionAttributeNames={"#s": "status", "#e": "error"},
            ExpressionAttributeValues=records.to_item(
                {":failed": FAILED, ":reason": reason, ":now": records.iso(self.clock())}
            ),
        )

    def _load(self, generation_id: str) -> Optional[dict[str, Any]]:
        answer = self.clients.dynamodb.get_item(
            TableName=self.settings.generations_table,
            Key=records.key("generationId", generation_id),
            ConsistentRead=True,
        )
        return records.from_item(answer["Item"]) if "Item" in answer else None

    def _wait(self, generation_id: str, deadline: float) -> Optional[dict[str, Any]]:
        while True:
            item = self._load(generation_id)
            if item is not None and item["status"] in TERMINAL:
                return item
            remaining = deadline - self.clock()
            if remaining <= 0:
                return None
            self.sleep(min(POLL_INTERVAL_S, remaining))

    def _image(self, key: str, prompt: str, seed: int, expires_at: str) -> dict[str, Any]:
        name = download_name(prompt, seed)
        return {"url": self._presign(key), "seed": seed, "expires_at": expires_at, "file_name": name,
                # S3 answers this one with Content-Disposition: attachment, so a browser saves it under
                # `name` (a link's download attribute does not work across origins).
                "download_url": self._presign(key, attachment=name)}

    def _presign(self, key: str, attachment: Optional[str] = None) -> str:
        signer = self.clients.signing_s3(self.settings.image_signer_role_arn, self.settings.image_url_expiry_s)
        params = {"Bucket": self.settings.bucket_name, "Key": key}
        if attachment:
            params["ResponseContentDisposition"] = f'attachment; filename="{attachment}"'
        return signer.generate_presigned_url("get_object", Params=params, ExpiresIn=self.settings.image_url_expiry_s)

    def _stale_reason(self, item: dict[str, Any]) -> Optional[str]:
        """A queued or running record that no live worker can still finish reads as failed."""
        now = self.clock()
        if item["status"] == RUNNING and item.get("startedAt"):
            limit = self.settings.worker_timeout_s + STALE_GRACE_S
            if now - records.parse_iso(item["startedAt"]) > limit:
                return f"the worker stopped without recording a result (no answer within {limit} s)"
        if item["status"] == QUEUED:
            limit = self.settings.worker_max_event_age_s + self.settings.worker_timeout_s + STALE_GRACE_S
            if now - records.parse_iso(item["createdAt"]) > limit:
                return f"the worker never started this generation (waited {limit} s)"
        return None

    @staticmethod
    def _timings(item: dict[str, Any]) -> dict[str, int]:
        timings: dict[str, int] = {}
        created = records.parse_iso(item["createdAt"])
        if item.get("startedAt"):
            timings["queued_ms"] = round((records.parse_iso(item["startedAt"]) - created) * 1000)
        if item.get("modelMs") is not None:
            timings["model_ms"] = int(item["modelMs"])
        if item.get("finishedAt"):
            timings["total_ms"] = round((records.parse_iso(item["finishedAt"]) - created) * 1000)
        return timings
