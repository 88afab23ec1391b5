"""What moto's SageMaker lacks for this pipeline, added on top of moto's own backend.

moto marks training jobs Completed and endpoints InService the moment they are created, and has
no UpdateEndpoint. `SageMakerSimulator` patches moto's backend so that:

- training jobs stay InProgress for `training_s` seconds, then complete (with a
  `train_avg_loss` metric, TrainingTimeInSeconds / BillableTimeInSeconds and a model.tar.gz
  written to their S3 output path), fail with `fail_training`, or are stopped by SageMaker
  with `stop_training` as SecondaryStatus (e.g. "MaxWaitTimeExceeded": spot capacity never came);
- endpoints stay Creating for `endpoint_s` seconds, then go InService, or Failed with
  `fail_endpoint_create`, and announce it through `on_endpoint_settled` (SageMaker's
  "Endpoint State Change" event);
- UpdateEndpoint exists: the endpoint is Updating for `endpoint_s` seconds while the old config
  keeps serving, then serves the new config, or (with `fail_endpoint_update`) rolls back to the
  old one, InService with a FailureReason, as SageMaker does;
- InvokeEndpoint (sagemaker-runtime) answers like the JumpStart Stable Diffusion model does for
  `Accept: application/json;jpeg` ({"generated_images": [<base64 JPEG>], "prompt": ...}), but with
  a PLACEHOLDER image: a flat colour with "PLACEHOLDER", the model, prompt and seed written on it
  (no model runs). It answers only while the endpoint exists and serves a config whose model
  exists (InService, or Updating while the old config keeps serving); otherwise it raises
  SageMaker's ValidationError, as the real runtime does for an endpoint that cannot serve.

With `client_for_role` set (the harness sets it to `IamEnforcement.client`), SageMaker's own S3
access runs with the job's or the model's execution role, as in AWS: a training job lists and
reads each input channel (an `S3Prefix` channel is listed with `s3:ListBucket`, then each object
read) and the `sagemaker_submit_directory` script, and writes its artifact with the training
role; an endpoint's model data is read with the model's ExecutionRoleArn when the endpoint is
created or updated. A refused read fails the job ("ClientError: ... AccessDenied") or the
endpoint, as SageMaker does.

Everything it simulates is recorded in `timeline` (seconds since start, event, detail), so tests
can check what served when.
"""

from __future__ import annotations

import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Optional
from unittest import mock
from urllib.parse import unquote

import boto3
from moto.core.exceptions import JsonRESTError
from moto.sagemaker import models as sm_models
from moto.sagemaker import responses as sm_responses
from moto.sagemaker.exceptions import ValidationError
from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

PLACEHOLDER_ACCEPT = "application/json;jpeg"
"""The only answer format the simulated model produces (the API's worker asks for it)."""


class RuntimeValidationError(JsonRESTError):
    """What sagemaker-runtime answers when an endpoint cannot take an invocation."""

    code = 400

    def __init__(self, message: str):
        super().__init__("ValidationError", message)


@dataclass
class SageMakerSimulator:
    training_s: float = 0.0
    endpoint_s: float = 0.0
    train_loss: Optional[float] = 0.0421
    fail_training: Optional[str] = None
    stop_training: Optional[str] = None
    """SecondaryStatus of a job SageMaker stops (status Stopped), e.g. MaxWaitTimeExceeded, Interrupted."""
    fail_endpoint_create: Optional[str] = None
    fail_endpoint_update: Optional[str] = None
    region: str = "us-east-1"
    timeline: list[tuple[float, str, str]] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)
    on_endpoint_settled: Optional[Callable[[str, str], None]] = None
    """Called (endpoint name, status) when an endpoint settles, as SageMaker's EventBridge event."""
    client_for_role: Optional[Callable[..., Any]] = None
    """(service, role ARN) -> a boto3 client signed as that role; None: unsigned reads (no IAM)."""

    def __post_init__(self) -> None:
        self._start = time.monotonic()
        self.started_at = datetime.now(timezone.utc)
        """Wall-clock time of offset 0 in `timeline`."""
        self._lock = threading.RLock()
        self._jobs: dict[str, float] = {}  # name -> ready at
        self._endpoints: dict[str, dict[str, Any]] = {}  # name -> pending operation
        self._stack: Optional[ExitStack] = None
        self._timers: list[threading.Timer] = []
        self._read_failures: dict[str, str] = {}  # job or endpoint name -> why SageMaker could not read

    # ---- reading the record ----

    def log(self, event: str, detail: str) -> None:
        with self._lock:
            self.timeline.append((round(time.monotonic() - self._start, 3), event, detail))

    def count(self, call: str) -> int:
        return sum(1 for name, _ in self.calls if name == call)

    def serving_history(self, endpoint_name: str) -> list[Optional[str]]:
        """The config that served at each DescribeEndpoint the pipeline made (None = nothing served)."""
        return [detail.split("serving=")[1] or None for _, event, detail in self.timeline
                if event == "describe" and detail.startswith(endpoint_name + " ")]

    # ---- patching moto ----

    def __enter__(self) -> "SageMakerSimulator":
        backend_cls = sm_models.SageMakerModelBackend
        self._stack = ExitStack()
        patches = {
            "create_training_job": self._create_training_job(backend_cls.create_training_job),
            "describe_training_job": self._describe_training_job(backend_cls.describe_training_job),
            "create_endpoint": self._create_endpoint(backend_cls.create_endpoint),
            "describe_endpoint": self._describe_endpoint(backend_cls.describe_endpoint),
            "update_endpoint": lambda backend, **kwargs: self._update_endpoint(backend, **kwargs),
            "delete_endpoint": self._delete_endpoint(backend_cls.delete_endpoint),
        }
        for name, replacement in patches.items():
            self._stack.enter_context(mock.patch.object(backend_cls, name, replacement, create=True))
        self._stack.enter_context(
            mock.patch.object(sm_responses.SageMakerResponse, "update_endpoint", _update_endpoint_response, create=True)
        )
        sim = self

        def invoke_endpoint(response: Any) -> Any:
            # moto reads EndpointName from the query, but boto3 puts it in the path.
            name = unquote(response.path.rstrip("/").split("/")[-2])
            body = response.body.decode() if isinstance(response.body, bytes) else (response.body or "")
            answer, content_type = sim._invoke_endpoint(response.sagemakerruntime_backend, name,
                                                         response.headers.get("Accept"), body)
            return 200, {"Content-Type": content_type, "x-Amzn-Invoked-Production-Variant": "AllTraffic"}, answer

        self._stack.enter_context(mock.patch.object(SageMakerRuntimeResponse, "invoke_endpoint", invoke_endpoint))
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._stack is not None
        for timer in self._timers:
            timer.cancel()
        self._stack.close()

    def _settle_later(self, backend: Any, endpoint_name: str) -> None:
        """Endpoints settle on their own after `endpoint_s`, and announce it like SageMaker does."""
        def settle() -> None:
            with self._lock:
                endpoint = backend.endpoints.get(endpoint_name)
                pending = self._endpoints.pop(endpoint_name, None)
                if endpoint is None or pending is None:
                    return  # already settled by a DescribeEndpoint, or deleted
                self._finish_endpoint(endpoint, pending)
                status = endpoint.endpoint_status
            if self.on_endpoint_settled:
                self.on_endpoint_settled(endpoint_name, status)

        timer = threading.Timer(self.endpoint_s, settle)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    # -- training jobs --

    def _create_training_job(self, original: Any) -> Any:
        sim = self

        def create_training_job(backend: Any, **kwargs: Any) -> Any:
            job = original(backend, **kwargs)
            failure = sim._read_training_inputs(job)
            with sim._lock:
                if failure:
                    sim._read_failures[job.training_job_name] = failure
                sim.calls.append(("create_training_job", job.training_job_name))
                sim._jobs[job.training_job_name] = time.monotonic() + sim.training_s
                job.training_job_status = "InProgress"
                job.secondary_status = "Training"
                job.final_metric_data_list = []
            sim.log("training-started", job.training_job_name)
            return job

        return create_training_job

    def _describe_training_job(self, original: Any) -> Any:
        sim = self

        def describe_training_job(backend: Any, training_job_name: str) -> dict[str, Any]:
            job = backend.training_jobs.get(training_job_name)
            with sim._lock:
                ready_at = sim._jobs.get(training_job_name)
                if job is not None and ready_at is not None and job.training_job_status == "InProgress" \
                        and time.monotonic() >= ready_at:
                    sim._finish_job(job)
            return original(backend, training_job_name)

        return describe_training_job

    def _s3(self, role_arn: Optional[str]) -> Any:
        if self.client_for_role is not None and role_arn:
            return self.client_for_role("s3", role_arn)
        return boto3.client("s3", region_name=self.region)

    def _read_s3(self, role_arn: Optional[str], uri: str, *, prefix: bool) -> Optional[str]:
        """Read what SageMaker downloads for a channel or model; the error SageMaker reports, or None."""
        from botocore.exceptions import ClientError

        s3 = self._s3(role_arn)
        bucket, _, key = uri[len("s3://"):].partition("/")
        try:
            if prefix:
                keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
                        for o in page.get("Contents", [])]
                if not keys:
                    return f"ClientError: No S3 objects found under S3 URL \"{uri}\""
            else:
                keys = [key]
            for each in keys:
                s3.get_object(Bucket=bucket, Key=each)["Body"].read()
        except ClientError as error:
            return f"ClientError: Data download failed: {error}"
        return None

    def _read_training_inputs(self, job: Any) -> Optional[str]:
        for channel in job.input_data_config or []:
            source = channel.get("DataSource", {}).get("S3DataSource", {})
            if source.get("S3Uri"):
                failure = self._read_s3(job.role_arn, source["S3Uri"], prefix=source.get("S3DataType") == "S3Prefix")
                if failure:
                    return failure
        script = (job.hyper_parameters or {}).get("sagemaker_submit_directory", "").strip('"')
        if script.startswith("s3://"):
            return self._read_s3(job.role_arn, script, prefix=False)
        return None

    def _read_model_data(self, backend: Any, config_name: str) -> Optional[str]:
        config = backend.endpoint_configs.get(config_name)
        for variant in (config.production_variants if config else []):
            model = backend._models.get(variant.get("ModelName"))
            if model is None:
                continue
            for container in [model.primary_container or {}, *(model.containers or [])]:
                source = (container.get("ModelDataSource") or {}).get("S3DataSource") or {}
                if source.get("S3Uri"):
                    failure = self._read_s3(model.execution_role_arn, source["S3Uri"],
                                            prefix=source.get("S3DataType") == "S3Prefix")
                elif container.get("ModelDataUrl"):
                    failure = self._read_s3(model.execution_role_arn, container["ModelDataUrl"], prefix=False)
                else:
                    failure = None
                if failure:
                    return failure
        return None

    def _finish_job(self, job: Any) -> None:
        read_failure = self._read_failures.pop(job.training_job_name, None)
        if read_failure:
            job.training_job_status = "Failed"
            job.secondary_status = "Failed"
            job.failure_reason = read_failure
            self.log("training-failed", f"{job.training_job_name} {read_failure}")
            return
        if self.stop_training:
            job.training_job_status = "Stopped"
            job.secondary_status = self.stop_training
            self.log("training-stopped", f"{job.training_job_name} {self.stop_training}")
            return
        if self.fail_training:
            job.training_job_status = "Failed"
            job.secondary_status = "Failed"
            job.failure_reason = self.fail_training
            self.log("training-failed", job.training_job_name)
            return
        job.training_job_status = "Completed"
        job.secondary_status = "Completed"
        job.training_time_in_seconds = job.billable_time_in_seconds = max(1, round(self.training_s))
        if self.train_loss is not None:
            job.final_metric_data_list = [
                {"MetricName": "train_avg_loss", "Value": self.train_loss, "Timestamp": job.creation_time}
            ]
        bucket, _, key = job.model_artifacts["S3ModelArtifacts"][len("s3://"):].partition("/")
        self._s3(job.role_arn).put_object(Bucket=bucket, Key=key, Body=b"simulated model")
        self.log("training-completed", job.training_job_name)

    # -- endpoints --

    def _create_endpoint(self, original: Any) -> Any:
        sim = self

        def create_endpoint(backend: Any, endpoint_name: str, endpoint_config_name: str, tags: Any) -> Any:
            endpoint = original(backend, endpoint_name, endpoint_config_name, tags)
            failure = sim._read_model_data(backend, endpoint_config_name)
            with sim._lock:
                if failure:
                    sim._read_failures[endpoint_name] = failure
                sim.calls.append(("create_endpoint", endpoint_config_name))
                endpoint.endpoint_status = "Creating"
                sim._endpoints[endpoint_name] = {"kind": "create", "config": endpoint_config_name,
                                                 "ready_at": time.monotonic() + sim.endpoint_s}
            sim.log("endpoint-creating", f"{endpoint_name} {endpoint_config_name}")
            sim._settle_later(backend, endpoint_name)
            return endpoint

        return create_endpoint

    def _update_endpoint(self, backend: Any, endpoint_name: str, endpoint_config_name: str) -> Any:
        with self._lock:
            endpoint = backend.endpoints.get(endpoint_name)
            if endpoint is None:
                raise ValidationError(message=f"Could not find endpoint '{endpoint_name}'.")
            if endpoint.endpoint_status != "InService":
                raise ValidationError(
                    message=f"Cannot update in-progress endpoint '{endpoint_name}' ({endpoint.endpoint_status}).")
            backend.describe_endpoint_config(endpoint_config_name)  # raises when it does not exist
            failure = self._read_model_data(backend, endpoint_config_name)
            if failure:
                self._read_failures[endpoint_name] = failure
            self.calls.append(("update_endpoint", endpoint_config_name))
            endpoint.endpoint_status = "Updating"
            endpoint.failure_reason = None
            self._endpoints[endpoint_name] = {"kind": "update", "config": endpoint_config_name,
                                              "ready_at": time.monotonic() + self.endpoint_s}
        self.log("endpoint-updating", f"{endpoint_name} {endpoint.endpoint_config_name}->{endpoint_config_name}")
        self._settle_later(backend, endpoint_name)
        return endpoint

    def _describe_endpoint(self, original: Any) -> Any:
        sim = self

        def describe_endpoint(backend: Any, endpoint_name: str) -> dict[str, Any]:
            with sim._lock:
                endpoint = backend.endpoints.get(endpoint_name)
                pending = sim._endpoints.get(endpoint_name)
                if endpoint is not None and pending and time.monotonic() >= pending["ready_at"]:
                    sim._finish_endpoint(endpoint, pending)
                    del sim._endpoints[endpoint_name]
                if endpoint is not None:
                    serving = "" if endpoint.endpoint_status in ("Creating", "Failed") else endpoint.endpoint_config_name
                    sim.log("describe", f"{endpoint_name} status={endpoint.endpoint_status} serving={serving}")
            return original(backend, endpoint_name)

        return describe_endpoint

    def _finish_endpoint(self, endpoint: Any, pending: dict[str, Any]) -> None:
        read_failure = self._read_failures.pop(endpoint.endpoint_name, None)
        if pending["kind"] == "create":
            if self.fail_endpoint_create or read_failure:
                endpoint.endpoint_status = "Failed"
                endpoint.failure_reason = self.fail_endpoint_create or read_failure
                self.log("endpoint-failed", endpoint.endpoint_name)
            else:
                endpoint.endpoint_status = "InService"
                self.log("endpoint-in-service", f"{endpoint.endpoint_name} {endpoint.endpoint_config_name}")
            return
        if self.fail_endpoint_update or read_failure:
            endpoint.endpoint_status = "InService"  # SageMaker rolls back to the previous config
            endpoint.failure_reason = self.fail_endpoint_update or read_failure
            self.log("endpoint-update-rolled-back", f"{endpoint.endpoint_name} {endpoint.endpoint_config_name}")
        else:
            endpoint.endpoint_config_name = pending["config"]
            endpoint.endpoint_status = "InService"
            self.log("endpoint-updated", f"{endpoint.endpoint_name} {pending['config']}")

    def _delete_endpoint(self, original: Any) -> Any:
        sim = self

        def delete_endpoint(backend: Any, endpoint_name: str) -> None:
            original(backend, endpoint_name)
            sim.calls.append(("delete_endpoint", endpoint_name))
            sim._endpoints.pop(endpoint_name, None)
            sim.log("endpoint-deleted", endpoint_name)

        return delete_endpoint


    # -- InvokeEndpoint --

    def _invoke_endpoint(self, runtime: Any, endpoint_name: str, accept: Optional[str], body: str) -> tuple[str, str]:
        import base64
        import json

        backend = sm_models.sagemaker_backends[runtime.account_id][runtime.region_name]
        with self._lock:
            endpoint = backend.endpoints.get(endpoint_name)
            if endpoint is not None:
                # Settle a pending create/update that is due, as a DescribeEndpoint would.
                pending = self._endpoints.get(endpoint_name)
                if pending and time.monotonic() >= pending["ready_at"]:
                    self._finish_endpoint(endpoint, pending)
                    del self._endpoints[endpoint_name]
            status = endpoint.endpoint_status if endpoint is not None else None
            config_name = endpoint.endpoint_config_name if endpoint is not None else None
        self.calls.append(("invoke_endpoint", endpoint_name))
        if endpoint is None:
            self.log("invoke-refused", f"{endpoint_name} does not exist")
            raise RuntimeValidationError(f"Endpoint {endpoint_name} of account {runtime.account_id} not found.")
        if status not in ("InService", "Updating"):
            self.log("invoke-refused", f"{endpoint_name} status={status}")
            raise RuntimeValidationError(f"Endpoint {endpoint_name} is not in service (status: {status}).")
        config = backend.endpoint_configs.get(config_name)
        models = [v.get("ModelName") for v in (config.production_variants if config else [])]
        if not models or any(m not in backend._models for m in models):
            self.log("invoke-refused", f"{endpoint_name} config {config_name} has no model")
            raise RuntimeValidationError(f"Endpoint {endpoint_name} serves no model (config {config_name}).")
        if accept != PLACEHOLDER_ACCEPT:
            raise RuntimeValidationError(f"the simulated model answers Accept: {PLACEHOLDER_ACCEPT} only, not {accept!r}")
        try:
            payload = json.loads(body or "{}")
        except ValueError:
            raise RuntimeValidationError("the simulated model expects a JSON body") from None
        try:
            prompt = str(payload["prompt"])
            seed = None if payload.get("seed") is None else int(payload["seed"])
            count = int(payload.get("num_images_per_prompt", 1))
            width, height = int(payload.get("width", 512)), int(payload.get("height", 512))
        except (KeyError, TypeError, ValueError) as error:
            raise RuntimeValidationError(f"the simulated model cannot read this request ({error!r})") from None
        if not 1 <= count <= PLACEHOLDER_MAX_IMAGES or min(width, height) < 1:
            raise RuntimeValidationError(
                f"the simulated model draws 1-{PLACEHOLDER_MAX_IMAGES} images of a positive size per call")
        images = [placeholder_jpeg(prompt, None if seed is None else seed + i, models[0], width=width, height=height)
                  for i in range(count)]
        self.log("invoke-endpoint", f"{endpoint_name} model={models[0]} seed={seed} images={count} (placeholder)")
        answer = json.dumps({"generated_images": [base64.b64encode(i).decode() for i in images], "prompt": prompt})
        return answer, "application/json"


PLACEHOLDER_MAX_SIDE = 512
PLACEHOLDER_MAX_IMAGES = 8


def placeholder_jpeg(prompt: str, seed: Optional[int], model: str, *, width: int = 512, height: int = 512) -> bytes:
    """A JPEG that is plainly not a generated image: a flat colour (from the seed) with text on it.

    Scaled down to at most PLACEHOLDER_MAX_SIDE pixels a side, keeping the requested aspect ratio.
    """
    import io
    import textwrap

    from PIL import Image, ImageDraw, ImageFont

    scale = min(1.0, PLACEHOLDER_MAX_SIDE / max(width, height, 1))
    size = (max(64, int(width * scale)), max(64, int(height * scale)))
    tone = (seed or 0) * 2654435761 % 2**24
    background = (64 + (tone >> 16) % 128, 64 + (tone >> 8) % 128, 64 + tone % 128)
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    font_px = max(10, size[0] // 26)
    font = ImageFont.load_default(size=font_px)
    lines = ["PLACEHOLDER", "SageMaker emulated: no model ran", f"model: {model}", f"seed: {seed}", "prompt:"]
    lines += textwrap.wrap(prompt, width=max(10, int((size[0] - 16) / (font_px * 0.55))))[:6]
    y = 8
    for line in lines:
        draw.text((8, y), line, fill=(255, 255, 255), font=font)
        y += int(font_px * 1.4)
    draw.rectangle((0, 0, size[0] - 1, size[1] - 1), outline=(255, 255, 255), width=3)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def _update_endpoint_response(self: Any) -> Any:
    """moto has no UpdateEndpoint action: this one answers it like SageMaker does."""
    from moto.core.responses import ActionResult

    endpoint = self.sagemaker_backend.update_endpoint(
        endpoint_name=self._get_param("EndpointName"),
        endpoint_config_name=self._get_param("EndpointConfigName"),
    )
    return ActionResult({"EndpointArn": endpoint.arn})
