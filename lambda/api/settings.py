"""Settings of the API, result and dispatcher functions, read and checked once per container."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from aws import bucket_sources
from dreambooth_shared.contract import INFERENCE_REQUESTS_PREFIX
from dreambooth_shared.contract import ApiEnv as env


class SettingsError(RuntimeError):
    """A required environment variable is missing or malformed (a deployment defect)."""


def _required(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "").strip()
    if not value:
        raise SettingsError(f"environment variable {name} is not set")
    return value


def _positive_int(environ: Mapping[str, str], name: str) -> int:
    raw = _required(environ, name)
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"environment variable {name}={raw!r} is not a whole number") from None
    if value < 0:
        raise SettingsError(f"environment variable {name}={raw!r} is negative")
    return value


def _one_of(environ: Mapping[str, str], name: str, allowed: tuple[str, ...]) -> str:
    value = _required(environ, name)
    if value not in allowed:
        raise SettingsError(f"environment variable {name}={value!r} is not one of {', '.join(allowed)}")
    return value


@dataclass(frozen=True)
class Settings:
    generations_table: str
    registry_table: str
    bucket_name: str
    endpoint_name: str
    max_wait_s: int
    generation_ttl_days: int
    image_url_expiry_s: int
    request_ttl_s: int
    """RequestTTLSeconds: how long SageMaker keeps a request queued before it expires (60-21600)."""
    invocation_timeout_s: int
    """InvocationTimeoutSeconds: how long one request may run on the model (1-3600)."""
    instance_start_minutes: int
    """What starting an instance usually takes, for the `queued` reasons."""
    api_auth: str
    """How API Gateway authenticates callers ("apiKey" or "iam"); the web page needs apiKey."""
    idle_minutes: int
    """The endpoint scales to zero instances after this long without work (0: never); for messages."""
    deploy_state_machine_arn: str = ""
    training_state_machine_arn: str = ""
    """Started by POST /models/{id}/retrain."""
    request_prefix: str = INFERENCE_REQUESTS_PREFIX
    """Where request objects for InvokeEndpointAsync are written in the data bucket."""
    pending_index: str = "pending"
    image_signer_role_arn: str = ""
    """Role whose fresh session signs image URLs (one that outlives them); empty: the function's own."""
    cors_allow_origin: str = ""
    """Origin allowed to call from a browser ("*" for any); empty: no CORS headers."""
    region: str = "us-east-1"
    """The function's region (Lambda's AWS_REGION): presigned uploads go to the bucket's regional host."""
    upload_url_expiry_s: int = 900
    """Lifetime of the presigned POSTs the web page uploads a dataset's photos with."""
    scaling_function_name: str = ""
    """The function that registers the endpoint's autoscaling (the dispatcher repairs a lost one); empty: none."""

    @property
    def upload_origin(self) -> str:
        """Where the page's image links and photo uploads go, as CSP sources: the bucket's regional
        virtual host, or its path on the regional host for a dotted name (aws.bucket_sources)."""
        return bucket_sources(self.bucket_name, self.region)

    def idle_text(self) -> str:
        return f"{self.idle_minutes} minutes" if self.idle_minutes else "a while"

    @property
    def instance_start_text(self) -> str:
        return f"up to {self.instance_start_minutes} minutes"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> "Settings":
        return cls(
            generations_table=_required(environ, env.GENERATIONS_TABLE),
            registry_table=_required(environ, env.REGISTRY_TABLE),
            bucket_name=_required(environ, env.BUCKET_NAME),
            endpoint_name=_required(environ, env.ENDPOINT_NAME),
            deploy_state_machine_arn=environ.get(env.DEPLOY_STATE_MACHINE_ARN, ""),
            training_state_machine_arn=environ.get(env.TRAINING_STATE_MACHINE_ARN, ""),
            max_wait_s=_positive_int(environ, env.MAX_WAIT_S),
            generation_ttl_days=_positive_int(environ, env.GENERATION_TTL_DAYS),
            image_url_expiry_s=_positive_int(environ, env.IMAGE_URL_EXPIRY_S),
            request_prefix=environ.get(env.REQUEST_PREFIX, "").strip() or INFERENCE_REQUESTS_PREFIX,
            request_ttl_s=_positive_int(environ, env.REQUEST_TTL_S),
            invocation_timeout_s=_positive_int(environ, env.INVOCATION_TIMEOUT_S),
            instance_start_minutes=_positive_int(environ, env.INSTANCE_START_MINUTES),
            pending_index=environ.get(env.PENDING_INDEX, "").strip() or "pending",
            image_signer_role_arn=environ.get(env.IMAGE_SIGNER_ROLE_ARN, "").strip(),
            cors_allow_origin=environ.get(env.CORS_ALLOW_ORIGIN, "").strip(),
            api_auth=_one_of(environ, env.API_AUTH, ("apiKey", "iam")),
            idle_minutes=_positive_int(environ, env.IDLE_MINUTES),
            scaling_function_name=environ.get(env.SCALING_FUNCTION_NAME, "").strip(),
            region=environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        )
