"""What moto's SageMaker lacks for this pipeline, added on top of moto's own backend.

moto marks training jobs Completed and endpoints InService the moment they are created, and has
no UpdateEndpoint. `SageMakerSimulator` patches moto's backend so that:

- training jobs stay InProgress for `training_s` seconds, then complete (with a
  `train_avg_loss` metric, TrainingTimeInSeconds / BillableTimeInSeconds and their output
  written to S3: `<output>/<job>/output/model.tar.gz`, or with OutputDataConfig CompressionType
  NONE the same files under `<output>/<job>/output/model/`, with `code/inference.py` among them
  only when `output_has_code`), fail with `fail_training`, or are stopped by SageMaker with
  `stop_training` as SecondaryStatus (e.g. "MaxWaitTimeExceeded": spot capacity never came);
- an endpoint serves only a model the JumpStart container could load: uncompressed model data
  (ModelDataSource S3Prefix, CompressionType None) holding `code/inference.py`, with
  SAGEMAKER_PROGRAM=inference.py and SAGEMAKER_SUBMIT_DIRECTORY=/opt/ml/model/code; otherwise
  the create fails (or the update rolls back) with that reason;
- endpoints stay Creating for `endpoint_s` seconds, then go InService, or Failed with
  `fail_endpoint_create`, and announce it through `on_endpoint_settled` (SageMaker's
  "Endpoint State Change" event);
- UpdateEndpoint exists: the endpoint is Updating for `endpoint_s` seconds while the old config
  keeps serving, then serves the new config, or (with `fail_endpoint_update`) rolls back to the
  old one, InService with a FailureReason, as SageMaker does. It is refused (ValidationException)
  between a real-time and an asynchronous config, and while a variant whose instance type changes
  (or that goes) is a scalable target of Application Auto Scaling; a registration survives an
  update that keeps the instance type (a model-only change). DeleteEndpoint deregisters the
  endpoint's scalable targets, as Application Auto Scaling does (the caller needs
  DeregisterScalableTarget for that: the IAM harness checks it);
- The model answers like the JumpStart Stable Diffusion model does for `Accept:
  application/json;jpeg` ({"generated_images": [<base64 JPEG>], "prompt": ...}), but with a
  PLACEHOLDER image: a flat colour with "PLACEHOLDER", the model, prompt and seed written on it
  (no model runs).
- InvokeEndpointAsync (asynchronous inference, for endpoint configs with AsyncInferenceConfig):
  the request joins the endpoint's queue (accepted while the endpoint exists and is InService or
  Updating; refused otherwise, as SageMaker refuses an endpoint it cannot queue for). Each
  instance runs `MaxConcurrentInvocationsPerInstance` requests at a time, `inference_s` each, with
  the config the endpoint serves when the request starts; the model reads the request object from
  `InputLocation`, writes its answer to `S3OutputPath/<uuid>.out` (or the error to
  `S3FailurePath/<uuid>-error.out`) and a success or error notice (SageMaker's JSON, `inferenceId`
  included) goes to the config's SNS topics through `on_async_notice`. A request still queued
  after its `RequestTTLSeconds` ends with an error notice, so does one longer than its
  `InvocationTimeoutSeconds`, and one for which `model_error` returns a message (a model error).
- Instance counts follow the autoscaling the stack registered (Application Auto Scaling and
  CloudWatch as moto holds them): an async endpoint starts with its InitialInstanceCount; with a
  backlog and no instance, one instance starts `scale_out_s` after the backlog appeared, only if a
  step scaling policy of the variant is the action of an alarm on `HasBacklogWithoutCapacity`; more
  instances (up to MaxCapacity) when the backlog per instance exceeds the target-tracking target;
  the last instances stop `scale_in_s` after the last work (None: the idle alarm's
  EvaluationPeriods x Period), only if an alarm on `ApproximateBacklogSize` has a step policy
  setting the capacity to MinCapacity 0. DescribeEndpoint reports the count as
  CurrentInstanceCount. Scale-out and scale-in are recorded in `timeline`.

With `client_for_role` set (the harness sets it to `IamEnforcement.client`), SageMaker's own S3
access runs with the job's or the model's execution role, as in AWS: a training job lists and
reads each input channel (an `S3Prefix` channel is listed with `s3:ListBucket`, then each object
read) and the `sagemaker_submit_directory` script, and writes its artifact with the training
role (the weights file as a multipart upload, as SageMaker uploads gigabytes: on an SSE-KMS
bucket each part needs `kms:Decrypt`); an endpoint's model data is read with the model's ExecutionRoleArn when the endpoint is
created or updated. A refused read fails the job ("ClientError: ... AccessDenied") or the
endpoint, as SageMaker does.

Everything it simulates is recorded in `timeline` (seconds since start, event, detail), so tests
can check what served when.
"""

from __future__ import annotations

import base64
import io
import json
import math
import tarfile
import threading
import time
import uuid
from collections import deque
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Optional
from unittest import mock
from urllib.parse import unquote

import boto3
from moto.applicationautoscaling.models import applicationautoscaling_backends
from moto.core.exceptions import JsonRESTError
from moto.sagemaker import models as sm_models
from moto.sagemaker import responses as sm_responses
from moto.sagemaker.exceptions import ValidationError
from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

from dreambooth_shared.contract import SCALABLE_DIMENSION, VARIANT_NAME
from emulator.clock import VirtualClock

ACCOUNT = "123456789012"
PLACEHOLDER_ACCEPT = "application/json;jpeg"
"""The only answer format the simulated model produces (the API asks for it)."""


class RuntimeValidationError(JsonRESTError):
    """What sagemaker-runtime answers when an endpoint cannot take an invocation."""

    code = 400

    def __init__(self, message: str):
        super().__init__("ValidationError", message)


class ResourceLimitExceeded(JsonRESTError):
    """What CreateTrainingJob answers when the account's quota for the instance type is used up."""

    code = 400

    def __init__(self, quota_name: str, quota: int, requested: int):
        super().__init__(
            "ResourceLimitExceeded",
            (
                f"The account-level service limit '{quota_name}' is {quota} Instances, with current utilization of "
                f"0 Instances and a request delta of {requested} Instances. Please use AWS Service Quotas to request "
                "an increase for this quota. If AWS Service Quotas is not available, contact AWS support to request "
                "an increase for this quota."
            ),
        )


def _tarball(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, body in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(body)
            archive.addfile(info, io.BytesIO(body))
    return buffer.getvalue()


def _multipart_put(s3: Any, bucket: str, key: str, body: bytes) -> None:
    """One object written as SageMaker writes gigabytes: a multipart upload (here of one part)."""
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=body)
    s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}
    )


@dataclass
class SageMakerSimulator:
    training_s: float = 0.0
    endpoint_s: float = 0.0
    train_loss: Optional[float] = 0.0421
    fail_training: Optional[str] = None
    stop_training: Optional[str] = None
    """SecondaryStatus of a managed spot job SageMaker stops (status Stopped), e.g. MaxWaitTimeExceeded,
    Interrupted: spot capacity that never came. On-demand jobs are not stopped."""
    training_quota: Optional[int] = None
    """Instances of the job's type an on-demand training job may use ("<type> for training job usage");
    None: enough. A job asking for more is refused with ResourceLimitExceeded, as SageMaker does."""
    spot_training_quota: Optional[int] = None
    """The same for managed spot jobs ("<type> for spot training job usage"; 0 on many new accounts)."""
    fail_endpoint_create: Optional[str] = None
    fail_endpoint_update: Optional[str] = None
    refuse_endpoint_update: Optional[str] = None
    """SageMaker refuses UpdateEndpoint itself with this message (ValidationException): nothing changes."""
    output_has_code: bool = False
    """Whether the training output already holds code/inference.py (undocumented for this recipe)."""
    region: str = "us-east-1"
    timeline: list[tuple[float, str, str]] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)
    on_endpoint_settled: Optional[Callable[[str, str], None]] = None
    """Called (endpoint name, status) when an endpoint settles, as SageMaker's EventBridge event."""
    inference_s: float = 0.0
    """Model time of one asynchronous request."""
    scale_out_s: float = 0.0
    """From a backlog on an endpoint without instances (or above the tracking target) to one more
    instance serving: the alarm's periods plus the instance start."""
    scale_in_s: Optional[float] = None
    """Time without work after which the scale-in alarm removes the last instances (None: the
    alarm's own EvaluationPeriods x Period)."""
    model_error: Optional[Callable[[dict[str, Any]], Optional[str]]] = None
    """Given an asynchronous request's payload, the model's error message, or None to answer."""
    on_async_notice: Optional[Callable[[str, dict[str, Any]], None]] = None
    """Called (topic ARN, notice) for each asynchronous success or error notification."""
    client_for_role: Optional[Callable[..., Any]] = None
    """(service, role ARN or None for the administrator) -> a boto3 client signed so; None: unsigned (no IAM)."""
    clock: VirtualClock = field(default_factory=VirtualClock)
    """Whose time training jobs and endpoints take (a PipelineHarness runs on this one: emulator/clock.py)."""

    def __post_init__(self) -> None:
        self._start = time.time()
        self.started_at = datetime.now(timezone.utc)
        """Wall-clock time of offset 0 in `timeline`."""
        self._lock = threading.RLock()
        self._jobs: dict[str, float] = {}  # name -> ready at
        self._endpoints: dict[str, dict[str, Any]] = {}  # name -> pending operation
        self._stack: Optional[ExitStack] = None
        self._settlers: list[threading.Thread] = []
        self._async: dict[str, "_AsyncEndpoint"] = {}
        self._ticker: Optional[threading.Thread] = None
        self._stopping = threading.Event()
        self._fleets_changed = threading.Event()  # the ticker's next due time may have moved: look now
        self.async_requests: list[dict[str, Any]] = []
        """Every asynchronous request accepted: inference id, input, model that ran it, outcome."""
        self._read_failures: dict[str, str] = {}  # job or endpoint name -> why SageMaker could not read

    # ---- reading the record ----

    def log(self, event: str, detail: str) -> None:
        with self._lock:
            self.timeline.append((round(time.time() - self._start, 3), event, detail))

    def count(self, call: str) -> int:
        return sum(1 for name, _ in self.calls if name == call)

    def serving_history(self, endpoint_name: str) -> list[Optional[str]]:
        """The config that served at each DescribeEndpoint the pipeline made (None = nothing served)."""
        return [
            detail.split("serving=")[1] or None
            for _, event, detail in self.timeline
            if event == "describe" and detail.startswith(endpoint_name + " ")
        ]

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

        def invoke_endpoint_async(response: Any) -> Any:
            name = unquote(response.path.rstrip("/").split("/")[-2])
            headers = {k.lower(): v for k, v in response.headers.items()}
            answer = sim._invoke_async(response.sagemakerruntime_backend, name, headers)
            return (
                202,
                {
                    "X-Amzn-SageMaker-OutputLocation": answer["OutputLocation"],
                    "X-Amzn-SageMaker-FailureLocation": answer["FailureLocation"],
                },
                json.dumps({"InferenceId": answer["InferenceId"]}),
            )

        self._stack.enter_context(
            mock.patch.object(SageMakerRuntimeResponse, "invoke_endpoint_async", invoke_endpoint_async)
        )
        # Asynchronous endpoints run on the ticker below, an actor of the harness's clock: it waits
        # until its next scale-out or scale-in is due. A running request is an actor too, waiting its
        # inference time (or its invocation timeout) on the clock. While requests are queued (their
        # TTLs, their start when an instance frees up), the clock runs at its normal rate.
        self.clock.hold(self._requests_queued)
        self._ticker = self.clock.Thread(target=self._tick_forever, name="sagemaker-async", daemon=True)
        self._ticker.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._stack is not None
        self._stopping.set()
        if self._ticker is not None:
            self._ticker.join(5)
        self._stack.close()

    def _settle_later(self, backend: Any, endpoint_name: str) -> None:
        """Endpoints settle on their own after `endpoint_s`, and announce it like SageMaker does."""

        def settle() -> None:
            with self._lock:
                endpoint = backend.endpoints.get(endpoint_name)
                pending = self._endpoints.pop(endpoint_name, None)
                if endpoint is None or pending is None:
                    return  # already settled by a DescribeEndpoint, or deleted
                self._finish_endpoint(backend, endpoint, pending)
                status = endpoint.endpoint_status
            if self.on_endpoint_settled:
                self.on_endpoint_settled(endpoint_name, status)

        def settle_in_time() -> None:
            if not self.clock.wait(self.endpoint_s, done=self._stopping.is_set):
                settle()

        settler = self.clock.Thread(target=settle_in_time, name=f"settle-{endpoint_name}", daemon=True)
        self._settlers.append(settler)
        settler.start()

    # -- training jobs --

    def _create_training_job(self, original: Any) -> Any:
        sim = self

        def create_training_job(backend: Any, **kwargs: Any) -> Any:
            sim._check_training_quota(kwargs)
            job = original(backend, **kwargs)
            failure = sim._read_training_inputs(job)
            with sim._lock:
                if failure:
                    sim._read_failures[job.training_job_name] = failure
                sim.calls.append(("create_training_job", job.training_job_name))
                sim._jobs[job.training_job_name] = time.time() + sim.training_s
                job.training_job_status = "InProgress"
                job.secondary_status = "Training"
                job.final_metric_data_list = []
            sim.log("training-started", job.training_job_name)
            return job

        return create_training_job

    def _check_training_quota(self, request: dict[str, Any]) -> None:
        resources = request.get("resource_config") or {}
        spot = bool(request.get("enable_managed_spot_training"))
        quota = self.spot_training_quota if spot else self.training_quota
        count = int(resources.get("InstanceCount", 1))
        if quota is not None and count > quota:
            name = f"{resources.get('InstanceType')} for {'spot ' if spot else ''}training job usage"
            self.log("training-refused", f"{request.get('training_job_name')} {name} = {quota}")
            raise ResourceLimitExceeded(name, quota, count)

    def _describe_training_job(self, original: Any) -> Any:
        sim = self

        def describe_training_job(backend: Any, training_job_name: str) -> dict[str, Any]:
            job = backend.training_jobs.get(training_job_name)
            with sim._lock:
                ready_at = sim._jobs.get(training_job_name)
                if (
                    job is not None
                    and ready_at is not None
                    and job.training_job_status == "InProgress"
                    and time.time() >= ready_at
                ):
                    sim._finish_job(job)
            return original(backend, training_job_name)

        return describe_training_job

    def _s3(self, role_arn: Optional[str]) -> Any:
        if self.client_for_role is not None and role_arn:
            return self.client_for_role("s3", role_arn)
        return self._own_client("s3")

    def _own_client(self, service: str) -> Any:
        """A client for the simulator's own looking (as the administrator under IAM enforcement).

        Its code runs on whatever thread made the SageMaker call (a Lambda's, under that Lambda's
        role): a plain boto3 client there would sign as the caller and be refused as the caller.
        """
        if self.client_for_role is not None:
            return self.client_for_role(service, None)
        return boto3.client(service, region_name=self.region)

    def _read_s3(self, role_arn: Optional[str], uri: str, *, prefix: bool) -> Optional[str]:
        """Read what SageMaker downloads for a channel or model; the error SageMaker reports, or None."""
        from botocore.exceptions import ClientError

        s3 = self._s3(role_arn)
        bucket, _, key = uri[len("s3://") :].partition("/")
        try:
            if prefix:
                keys = [
                    o["Key"]
                    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
                    for o in page.get("Contents", [])
                ]
                if not keys:
                    return f'ClientError: No S3 objects found under S3 URL "{uri}"'
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
        for variant in config.production_variants if config else []:
            model = backend._models.get(variant.get("ModelName"))
            if model is None:
                continue
            for container in [model.primary_container or {}, *(model.containers or [])]:
                source = (container.get("ModelDataSource") or {}).get("S3DataSource") or {}
                if source.get("S3Uri"):
                    failure = self._read_s3(
                        model.execution_role_arn, source["S3Uri"], prefix=source.get("S3DataType") == "S3Prefix"
                    )
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
        if self.stop_training and job.enable_managed_spot_training:
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
        s3 = self._s3(job.role_arn)  # SageMaker writes the output with the job's role
        files = {"model_index.json": b"{}", "unet/diffusion_pytorch_model.safetensors": b"simulated weights"}
        if self.output_has_code:
            files["code/inference.py"] = b"# simulated inference script from the training output"
        output = job.output_data_config["S3OutputPath"].rstrip("/")
        if (job.output_data_config or {}).get("CompressionType") == "NONE":
            prefix = f"{output}/{job.training_job_name}/output/model/"
            job.model_artifacts = {"S3ModelArtifacts": prefix}
            bucket, _, key = prefix[len("s3://") :].partition("/")
            for name, body in files.items():
                if name.endswith(".safetensors"):  # gigabytes in AWS: SageMaker uploads them in parts
                    _multipart_put(s3, bucket, key + name, body)
                else:
                    s3.put_object(Bucket=bucket, Key=key + name, Body=body)
        else:  # SageMaker's default: one gzipped tarball of /opt/ml/model, paths relative to it
            artifact = f"{output}/{job.training_job_name}/output/model.tar.gz"
            job.model_artifacts = {"S3ModelArtifacts": artifact}
            bucket, _, key = artifact[len("s3://") :].partition("/")
            # gigabytes in AWS: SageMaker uploads the tarball in parts (each part needs kms:Decrypt on SSE-KMS)
            _multipart_put(s3, bucket, key, _tarball(files))
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
                sim._endpoints[endpoint_name] = {
                    "kind": "create",
                    "config": endpoint_config_name,
                    "ready_at": time.time() + sim.endpoint_s,
                }
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
                    message=f"Cannot update in-progress endpoint '{endpoint_name}' ({endpoint.endpoint_status})."
                )
            backend.describe_endpoint_config(endpoint_config_name)  # raises when it does not exist
            refusal = self.refuse_endpoint_update or self._update_refusal(backend, endpoint, endpoint_config_name)
            if refusal:
                self.log("endpoint-update-refused", f"{endpoint_name} {endpoint_config_name}: {refusal}")
                raise ValidationError(message=refusal)
            failure = self._read_model_data(backend, endpoint_config_name)
            if failure:
                self._read_failures[endpoint_name] = failure
            self.calls.append(("update_endpoint", endpoint_config_name))
            endpoint.endpoint_status = "Updating"
            endpoint.failure_reason = None
            self._endpoints[endpoint_name] = {
                "kind": "update",
                "config": endpoint_config_name,
                "ready_at": time.time() + self.endpoint_s,
            }
        self.log("endpoint-updating", f"{endpoint_name} {endpoint.endpoint_config_name}->{endpoint_config_name}")
        self._settle_later(backend, endpoint_name)
        return endpoint

    def _update_refusal(self, backend: Any, endpoint: Any, config_name: str) -> Optional[str]:
        """Why SageMaker refuses UpdateEndpoint to `config_name` (None: it takes it): an endpoint
        cannot switch between real-time and asynchronous configs, and a variant that is a scalable
        target of Application Auto Scaling cannot change its instance type or go (SageMaker's
        "Update endpoints that use auto scaling"; a model-only change is allowed)."""
        old, new = backend.endpoint_configs.get(endpoint.endpoint_config_name), backend.endpoint_configs[config_name]
        if old is None:
            return None
        if bool(old.async_inference_config) != bool(new.async_inference_config):
            return (
                "AsyncInferenceConfig cannot be removed from an endpoint"
                if old.async_inference_config
                else "AsyncInferenceConfig cannot be added to an existing real-time endpoint"
            ) + f": {endpoint.endpoint_name} cannot be updated to {config_name}; delete and re-create it"
        new_types = {v["VariantName"]: v.get("InstanceType") for v in new.production_variants}
        blocked = [
            v["VariantName"]
            for v in old.production_variants
            if self.scalable_target(endpoint.endpoint_name, v["VariantName"]) is not None
            and new_types.get(v["VariantName"], "removed") != v.get("InstanceType")
        ]
        if blocked:
            return (
                f'The variant(s) "[{", ".join(blocked)}]" must be deregistered as scalable targets with AWS '
                "Application Auto Scaling before they can be removed or have their instance type updated."
            )
        return None

    def scalable_target(self, endpoint_name: str, variant: str = VARIANT_NAME) -> Optional[Any]:
        """The variant's scalable target as Application Auto Scaling (moto) holds it, or None."""
        targets = applicationautoscaling_backends[ACCOUNT][self.region].targets
        return targets.get(SCALABLE_DIMENSION, {}).get(f"endpoint/{endpoint_name}/variant/{variant}")

    def _describe_endpoint(self, original: Any) -> Any:
        sim = self

        def describe_endpoint(backend: Any, endpoint_name: str) -> dict[str, Any]:
            queue = None
            with sim._lock:
                endpoint = backend.endpoints.get(endpoint_name)
                sim._settle_if_due(backend, endpoint)
                if endpoint is not None:
                    serving = (
                        "" if endpoint.endpoint_status in ("Creating", "Failed") else endpoint.endpoint_config_name
                    )
                    sim.log("describe", f"{endpoint_name} status={endpoint.endpoint_status} serving={serving}")
                    queue = sim._async.get(endpoint_name)
                    if queue is not None:
                        for variant in endpoint.production_variants:
                            variant["CurrentInstanceCount"] = queue.instances
            answer = original(backend, endpoint_name)
            if queue is not None:
                # The endpoint's own asynchronous configuration (DescribeEndpoint's AsyncInferenceConfig),
                # as it was when it started on its config: a real-time endpoint has none.
                answer["AsyncInferenceConfig"] = queue.config
            return answer

        return describe_endpoint

    def _model_problem(self, backend: Any, config_name: str) -> Optional[str]:
        """Why the JumpStart container could not load the config's model (None: it could)."""
        config = backend.endpoint_configs.get(config_name)
        for variant in config.production_variants if config else []:
            model = backend._models.get(variant.get("ModelName"))
            container = (model.primary_container if model else None) or {}
            source = (container.get("ModelDataSource") or {}).get("S3DataSource") or {}
            environment = container.get("Environment") or {}
            if source.get("S3DataType") != "S3Prefix" or source.get("CompressionType") != "None":
                return "the simulated container loads uncompressed model data only (ModelDataSource S3Prefix)"
            if (
                environment.get("SAGEMAKER_PROGRAM") != "inference.py"
                or environment.get("SAGEMAKER_SUBMIT_DIRECTORY") != "/opt/ml/model/code"
            ):
                return "SAGEMAKER_PROGRAM/SAGEMAKER_SUBMIT_DIRECTORY do not point at /opt/ml/model/code/inference.py"
            bucket, _, prefix = source["S3Uri"][len("s3://") :].partition("/")
            key = prefix.rstrip("/") + "/code/inference.py"
            listing = self._own_client("s3").list_objects_v2(Bucket=bucket, Prefix=key)
            if not any(o["Key"] == key for o in listing.get("Contents", [])):
                return f"model data s3://{bucket}/{prefix} has no code/inference.py: the container cannot start"
        return None

    def _settle_if_due(self, backend: Any, endpoint: Any) -> None:
        """With the lock held: a pending creation or update whose time has come ends now (a read of
        the endpoint sees it settled even if its settle thread has not run yet)."""
        pending = self._endpoints.get(endpoint.endpoint_name) if endpoint is not None else None
        if pending and time.time() >= pending["ready_at"]:
            self._finish_endpoint(backend, endpoint, pending)
            del self._endpoints[endpoint.endpoint_name]

    def _finish_endpoint(self, backend: Any, endpoint: Any, pending: dict[str, Any]) -> None:
        read_failure = self._read_failures.pop(endpoint.endpoint_name, None)
        problem = read_failure or self._model_problem(backend, pending["config"])
        if problem and not read_failure:
            self.log("model-unloadable", f"{pending['config']}: {problem}")
        if pending["kind"] == "create":
            if self.fail_endpoint_create or problem:
                endpoint.endpoint_status = "Failed"
                endpoint.failure_reason = self.fail_endpoint_create or problem
                self.log("endpoint-failed", endpoint.endpoint_name)
            else:
                endpoint.endpoint_status = "InService"
                self.log("endpoint-in-service", f"{endpoint.endpoint_name} {endpoint.endpoint_config_name}")
                self._start_fleet(endpoint.endpoint_name, endpoint.endpoint_config_name)
            return
        if self.fail_endpoint_update or problem:
            endpoint.endpoint_status = "InService"  # SageMaker rolls back to the previous config
            endpoint.failure_reason = self.fail_endpoint_update or problem
            self.log("endpoint-update-rolled-back", f"{endpoint.endpoint_name} {endpoint.endpoint_config_name}")
        else:
            endpoint.endpoint_config_name = pending["config"]
            endpoint.endpoint_status = "InService"
            self.log("endpoint-updated", f"{endpoint.endpoint_name} {pending['config']}")
            self._start_fleet(endpoint.endpoint_name, pending["config"], keep_queue=True)

    def _delete_endpoint(self, original: Any) -> Any:
        sim = self

        def delete_endpoint(backend: Any, endpoint_name: str) -> None:
            original(backend, endpoint_name)
            sim.calls.append(("delete_endpoint", endpoint_name))
            # Application Auto Scaling deregisters a deleted endpoint's variants (SageMaker's "Delete
            # endpoints configured for auto scaling"), with the caller's permission: the IAM harness
            # refuses the DeleteEndpoint of a caller without DeregisterScalableTarget (iam.py).
            targets = applicationautoscaling_backends[ACCOUNT][sim.region].targets.get(SCALABLE_DIMENSION, {})
            for resource in [r for r in targets if r.startswith(f"endpoint/{endpoint_name}/variant/")]:
                del targets[resource]
            sim._endpoints.pop(endpoint_name, None)
            with sim._lock:
                dropped = sim._async.pop(endpoint_name, None)
            if dropped is not None and dropped.queue:
                # SageMaker's queue goes with the endpoint: no notice ever comes for these.
                sim.log("async-queue-dropped", f"{endpoint_name} {len(dropped.queue)} request(s)")
            sim.log("endpoint-deleted", endpoint_name)

        return delete_endpoint

    # -- asynchronous inference --

    def _async_config(self, config_name: str) -> Optional[dict[str, Any]]:
        backend = self._backend()
        config = backend.endpoint_configs.get(config_name)
        return (config.async_inference_config or None) if config is not None else None

    def _backend(self) -> Any:
        return sm_models.sagemaker_backends[ACCOUNT][self.region]

    def _start_fleet(self, endpoint_name: str, config_name: str, *, keep_queue: bool = False) -> None:
        """An endpoint (re)starting on `config_name`: the config's instances; an update keeps the queue."""
        async_config = self._async_config(config_name)
        with self._lock:
            previous = self._async.get(endpoint_name)
            if async_config is None:
                self._async.pop(endpoint_name, None)
                return
            config = self._backend().endpoint_configs[config_name]
            count = int(config.production_variants[0].get("InitialInstanceCount", 1))
            fleet = _AsyncEndpoint(config=async_config, instances=count, last_work=time.time())
            if keep_queue and previous is not None:
                fleet.queue, fleet.running = previous.queue, previous.running
            self._async[endpoint_name] = fleet
        self._fleets_changed.set()

    def _invoke_async(self, runtime: Any, endpoint_name: str, headers: dict[str, str]) -> dict[str, str]:
        backend = sm_models.sagemaker_backends[runtime.account_id][runtime.region_name]
        with self._lock:
            endpoint = backend.endpoints.get(endpoint_name)
            self._settle_if_due(backend, endpoint)
            self.calls.append(("invoke_endpoint_async", endpoint_name))
            if endpoint is None:
                self.log("invoke-async-refused", f"{endpoint_name} does not exist")
                raise RuntimeValidationError(f"Endpoint {endpoint_name} of account {runtime.account_id} not found.")
            fleet = self._async.get(endpoint_name)
            if endpoint.endpoint_status not in ("InService", "Updating") or fleet is None:
                self.log("invoke-async-refused", f"{endpoint_name} status={endpoint.endpoint_status}")
                raise RuntimeValidationError(
                    f"Endpoint {endpoint_name} cannot take asynchronous requests (status: {endpoint.endpoint_status}"
                    f"{'' if fleet else ', no AsyncInferenceConfig'})."
                )
            input_location = headers.get("x-amzn-sagemaker-inputlocation")
            if not input_location:
                raise RuntimeValidationError("InputLocation is required")
            output = fleet.config["OutputConfig"]
            name = str(uuid.uuid4())
            request = {
                "inference_id": headers.get("x-amzn-sagemaker-inference-id") or str(uuid.uuid4()),
                "endpoint": endpoint_name,
                "input": input_location,
                "accept": headers.get("x-amzn-sagemaker-accept"),
                "content_type": headers.get("x-amzn-sagemaker-content-type"),
                "ttl_s": int(headers.get("x-amzn-sagemaker-requestttlseconds") or 21600),
                "timeout_s": int(headers.get("x-amzn-sagemaker-invocationtimeoutseconds") or 900),
                "received": time.time(),
                "received_at": _now_iso(),
                "output": f"{output['S3OutputPath'].rstrip('/')}/{name}.out",
                "failure": f"{output.get('S3FailurePath', output['S3OutputPath']).rstrip('/')}/{name}-error.out",
                "model": None,
                "role": None,
                "outcome": None,
            }
            fleet.queue.append(request)
            self.async_requests.append(request)
        self.log("invoke-async-queued", f"{endpoint_name} {request['inference_id']} backlog={len(fleet.queue)}")
        return {
            "InferenceId": request["inference_id"],
            "OutputLocation": request["output"],
            "FailureLocation": request["failure"],
        }

    def _requests_queued(self) -> bool:
        # Read without the lock (the clock calls it holding its own): a snapshot is enough.
        return any(fleet.queue for fleet in list(self._async.values()))

    def _next_due(self) -> float:
        """When the ticker must look next: a pending scale-out, an idle instance's scale-in, or
        now while a fleet's policies are still to be read (never: nothing to do)."""
        due = math.inf
        with self._lock:
            for fleet in self._async.values():
                if fleet.scale_out_at is not None:
                    due = min(due, fleet.scale_out_at)
                elif fleet.instances and not fleet.queue and not fleet.running:
                    if fleet.policies_read < 0:
                        return time.time()
                    idle_s = self._idle_s(fleet)  # re-read at the next tick: a jump never uses stale policies
                    if idle_s is not None:
                        due = min(due, fleet.last_work + idle_s)
        return due

    def _tick_forever(self) -> None:
        while not self._stopping.is_set():
            try:
                self._tick()
            except Exception as error:  # keep serving; the test sees the outcome in the timeline
                self.log("async-tick-error", repr(error))
            # Every 20 ms of real time, or at once when the clock reaches the next due time.
            # A fleet that started or a request that ended moves the next due time: until the ticker
            # has looked again, the clock must not jump to a deadline computed before that.
            self._fleets_changed.clear()
            self.clock.wait(
                until=self._next_due(),
                real_s=0.02,
                done=lambda: self._stopping.is_set() or self._fleets_changed.is_set(),
            )

    def _tick(self) -> None:
        now = time.time()
        starts: list[tuple[str, dict[str, Any], str]] = []
        expired: list[dict[str, Any]] = []
        with self._lock:
            backend = self._backend()
            for name, fleet in list(self._async.items()):
                endpoint = backend.endpoints.get(name)
                if endpoint is None:
                    continue
                for request in [r for r in fleet.queue if now - r["received"] > r["ttl_s"]]:
                    fleet.queue.remove(request)
                    expired.append(request)
                self._scale(name, fleet, now)
                slots = fleet.instances * int(
                    fleet.config.get("ClientConfig", {}).get("MaxConcurrentInvocationsPerInstance", 1)
                )
                while (
                    fleet.queue and len(fleet.running) < slots and endpoint.endpoint_status in ("InService", "Updating")
                ):
                    request = fleet.queue.popleft()
                    fleet.running.append(request)
                    fleet.last_work = now
                    starts.append((name, request, endpoint.endpoint_config_name))
        for request in expired:
            request["role"] = self._role_of(
                self._backend().endpoints[request["endpoint"]].endpoint_config_name
                if request["endpoint"] in self._backend().endpoints
                else None
            )
            self._notify_error(
                request,
                "Request expired: the request waited in the queue longer than its "
                f"RequestTTLSeconds ({request['ttl_s']} s)",
            )
        for name, request, config_name in starts:
            self.clock.Thread(target=self._run_request, args=(name, request, config_name), daemon=True).start()

    def _policies(self, endpoint_name: str) -> tuple[Optional[dict[str, Any]], dict[str, dict[str, Any]]]:
        """The variant's scalable target and {metric name: step policy its alarm triggers}."""
        autoscaling = self._own_client("application-autoscaling")
        resource = f"endpoint/{endpoint_name}/variant/{VARIANT_NAME}"
        targets = autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[resource])[
            "ScalableTargets"
        ]
        policies = autoscaling.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=resource)[
            "ScalingPolicies"
        ]
        by_arn = {p["PolicyARN"]: p for p in policies}
        alarms = self._own_client("cloudwatch").describe_alarms()["MetricAlarms"]
        triggered: dict[str, dict[str, Any]] = {}
        for alarm in alarms:
            for action in alarm.get("AlarmActions", []):
                if action in by_arn and alarm.get("MetricName"):
                    triggered[alarm["MetricName"]] = {**by_arn[action], "alarm": alarm}
        tracking = [p for p in policies if p["PolicyType"] == "TargetTrackingScaling"]
        target = targets[0] if targets else None
        if target is not None and tracking:
            target = {**target, "tracking": tracking[0]["TargetTrackingScalingPolicyConfiguration"]}
        return target, triggered

    def _scale(self, name: str, fleet: "_AsyncEndpoint", now: float) -> None:
        backlog = len(fleet.queue) + len(fleet.running)
        if fleet.scale_out_at is not None:
            if now >= fleet.scale_out_at:
                fleet.scale_out_at = None
                fleet.instances += 1
                fleet.last_work = now
                self.log("async-instance-started", f"{name} instances={fleet.instances}")
            return
        if not backlog and not fleet.instances:
            return  # nothing to scale out for, nothing to scale in: no policy can act now
        if now - fleet.policies_read > 0.2:
            fleet.target, fleet.triggered = self._policies(name)
            fleet.policies_read = now
        target, triggered = fleet.target, fleet.triggered
        if target is None:
            return
        if backlog and fleet.instances == 0:
            policy = triggered.get("HasBacklogWithoutCapacity")
            if policy and policy["PolicyType"] == "StepScaling" and target["MaxCapacity"] >= 1:
                fleet.scale_out_at = now + self.scale_out_s
                self.log("async-scale-out", f"{name} from 0 (backlog {backlog}, alarm {policy['alarm']['AlarmName']})")
            return
        tracking = target.get("tracking")
        if (
            fleet.instances
            and tracking
            and fleet.instances < target["MaxCapacity"]
            and backlog / fleet.instances > tracking["TargetValue"]
        ):
            fleet.scale_out_at = now + self.scale_out_s
            self.log("async-scale-out", f"{name} from {fleet.instances} (backlog {backlog})")
            return
        idle_s = self._idle_s(fleet)
        if fleet.instances and not backlog and idle_s is not None and now - fleet.last_work >= idle_s:
            self.log("async-scale-in", f"{name} {fleet.instances} -> 0 after {idle_s:g} s without work")
            fleet.instances = 0

    def _idle_s(self, fleet: "_AsyncEndpoint") -> Optional[float]:
        """After how long without work the last instances stop: only if the idle alarm's
        ExactCapacity-0 step policy exists (None: never, or the policies are not read yet)."""
        idle, target = fleet.triggered.get("ApproximateBacklogSize"), fleet.target
        if not (
            idle
            and target
            and target["MinCapacity"] == 0
            and idle["PolicyType"] == "StepScaling"
            and idle["StepScalingPolicyConfiguration"].get("AdjustmentType") == "ExactCapacity"
        ):
            return None
        alarm = idle["alarm"]
        return self.scale_in_s if self.scale_in_s is not None else alarm["EvaluationPeriods"] * alarm["Period"]

    def _run_request(self, endpoint_name: str, request: dict[str, Any], config_name: str) -> None:
        backend = self._backend()
        config = backend.endpoint_configs.get(config_name)
        model = config.production_variants[0].get("ModelName") if config else None
        request["model"] = model
        request["role"] = self._role_of(config_name)
        request["started_s"] = round(time.time() - self._start, 3)
        self.log("async-invocation-started", f"{endpoint_name} {request['inference_id']} model={model}")
        error: Optional[str] = None
        answer: Optional[str] = None
        try:
            bucket, _, key = request["input"][len("s3://") :].partition("/")
            body = self._s3(request["role"]).get_object(Bucket=bucket, Key=key)["Body"].read()
            payload = json.loads(body)
            error = self.model_error(payload) if self.model_error else None
            if error is None:
                if self.inference_s > request["timeout_s"]:
                    self.clock.wait(request["timeout_s"], done=self._stopping.is_set)
                    error = (
                        f"Invocation timed out: the model did not answer within InvocationTimeoutSeconds "
                        f"({request['timeout_s']} s)"
                    )
                else:
                    self.clock.wait(self.inference_s, done=self._stopping.is_set)
                    answer, _ = self._answer(payload, model or "?", request["accept"])
        except Exception as failure:  # what the model container would answer: a 4xx/5xx
            error = f"the simulated model could not read the request ({failure!r})"
        with self._lock:
            fleet = self._async.get(endpoint_name)
            if fleet is not None and request in fleet.running:
                fleet.running.remove(request)
                fleet.last_work = time.time()
        self._fleets_changed.set()
        if self._stopping.is_set():
            return  # the harness has exited while this request ran: nothing of it may reach a later test
        if error is None and answer is not None:
            if not self._write(request, request["output"], answer.encode()):
                return
            self.log("async-invocation-succeeded", f"{endpoint_name} {request['inference_id']} model={model}")
            self._notice(
                request,
                "SuccessTopic",
                {
                    "invocationStatus": "Completed",
                    "responseParameters": {"contentType": "application/json", "outputLocation": request["output"]},
                },
            )
            if request["outcome"] is None:  # after the notice is on its way: see `unfinished`
                request["outcome"] = "succeeded"
        else:
            self._notify_error(
                request,
                f"ClientError: Received client error (424) from primary with message "
                f'"{error}". See the endpoint\'s logs for more information.'
                if error and not error.startswith(("Invocation timed out", "Request expired"))
                else error or "no answer",
            )

    def _notify_error(self, request: dict[str, Any], reason: str) -> None:
        if not self._write(request, request["failure"], reason.encode()):
            return
        self.log("async-invocation-failed", f"{request['endpoint']} {request['inference_id']}: {reason}")
        self._notice(
            request,
            "ErrorTopic",
            {
                "invocationStatus": "Failed",
                "failureReason": reason,
                "responseParameters": {
                    "contentType": "text/plain; charset=utf-8",
                    "failureLocation": request["failure"],
                },
            },
        )
        if request["outcome"] is None:
            request["outcome"] = "failed"

    def settling(self) -> list[str]:
        """Endpoints whose settling (and its state-change event) is still to come."""
        return [t.name for t in self._settlers if t.is_alive()]

    def unfinished(self) -> int:
        """Accepted asynchronous requests with no notice sent yet, on endpoints that still exist
        (a deleted endpoint's queue is gone: nothing will come for those)."""
        with self._lock:
            return sum(1 for r in self.async_requests if r["outcome"] is None and r["endpoint"] in self._async)

    def _role_of(self, config_name: Optional[str]) -> Optional[str]:
        """The execution role of the model a config serves: SageMaker's asynchronous I/O runs with it."""
        backend = self._backend()
        config = backend.endpoint_configs.get(config_name) if config_name else None
        model = backend._models.get(config.production_variants[0].get("ModelName")) if config else None
        return model.execution_role_arn if model is not None else None

    def _write(self, request: dict[str, Any], location: str, body: bytes) -> bool:
        """SageMaker writing an answer or failure with the model's role; False (logged, no notice:
        the request is lost, as in AWS) when that is refused."""
        from botocore.exceptions import ClientError

        bucket, _, key = location[len("s3://") :].partition("/")
        try:
            self._s3(request.get("role")).put_object(Bucket=bucket, Key=key, Body=body)
        except ClientError as error:
            request["outcome"] = "lost"
            self.log("async-output-refused", f"{request['endpoint']} {request['inference_id']}: {error}")
            return False
        return True

    def _notice(self, request: dict[str, Any], topic_key: str, fields: dict[str, Any]) -> None:
        with self._lock:
            fleet = self._async.get(request["endpoint"])
        config = fleet.config if fleet else {}
        topic = config.get("OutputConfig", {}).get("NotificationConfig", {}).get(topic_key)
        notice = {
            "awsRegion": self.region,
            "eventTime": _now_iso(),
            "receivedTime": request["received_at"],
            "requestParameters": {
                "contentType": request["content_type"],
                "endpointName": request["endpoint"],
                "inputLocation": request["input"],
            },
            "inferenceId": request["inference_id"],
            "eventVersion": "1.0",
            "eventSource": "aws:sagemaker",
            "eventName": "InferenceResult",
            **fields,
        }
        if not topic:
            return
        if self.client_for_role is not None and request.get("role"):
            from botocore.exceptions import ClientError

            try:  # SageMaker publishes with the model's role: IAM decides, as in AWS
                self.client_for_role("sns", request["role"]).publish(TopicArn=topic, Message=json.dumps(notice))
            except ClientError as error:
                self.log("async-notice-refused", f"{request['endpoint']} {request['inference_id']}: {error}")
                request["outcome"] = "lost"
                return
        if self.on_async_notice:
            self.on_async_notice(topic, notice)

    def _answer(self, payload: dict[str, Any], model: str, accept: Optional[str]) -> tuple[str, str]:
        if accept != PLACEHOLDER_ACCEPT:
            raise ValueError(f"the simulated model answers Accept: {PLACEHOLDER_ACCEPT} only, not {accept!r}")
        prompt = str(payload["prompt"])
        seed = None if payload.get("seed") is None else int(payload["seed"])
        count = int(payload.get("num_images_per_prompt", 1))
        width, height = int(payload.get("width", 512)), int(payload.get("height", 512))
        if not 1 <= count <= PLACEHOLDER_MAX_IMAGES or min(width, height) < 1:
            raise ValueError(f"the simulated model draws 1-{PLACEHOLDER_MAX_IMAGES} images of a positive size per call")
        images = [
            placeholder_jpeg(prompt, None if seed is None else seed + i, model, width=width, height=height)
            for i in range(count)
        ]
        answer = json.dumps({"generated_images": [base64.b64encode(i).decode() for i in images], "prompt": prompt})
        return answer, "application/json"


@dataclass
class _AsyncEndpoint:
    """SageMaker's queue and fleet for one asynchronous endpoint."""

    config: dict[str, Any]
    instances: int
    last_work: float
    queue: deque = field(default_factory=deque)
    running: list[dict[str, Any]] = field(default_factory=list)
    scale_out_at: Optional[float] = None
    target: Optional[dict[str, Any]] = None
    triggered: dict[str, dict[str, Any]] = field(default_factory=dict)
    policies_read: float = -1.0


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


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
