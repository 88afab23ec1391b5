"""The worker's job: run one generation on the endpoint and store its images under generated/<id>/.

One InvokeEndpoint call per image (num_images_per_prompt=1, seed + i modulo 2**32), each with
`Accept: application/json;jpeg`, so every call carries one base64 JPEG (never raw RGB lists) and
stays well inside InvokeEndpoint's 60 s. Every failure ends as a failed record with a reason.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

from botocore.exceptions import BotoCoreError, ClientError, ReadTimeoutError

import records
from aws import Clients
from records import FAILED, QUEUED, RUNNING, SUCCEEDED
from settings import Settings

GENERATED_PREFIX = "generated/"
REQUEST_CONTENT_TYPE = "application/json"
ACCEPT = "application/json;jpeg"
JPEG_MAGIC = b"\xff\xd8\xff"
MAX_REASON_CHARS = 500

_log = logging.getLogger(__name__)


class ModelOutputError(Exception):
    """The endpoint answered, but not with what a Stable Diffusion JumpStart model returns."""


def endpoint_payload(item: dict[str, Any], index: int) -> dict[str, Any]:
    payload = {
        "prompt": item["prompt"],
        "width": int(item["width"]),
        "height": int(item["height"]),
        "num_inference_steps": int(item["steps"]),
        "guidance_scale": float(item["guidanceScale"]),
        "num_images_per_prompt": 1,
        "seed": records.image_seed(item["seed"], index),
    }
    if item.get("negativePrompt"):
        payload["negative_prompt"] = item["negativePrompt"]
    return payload


def decode_images(body: bytes) -> list[bytes]:
    """JPEG bytes from a `application/json;jpeg` answer: {"generated_images": [<base64 JPEG>, ...]}."""
    try:
        answer = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ModelOutputError(f"the endpoint's answer is not JSON (starts with {body[:40]!r})") from None
    encoded = answer.get("generated_images") if isinstance(answer, dict) else None
    if not isinstance(encoded, list) or not encoded:
        raise ModelOutputError("the endpoint's answer has no generated_images")
    images = []
    for position, text in enumerate(encoded):
        if not isinstance(text, str):
            raise ModelOutputError(f"generated_images[{position}] is not a base64 string (raw pixels?)")
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ModelOutputError(f"generated_images[{position}] is not valid base64") from None
        if not data.startswith(JPEG_MAGIC):
            raise ModelOutputError(f"generated_images[{position}] is not a JPEG image")
        images.append(data)
    return images


def image_key(generation_id: str, index: int) -> str:
    return f"{GENERATED_PREFIX}{generation_id}/{index}.jpg"


@dataclass
class Worker:
    settings: Settings
    clients: Clients
    clock: Callable[[], float] = time.time

    def run(self, generation_id: str) -> str:
        """Process one generation; return its final status (or why it was skipped)."""
        item = self._claim(generation_id)
        if item is None:
            return "skipped"
        keys: list[str] = []
        model_ms = 0
        try:
            for index in range(int(item["numImages"])):
                started = time.perf_counter()
                answer = self.clients.sagemaker_runtime.invoke_endpoint(
                    EndpointName=item.get("endpointName") or self.settings.endpoint_name,
                    ContentType=REQUEST_CONTENT_TYPE,
                    Accept=ACCEPT,
                    Body=json.dumps(endpoint_payload(item, index)).encode(),
                )
                body = answer["Body"].read()
                model_ms += round((time.perf_counter() - started) * 1000)
                image = decode_images(body)[0]
                key = image_key(generation_id, index)
                self.clients.s3.put_object(
                    Bucket=self.settings.bucket_name, Key=key, Body=image, ContentType="image/jpeg",
                    Metadata={"generation-id": generation_id, "seed": str(records.image_seed(item["seed"], index))},
                )
                keys.append(key)
        except ClientError as error:
            details = error.response.get("Error", {})
            reason = f"{details.get('Code', 'Error')}: {details.get('Message', '')}".strip()
            return self._finish(generation_id, FAILED, keys, model_ms, f"the model failed: {reason}")
        except ReadTimeoutError:
            return self._finish(generation_id, FAILED, keys, model_ms, "the model did not answer in time")
        except ModelOutputError as error:
            return self._finish(generation_id, FAILED, keys, model_ms, str(error))
        except BotoCoreError as error:
            return self._finish(generation_id, FAILED, keys, model_ms, f"could not reach AWS: {error}")
        except Exception as error:  # a defect here must still end the record, not leave it running
            _log.exception("worker defect", extra={"generation_id": generation_id})
            reason = f"internal error in the worker ({type(error).__name__})"
            return self._finish(generation_id, FAILED, keys, model_ms, reason)
        return self._finish(generation_id, SUCCEEDED, keys, model_ms, None)

    def _claim(self, generation_id: str) -> dict[str, Any] | None:
        """Move queued -> running; None when the record is gone or another delivery took it."""
        return records.update_if(
            self.clients.dynamodb,
            TableName=self.settings.generations_table,
            Key=records.key("generationId", generation_id),
            UpdateExpression="SET #s = :running, startedAt = :now",
            ConditionExpression="#s = :queued",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=records.to_item(
                {":running": RUNNING, ":queued": QUEUED, ":now": records.iso(self.clock())}
            ),
        )

    def _finish(self, generation_id: str, status: str, keys: list[str], model_ms: int, error: str | None) -> str:
        values = {":status": status, ":keys": keys, ":ms": model_ms, ":now": records.iso(self.clock())}
        expression = "SET #s = :status, imageKeys = :keys, modelMs = :ms, finishedAt = :now"
        if error:
            values[":error"] = error[:MAX_REASON_CHARS]
            expression += ", #e = :error"
        self.clients.dynamodb.update_item(
            TableName=self.settings.generations_table,
            Key=records.key("generationId", generation_id),
            UpdateExpression=expression,
            ExpressionAttributeNames={"#s": "status", **({"#e": "error"} if error else {})},
            ExpressionAttributeValues=records.to_item(values),
        )
        return status
