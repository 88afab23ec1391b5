"""Asynchronous inference: send a generation's requests to the endpoint, and turn SageMaker's
notices into images and a finished record.

Sending (`Submitter`): one request object per image under the request prefix of the data bucket
(`<prefix><generation id>/<n>.json`, num_images_per_prompt=1 and seed + n modulo 2**32, so that each image's
seed reproduces it), each sent with InvokeEndpointAsync (`Accept: application/json;jpeg`,
InferenceId `<generation id>-<n>-<images>`, the configured request TTL and invocation timeout). SageMaker
queues them while the endpoint updates or scales out from zero, and writes each answer to the
endpoint config's S3 output path with a success or error notice on SNS.

Receiving (`Results`): a success notice -> the answer's JPEG stored as `generated/<id>/<n>.jpg`
and counted on the record (once per image, whatever SNS redelivers); the last image makes the
record `succeeded`. An error notice -> `failed` with SageMaker's reason. Records change only while
`queued`, so a late or repeated notice never rewrites a finished generation.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Callable, Optional

from botocore.exceptions import ClientError

import records
from aws import Clients
from dreambooth_shared.contract import GENERATED_PREFIX, error_code
from records import FAILED, QUEUED, SUCCEEDED
from settings import Settings

REQUEST_CONTENT_TYPE = "application/json"
ACCEPT = "application/json;jpeg"
JPEG_MAGIC = b"\xff\xd8\xff"
MAX_REASON_CHARS = 500
# InvokeEndpointAsync refuses a request for an endpoint that does not exist or cannot queue.
NOT_ACCEPTED = ("ValidationError", "ValidationException")


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


def inference_id(generation_id: str, index: int, total: int) -> str:
    """`<generation id>-<image index>-<images in the generation>` (at most 64 characters, as SageMaker allows)."""
    return f"{generation_id}-{index}-{total}"


def parse_inference_id(text: Any) -> Optional[tuple[str, int, int]]:
    """(generation id, image index, images in the generation) of an InferenceId made here, else None."""
    if not isinstance(text, str):
        return None
    generation_id, _, rest = text.rpartition("-")
    generation_id, _, index = generation_id.rpartition("-")
    if len(generation_id) != 36 or not index.isdigit() or not rest.isdigit() or int(index) >= int(rest):
        return None
    return generation_id, int(index), int(rest)


def _s3_location(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def _reason(error: ClientError) -> str:
    message = error.response.get("Error", {}).get("Message", "")
    return f"{error_code(error) or 'Error'}: {message}".strip()


@dataclass
class Submitter:
    settings: Settings
    clients: Clients

    def submit(self, item: dict[str, Any], start: int = 0) -> tuple[int, Optional[ClientError]]:
        """Send the image requests of a generation record from image `start` on, in order.

        Returns how many images are now with SageMaker (from 0), and the error that stopped the
        sending (None when all were sent). An image whose InvokeEndpointAsync failed was not
        queued, so sending it again later runs it once."""
        generation_id = item["generationId"]
        total = int(item["numImages"])
        for index in range(start, total):
            key = f"{self.settings.request_prefix}{generation_id}/{index}.json"
            try:
                self.clients.s3.put_object(
                    Bucket=self.settings.bucket_name,
                    Key=key,
                    ContentType=REQUEST_CONTENT_TYPE,
                    Body=json.dumps(endpoint_payload(item, index)).encode(),
                )
                self.clients.sagemaker_runtime.invoke_endpoint_async(
                    EndpointName=item.get("endpointName") or self.settings.endpoint_name,
                    ContentType=REQUEST_CONTENT_TYPE,
                    Accept=ACCEPT,
                    InferenceId=inference_id(generation_id, index, total),
                    InputLocation=f"s3://{self.settings.bucket_name}/{key}",
                    RequestTTLSeconds=self.settings.request_ttl_s,
                    InvocationTimeoutSeconds=self.settings.invocation_timeout_s,
                )
            except ClientError as error:
                return index, error
        return total, None


def not_accepted(error: Optional[ClientError]) -> bool:
    """InvokeEndpointAsync's refusal for an endpoint that does not exist or cannot queue (yet)."""
    return error is not None and error_code(error) in NOT_ACCEPTED


def error_text(error: ClientError) -> str:
    return _reason(error)


@dataclass
class Notice:
    generation_id: str
    index: int
    total: int
    succeeded: bool
    output_location: Optional[str] = None
    failure_reason: Optional[str] = None
    finished_at: Optional[str] = None

    @classmethod
    def parse(cls, message: Any) -> Optional["Notice"]:
        """SageMaker's asynchronous inference notice (the SNS message), or None if it is not one of ours."""
        try:
            notice = json.loads(message) if isinstance(message, str) else message
        except ValueError:
            return None
        if not isinstance(notice, dict):
            return None
        ids = parse_inference_id(notice.get("inferenceId"))
        if ids is None:
            return None
        status = notice.get("invocationStatus")
        response = notice.get("responseParameters") or {}
        return cls(
            generation_id=ids[0],
            index=ids[1],
            total=ids[2],
            succeeded=status == "Completed",
            output_location=response.get("outputLocation"),
            failure_reason=str(notice.get("failureReason") or f"invocation status {status}"),
            finished_at=notice.get("eventTime"),
        )


@dataclass
class Results:
    settings: Settings
    clients: Clients
    served_model: Callable[[], Optional[str]]
    """The model the endpoint serves now (its endpoint config's name), for the record."""
    clock: Callable[[], float]

    def handle(self, notice: Notice) -> str:
        """Apply one notice; the record's new status, or what was left alone (`ignored`)."""
        if not notice.succeeded:
            return self._fail(notice.generation_id, f"the model failed: {notice.failure_reason}")
        try:
            bucket, key = _s3_location(notice.output_location or "")
            body = self.clients.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            image = decode_images(body)[0]
        except ModelOutputError as error:
            return self._fail(notice.generation_id, str(error))
        except ClientError as error:
            if error_code(error) in ("NoSuchKey", "404"):
                return self._fail(notice.generation_id, f"SageMaker's answer {notice.output_location} is missing")
            raise
        target = image_key(notice.generation_id, notice.index)
        self.clients.s3.put_object(
            Bucket=self.settings.bucket_name,
            Key=target,
            Body=image,
            ContentType="image/jpeg",
            Metadata={"generation-id": notice.generation_id, "image": str(notice.index)},
        )
        if notice.total == 1:
            return self._finish(notice.generation_id, [target], "")  # one write for the usual one-image case
        counted = records.update_if(
            self.clients.dynamodb,
            TableName=self.settings.generations_table,
            Key=records.key("generationId", notice.generation_id),
            UpdateExpression="SET images.#n = :key ADD doneCount :one",
            ConditionExpression="#s = :queued AND attribute_not_exists(images.#n)",
            ExpressionAttributeNames={"#s": "status", "#n": str(notice.index)},
            ExpressionAttributeValues=records.to_item({":key": target, ":one": 1, ":queued": QUEUED}),
        )
        if counted is None:
            return "ignored"  # finished already, or this image was counted by an earlier delivery
        if int(counted["doneCount"]) < notice.total:
            return QUEUED
        return self._finish(
            notice.generation_id,
            [counted["images"][str(i)] for i in range(notice.total)],
            " AND doneCount = :total",
            total=notice.total,
        )

    def _finish(self, generation_id: str, keys: list[str], condition: str, **values: Any) -> str:
        """Queued -> succeeded with its image keys (and the model the endpoint serves now)."""
        values = {f":{k}": v for k, v in values.items()}
        values.update({":ok": SUCCEEDED, ":queued": QUEUED, ":keys": keys, ":now": records.iso(self.clock())})
        expression = "SET #s = :ok, imageKeys = :keys, finishedAt = :now"
        served = self.served_model()
        if served:
            values[":served"] = served
            expression += ", servedModelId = :served"
        finished = records.update_when(
            self.clients.dynamodb,
            TableName=self.settings.generations_table,
            Key=records.key("generationId", generation_id),
            UpdateExpression=expression,
            ConditionExpression="#s = :queued" + condition,
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=records.to_item(values),
        )
        return SUCCEEDED if finished else "ignored"

    def _fail(self, generation_id: str, reason: str) -> str:
        failed = records.update_when(
            self.clients.dynamodb,
            TableName=self.settings.generations_table,
            Key=records.key("generationId", generation_id),
            UpdateExpression="SET #s = :failed, #e = :reason, finishedAt = :now",
            ConditionExpression="#s = :queued",
            ExpressionAttributeNames={"#s": "status", "#e": "error"},
            ExpressionAttributeValues=records.to_item(
                {
                    ":failed": FAILED,
                    ":queued": QUEUED,
                    ":reason": reason[:MAX_REASON_CHARS],
                    ":now": records.iso(self.clock()),
                }
            ),
        )
        return FAILED if failed else "ignored"
