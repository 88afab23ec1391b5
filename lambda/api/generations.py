"""POST /generations and GET /generations/{id}: record, send, wait for and show generations.

A generation is recorded `queued`, then its image requests go to the asynchronous endpoint
(inference.py). SageMaker queues them while the endpoint updates or starts an instance from
zero; the result handler (results.py) turns SageMaker's notices into `succeeded` or `failed`.
When the endpoint cannot queue at all (deleted out of band, failed, or still being created),
the record stays `queued` and pending: the endpoint is re-created (endpoint.Healer) and the
dispatcher (dispatch.py) sends pending requests once it is in service. No request is refused
for the endpoint's state; only "no model is live yet" is (409).

States: queued (with `queue_reason`) -> succeeded | failed (with `error`).
"""

from __future__ import annotations

import functools
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import records
import spec
from aws import Clients
from dreambooth_shared.contract import LIVE_POINTER_ID
from endpoint import CREATING, UPDATING, EndpointState, EndpointWatcher, Healer
from errors import Conflict, NotFound
from inference import Submitter, error_text, not_accepted
from pending import mark_pending, pending_fields, unsent_expiry_reason
from records import FAILED, QUEUED, SEED_LIMIT, TERMINAL, image_seed
from settings import Settings

REQUEST_SCHEMA = "GenerationRequest"
# Guidance scale is kept to this many decimals: finer steps change nothing in the image, and
# DynamoDB numbers cannot hold the tiniest floats JSON allows (e.g. 5e-324).
GUIDANCE_DECIMALS = 4
POLL_INTERVAL_S = 0.25
# Beyond SageMaker's own limits (TTL in the queue + the invocation), before a silent record reads failed.
STALE_GRACE_S = 300
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
        self.submitter = Submitter(self.settings, self.clients)
        self.healer = Healer(lambda: self.clients.stepfunctions, self.settings.deploy_state_machine_arn, self.clock)

    def create(self, request: GenerationRequest) -> tuple[int, dict[str, Any]]:
        """Record and send a generation; answer (202, queued) or (200, finished) within `wait`."""
        pointer = self._pointer()
        model_id = self._resolve_model(request.model_id, pointer)
        state = self.endpoint.state()
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
            "images": {},
        }
        # Recorded as sent before sending, so that a notice can never arrive before its record;
        # corrected at once when the endpoint does not take the requests.
        item.update(
            {"submitted": request.num_images, "submittedAt": records.iso(now)}
            if state.accepts_requests
            else pending_fields(0, now)
        )
        self.clients.dynamodb.put_item(
            TableName=self.settings.generations_table,
            Item=records.to_item(item),
            ConditionExpression="attribute_not_exists(generationId)",
        )
        if state.accepts_requests:
            sent, error = self.submitter.submit(item)
            if error is not None:
                item.update(pending_fields(sent, now))
                mark_pending(self.clients, self.settings, generation_id, sent, now, error_text(error))
                if not_accepted(error):
                    state = self.endpoint.state(fresh=True)
        if state.needs_healing:
            self.healer.heal(model_id, state)
        wait_s = min(request.wait, self.settings.max_wait_s)
        # Waiting is worth it only when an instance is there to run the request; otherwise answer
        # at once with why it is queued (an instance starting, the endpoint coming back).
        if wait_s > 0 and not item.get("pendingSince") and state.instances != 0:
            finished = self._wait(generation_id, deadline=now + wait_s)
            if finished is not None:
                return 200, self.present(finished)
        return 202, self.present(item, state)

    def get(self, generation_id: str) -> dict[str, Any]:
        item = self._load(generation_id)
        if item is None:
            raise NotFound(
                f"no generation with id {generation_id!r} (records expire after "
                f"{self.settings.generation_ttl_days} days)"
            )
        return self.present(item)

    def present(self, item: dict[str, Any], state: Optional[EndpointState] = None) -> dict[str, Any]:
        """The API's view of a record: presigned image URLs, seeds, timings, why it waits or failed."""
        status, error = item["status"], item.get("error")
        reason = None
        if status == QUEUED:
            state = state or self.endpoint.state()
            stale = self._stale_reason(item, state)
            if stale:
                status, error = FAILED, stale
            else:
                reason = self._queue_reason(item, state)
        seed = int(item["seed"])
        parameters = {
            "num_images": item["numImages"],
            "width": item["width"],
            "height": item["height"],
            "steps": item["steps"],
            "guidance_scale": item["guidanceScale"],
            "seed": seed,
        }
        if item.get("negativePrompt") is not None:
            parameters["negative_prompt"] = item["negativePrompt"]
        images = []
        if item.get("imageKeys"):
            # One signer and one stated expiry for the answer's URLs (aws.py: a URL never outlives
            # the credentials that signed it).
            now = self.clock()
            signer, expires_in = self.clients.signing_s3(
                self.settings.image_signer_role_arn, self.settings.image_url_expiry_s
            )
            sign = functools.partial(self._presign, signer, expires_in)
            images = [
                self._image(sign, key, item["prompt"], image_seed(seed, index), records.iso(now + expires_in))
                for index, key in enumerate(item["imageKeys"])
            ]
        body: dict[str, Any] = {
            "id": item["generationId"],
            "status": status,
            "prompt": item["prompt"],
            "model_id": item.get("servedModelId") or item["modelId"],
            "parameters": parameters,
            "images": images,
            "timings": self._timings(item),
            "created_at": item["createdAt"],
        }
        if item.get("finishedAt"):
            body["finished_at"] = item["finishedAt"]
        if reason:
            body["queue_reason"] = reason
        if error:
            body["error"] = error
        return body

    def _queue_reason(self, item: dict[str, Any], state: EndpointState) -> str:
        start = self.settings.instance_start_text
        if int(item.get("submitted") or 0) < int(item["numImages"]):
            if state.state == CREATING:
                return f"the endpoint is being created, usually {start}; the request is sent when it is in service"
            if state.needs_healing:
                return (
                    f"the endpoint is being re-created from the live model's configuration, usually {start}; "
                    "the request is sent when it is in service"
                )
            return "waiting to be sent to the endpoint (tried again within minutes)"
        if state.state == UPDATING:
            return "the endpoint is switching models; queued at SageMaker, served as soon as an instance is free"
        if state.instances == 0:
            return (
                f"starting an instance, usually {start} (the endpoint scaled to zero after "
                f"{self.settings.idle_text()} without work)"
            )
        return "at SageMaker: running, or waiting for a free instance"

    def _stale_reason(self, item: dict[str, Any], state: EndpointState) -> Optional[str]:
        """A queued record that can no longer get a result reads as failed, with why."""
        now = self.clock()
        ttl_s = self.settings.request_ttl_s
        if item.get("pendingSince"):
            if now - records.parse_iso(item["createdAt"]) > ttl_s + STALE_GRACE_S:
                return unsent_expiry_reason(self.settings)
            return None
        sent_at = records.parse_iso(item.get("submittedAt") or item["createdAt"])
        if state.created_at is not None and sent_at < state.created_at:
            return (
                "the endpoint was deleted while the request was queued at SageMaker, which drops its queue; "
                "send it again"
            )
        limit = ttl_s + self.settings.invocation_timeout_s + STALE_GRACE_S
        if now - sent_at > limit:
            return f"no result from SageMaker within {limit // 60} min (request TTL + invocation timeout)"
        return None

    def _resolve_model(self, requested: Optional[str], pointer: Optional[dict[str, Any]]) -> str:
        live = pointer.get("liveModelId") if pointer else None
        if requested is None:
            if not live:
                raise Conflict(
                    "no model has been trained and put live yet: upload a dataset under "
                    "datasets/<name>/ to train one, or deploy a trained one with PUT /models/live"
                )
            return live
        if requested == LIVE_POINTER_ID or self._registry_item(requested) is None:
            raise NotFound(f"no model with id {requested!r}")
        if requested != live:
            raise Conflict(
                f"model {requested!r} is not the live model (live: {live or 'none'}); the endpoint "
                "serves one model at a time: switch with PUT /models/live first"
            )
        return requested

    def _registry_item(self, model_id: str) -> Optional[dict[str, Any]]:
        answer = self.clients.dynamodb.get_item(
            TableName=self.settings.registry_table, Key=records.key("modelId", model_id), ConsistentRead=True
        )
        return records.from_item(answer["Item"]) if "Item" in answer else None

    def _pointer(self) -> Optional[dict[str, Any]]:
        answer = self.clients.dynamodb.get_item(
            TableName=self.settings.registry_table, Key=records.key("modelId", LIVE_POINTER_ID), ConsistentRead=True
        )
        return records.from_item(answer["Item"]) if "Item" in answer else None

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

    @staticmethod
    def _image(sign: Callable[..., str], key: str, prompt: str, seed: int, expires_at: str) -> dict[str, Any]:
        name = download_name(prompt, seed)
        return {
            "url": sign(key),
            "seed": seed,
            "expires_at": expires_at,
            "file_name": name,
            # S3 answers this one with Content-Disposition: attachment, so a browser saves it under
            # `name` (a link's download attribute does not work across origins).
            "download_url": sign(key, attachment=name),
        }

    def _presign(self, signer: Any, expires_in: int, key: str, attachment: Optional[str] = None) -> str:
        params = {"Bucket": self.settings.bucket_name, "Key": key}
        if attachment:
            params["ResponseContentDisposition"] = f'attachment; filename="{attachment}"'
        return signer.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in)

    @staticmethod
    def _timings(item: dict[str, Any]) -> dict[str, int]:
        timings: dict[str, int] = {}
        created = records.parse_iso(item["createdAt"])
        if item.get("finishedAt"):
            timings["total_ms"] = round((records.parse_iso(item["finishedAt"]) - created) * 1000)
        return timings
