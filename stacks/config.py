"""Typed, frozen settings read once from CDK context.

Every setting has a default (see the README's configuration table) and can be overridden in
`cdk.json` or on the command line (`npx cdk deploy -c bucketName=my-bucket`). Values given on
the command line arrive as strings, so every parser accepts both the typed value and its text.
A bad value raises `ConfigError`, which names the key and what is allowed; `app.py` turns it
into a one-line message and a failed synth.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

# Tag put on the bucket this project creates; the deploy-time bucket chooser finds earlier
# buckets of this project by it when the account is at its S3 bucket quota.
PROJECT_TAG_KEY = "dreambooth-pipeline:role"
PROJECT_TAG_VALUE = "data-bucket"
# Second tag on that bucket: the stack that created it, so a live deployment's bucket is never taken.
STACK_TAG_KEY = "dreambooth-pipeline:stack"

# Key prefix of the deploy-time bucket decision recorded in cdk.context.json, in the style of
# CDK's own lookups ("vpc-provider:account=...:region=...").
BUCKET_DECISION_CONTEXT_PREFIX = "dreambooth-bucket"


def bucket_decision_key(stack_name: str, account: str, region: str) -> str:
    return f"{BUCKET_DECISION_CONTEXT_PREFIX}:stack={stack_name}:account={account}:region={region}"


class ConfigError(ValueError):
    """A context value is missing, of the wrong type or out of range."""

    def __init__(self, key: str, value: Any, allowed: str):
        super().__init__(f"Invalid value {value!r} for context key '{key}': {allowed}.")
        self.key = key


Context = Callable[[str], Any]

# SageMaker's longest training job (MaxRuntimeInSeconds / MaxWaitTimeInSeconds): 28 days.
MAX_TRAINING_MINUTES = 28 * 24 * 60
# How long a spot job may wait for capacity (on top of its run time) before it is trained on demand.
SPOT_CAPACITY_WAIT_MINUTES = 30

# SageMaker instance families with an NVIDIA GPU large enough for Stable Diffusion 2.1 base.
GPU_INSTANCE_FAMILIES = ("g4dn", "g5", "g6", "g6e", "p3", "p4d", "p5")
_INSTANCE_TYPE = re.compile(r"^ml\.(?P<family>[a-z0-9]+)\.(?P<size>\d*x?large)$")
_BUCKET_NAME = re.compile(r"^(?!xn--)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$")
_STACK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
IMAGE_URL_MAX_EXPIRY_S = 3600
"""Presigned image URLs live at most this long: the signer's session (one hour, the most STS gives a
session started from a role's session) must last until the `expires_at` the API states."""
_KMS_KEY_ARN = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/(mrk-[0-9a-f]{32}|[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12})$")


def _int(ctx: Context, key: str, default: int, minimum: int, maximum: int) -> int:
    raw = ctx(key)
    if raw is None:
        return default
    allowed = f"expected a whole number from {minimum} to {maximum}"
    if isinstance(raw, bool):
        raise ConfigError(key, raw, allowed)
    try:
        value = int(raw) if isinstance(raw, int) else int(str(raw).strip())
    except ValueError:
        raise ConfigError(key, raw, allowed) from None
    if not minimum <= value <= maximum:
        raise ConfigError(key, raw, allowed)
    return value


def _bool(ctx: Context, key: str, default: bool) -> bool:
    raw = ctx(key)
    if raw is None:
        return default
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("true", "yes", "1"):
        return True
    if text in ("false", "no", "0"):
        return False
    raise ConfigError(key, raw, "expected true or false")


def _optional_str(ctx: Context, key: str, pattern: re.Pattern[str], allowed: str) -> Optional[str]:
    raw = ctx(key)
    if raw is None or raw == "":
        return None
    if not isinstance(raw, str) or not pattern.match(raw):
        raise ConfigError(key, raw, allowed)
    return raw


# The botocore SageMaker model's enums of what CreateTrainingJob and CreateEndpointConfig accept.
TRAINING_INSTANCE_SHAPE = "TrainingInstanceType"
ENDPOINT_INSTANCE_SHAPE = "ProductionVariantInstanceType"


def sagemaker_instance_types(shape: str) -> tuple[str, ...]:
    """The instance types botocore's SageMaker service model lists for `shape` (offline, no call)."""
    import botocore.session

    return tuple(botocore.session.get_session().get_service_model("sagemaker").shape_for(shape).enum)


def _instance_type(ctx: Context, key: str, default: str, shape: str) -> str:
    raw = ctx(key)
    if raw is None:
        return default
    match = _INSTANCE_TYPE.match(raw) if isinstance(raw, str) else None
    if not match or match.group("family") not in GPU_INSTANCE_FAMILIES:
        raise ConfigError(
            key,
            raw,
            "expected a SageMaker GPU instance type such as ml.g4dn.2xlarge "
            f"(families: {', '.join(GPU_INSTANCE_FAMILIES)})",
        )
    offered = sagemaker_instance_types(shape)
    if raw not in offered:
        family = match.group("family")
        sizes = [t for t in offered if t.split(".")[1] == family]
        raise ConfigError(key, raw, f"SageMaker does not offer it ({shape} in botocore's service model); "
                                    f"{family} sizes it offers: {', '.join(sizes) or 'none'}")
    return raw


@dataclass(frozen=True)
class StorageConfig:
    """The data bucket (datasets/, models/, generated/)."""

    bucket_name: Optional[str] = None
    """Existing bucket to use instead of creating one. It is never created, deleted or reconfigured."""
    bucket_quota_margin: int = 2
    """At deploy time, reuse an earlier bucket when fewer than this many more buckets may be created."""
    generated_expiry_days: int = 30
    """Days after which generated images expire (0 keeps them forever)."""
    noncurrent_version_expiry_days: int = 30
    """Days after which overwritten or deleted object versions expire."""
    abort_multipart_days: int = 7
    """Days after which incomplete multipart uploads are aborted."""
    access_log_bucket_name: Optional[str] = None
    """Existing bucket that receives S3 server access logs (none by default: see README)."""
    bucket_kms_key_arn: Optional[str] = None
    """The customer KMS key a reused bucket's default encryption (SSE-KMS) uses; the roles get
    kms:Decrypt / kms:GenerateDataKey on it through S3 only. `dreambooth preflight` reads it."""

    @classmethod
    def from_context(cls, ctx: Context) -> "StorageConfig":
        bucket_rule = "expected an S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)"
        return cls(
            bucket_name=_optional_str(ctx, "bucketName", _BUCKET_NAME, bucket_rule),
            bucket_quota_margin=_int(ctx, "bucketQuotaMargin", 2, 0, 1000),
            generated_expiry_days=_int(ctx, "generatedExpiryDays", 30, 0, 3650),
            noncurrent_version_expiry_days=_int(ctx, "noncurrentVersionExpiryDays", 30, 1, 3650),
            abort_multipart_days=_int(ctx, "abortIncompleteUploadDays", 7, 1, 365),
            access_log_bucket_name=_optional_str(ctx, "accessLogBucketName", _BUCKET_NAME, bucket_rule),
            bucket_kms_key_arn=_optional_str(ctx, "bucketKmsKeyArn", _KMS_KEY_ARN,
                                             "expected a KMS key ARN (arn:aws:kms:<region>:<account>:key/<key id>)"),
        )


def _text(ctx: Context, key: str, default: str, max_length: int, allow_empty: bool = False) -> str:
    raw = ctx(key)
    if raw is None:
        return default
    allowed = f"expected text of at most {max_length} characters" + ("" if allow_empty else ", not empty")
    if not isinstance(raw, str) or len(raw) > max_length or (not allow_empty and not raw.strip()):
        raise ConfigError(key, raw, allowed)
    return raw.strip()


@dataclass(frozen=True)
class TrainingConfig:
    """The fine-tuning job and the dataset checks in front of it (used by the training pipeline)."""

    instance_type: str = "ml.g4dn.2xlarge"
    max_runtime_minutes: int = 120
    """Hard limit on one training job (SageMaker StoppingCondition.MaxRuntimeInSeconds)."""
    quiet_window_s: int = 120
    """Training starts once no file has arrived under datasets/<name>/ for this long."""
    default_instance_prompt: str = "a photo of sks {dataset}"
    """Prompt used when a dataset has no dataset_info.json; `{dataset}` becomes the dataset name."""
    default_class_prompt: str = ""
    """Class prompt used when dataset_info.json gives none (only needed with prior preservation)."""
    min_images: int = 3
    max_images: int = 100
    max_image_mb: int = 20
    spot: bool = True
    """Managed spot training (EnableManagedSpotTraining): a fraction of the on-demand price; when spot
    capacity does not come within spot_max_wait_minutes, the same snapshot is trained on demand."""
    spot_max_wait_minutes: int = 150
    """Spot only: longest the spot job may take, waiting for capacity included (MaxWaitTimeInSeconds).
    At least max_runtime_minutes; default max_runtime_minutes + SPOT_CAPACITY_WAIT_MINUTES."""

    @classmethod
    def from_context(cls, ctx: Context) -> "TrainingConfig":
        min_images = _int(ctx, "datasetMinImages", cls.min_images, 1, 1000)
        max_images = _int(ctx, "datasetMaxImages", cls.max_images, 1, 1000)
        if max_images < min_images:
            raise ConfigError("datasetMaxImages", max_images, f"expected at least datasetMinImages ({min_images})")
        max_runtime = _int(ctx, "trainingMaxRuntimeMinutes", cls.max_runtime_minutes, 10, MAX_TRAINING_MINUTES)
        max_wait = _int(ctx, "spotMaxWaitMinutes", min(max_runtime + SPOT_CAPACITY_WAIT_MINUTES, MAX_TRAINING_MINUTES),
                        10, MAX_TRAINING_MINUTES)
        if max_wait < max_runtime:
            # SageMaker refuses MaxWaitTimeInSeconds < MaxRuntimeInSeconds: say so at synth instead.
            raise ConfigError("spotMaxWaitMinutes", ctx("spotMaxWaitMinutes"),
                              f"expected at least trainingMaxRuntimeMinutes ({max_runtime}): the wait for spot "
                              "capacity comes on top of the run time")
        return cls(
            instance_type=_instance_type(ctx, "trainingInstanceType", cls.instance_type, TRAINING_INSTANCE_SHAPE),
            max_runtime_minutes=max_runtime,
            spot=_bool(ctx, "spotTraining", cls.spot),
            spot_max_wait_minutes=max_wait,
            quiet_window_s=_int(ctx, "quietWindowSeconds", cls.quiet_window_s, 1, 3600),
            default_instance_prompt=_text(ctx, "defaultInstancePrompt", cls.default_instance_prompt, 300),
            default_class_prompt=_text(ctx, "defaultClassPrompt", cls.default_class_prompt, 300, allow_empty=True),
            min_images=min_images,
            max_images=max_images,
            max_image_mb=_int(ctx, "datasetMaxImageMegabytes", cls.max_image_mb, 1, 200),
        )


# Longest configurable idle time: the scale-in alarm evaluates one-minute periods, and CloudWatch
# allows at most a day of them (EvaluationPeriods x Period <= 86,400 s). Largest endpoint fleet.
MAX_IDLE_MINUTES = 24 * 60
MAX_ENDPOINT_INSTANCES = 20
# SageMaker's limits for InvokeEndpointAsync: RequestTTLSeconds 60-21,600, InvocationTimeoutSeconds 1-3,600.
MAX_REQUEST_TTL_MINUTES = 360
MAX_INVOCATION_TIMEOUT_S = 3600

INSTANCE_START_MINUTES = 10
"""What starting an endpoint instance usually takes ("up to 10 minutes", ../shared/JUMPSTART.md):
told to callers whose generation waits for one. Not measured here (no AWS account)."""
SCALE_OUT_ALARM_MINUTES = 2
"""Minutes of backlog with no instance before the scale-out alarm fires (EvaluationPeriods of 60 s)."""


@dataclass(frozen=True)
class ServingConfig:
    """The asynchronous SageMaker endpoint that serves the live model."""

    instance_type: str = "ml.g4dn.2xlarge"
    endpoint_poll_s: int = 180
    """Longest wait between DescribeEndpoint checks while an endpoint is created or updated
    (SageMaker's state-change event usually ends the wait sooner)."""
    endpoint_max_wait_minutes: int = 60
    """A deployment that is not InService after this long is reported as failed."""
    idle_minutes: int = 10
    """The endpoint scales in to zero instances (billing stops) after this long without a queued or
    running request; the next request starts an instance again. 0: keep one instance always."""
    max_instances: int = 1
    """Autoscaling maximum (1: no scaling out beyond one instance)."""
    target_backlog_per_instance: int = 2
    """Autoscaling target: queued requests per instance (ApproximateBacklogSizePerInstance) above
    which another instance is started, up to max_instances."""
    request_ttl_minutes: int = MAX_REQUEST_TTL_MINUTES
    """How long SageMaker keeps a request queued (e.g. while an instance starts) before it fails it."""
    invocation_timeout_s: int = MAX_INVOCATION_TIMEOUT_S
    """How long the model may work on one image before the request fails (SageMaker's maximum)."""

    @property
    def min_instances(self) -> int:
        """Autoscaling minimum: 0 (scale to zero) unless idle_minutes is 0."""
        return 0 if self.idle_minutes else 1

    @classmethod
    def from_context(cls, ctx: Context) -> "ServingConfig":
        return cls(
            instance_type=_instance_type(ctx, "endpointInstanceType", cls.instance_type, ENDPOINT_INSTANCE_SHAPE),
            endpoint_poll_s=_int(ctx, "endpointPollSeconds", cls.endpoint_poll_s, 1, 300),
            endpoint_max_wait_minutes=_int(ctx, "endpointMaxWaitMinutes", cls.endpoint_max_wait_minutes, 5, 240),
            idle_minutes=_int(ctx, "idleMinutes", cls.idle_minutes, 0, MAX_IDLE_MINUTES),
            max_instances=_int(ctx, "endpointMaxInstances", cls.max_instances, 1, MAX_ENDPOINT_INSTANCES),
            target_backlog_per_instance=_int(ctx, "endpointTargetBacklogPerInstance",
                                             cls.target_backlog_per_instance, 1, 1000),
            request_ttl_minutes=_int(ctx, "asyncRequestTtlMinutes", cls.request_ttl_minutes, 1,
                                     MAX_REQUEST_TTL_MINUTES),
            invocation_timeout_s=_int(ctx, "asyncInvocationTimeoutSeconds", cls.invocation_timeout_s, 1,
                                      MAX_INVOCATION_TIMEOUT_S),
        )


@dataclass(frozen=True)
class NotificationConfig:
    email: Optional[str] = None
    """Address subscribed to the pipeline's SNS topic (none by default)."""

    @classmethod
    def from_context(cls, ctx: Context) -> "NotificationConfig":
        return cls(email=_optional_str(ctx, "notificationEmail", _EMAIL, "expected an e-mail address"))


# The values CloudWatch Logs accepts for a log group's retention (RetentionInDays).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
                      2557, 2922, 3288, 3653)


@dataclass(frozen=True)
class MonitoringConfig:
    """Log retention, the CloudWatch dashboard and the alarms sent to the notifications topic."""

    log_retention_days: int = 30
    """Retention of every log group the stack creates (Lambda, state machines, API access log)."""
    api_5xx_percent: int = 5
    """Alarm when more than this percentage of API requests in 5 minutes answered 5xx."""
    endpoint_5xx_errors: int = 1
    """Alarm when the endpoint answered at least this many 5xx errors (Invocation5XXErrors) in 5 minutes."""
    endpoint_stuck_minutes: int = 30
    """Alarm when a deployment has waited this long for the endpoint to leave Creating/Updating."""

    @classmethod
    def from_context(cls, ctx: Context, serving: "ServingConfig") -> "MonitoringConfig":
        retention = _int(ctx, "logRetentionDays", cls.log_retention_days, 1, 3653)
        if retention not in LOG_RETENTION_DAYS:
            raise ConfigError("logRetentionDays", ctx("logRetentionDays"),
                              f"expected one of CloudWatch Logs' retention values: "
                              f"{', '.join(map(str, LOG_RETENTION_DAYS))}")
        limit = serving.endpoint_max_wait_minutes - 1
        stuck = _int(ctx, "alarmEndpointStuckMinutes", min(cls.endpoint_stuck_minutes, limit), 1, 240)
        if stuck > limit:
            raise ConfigError("alarmEndpointStuckMinutes", ctx("alarmEndpointStuckMinutes"),
                              f"expected at most {limit}: below endpointMaxWaitMinutes "
                              f"({serving.endpoint_max_wait_minutes}), when the deployment gives up on its own")
        return cls(
            log_retention_days=retention,
            api_5xx_percent=_int(ctx, "alarmApi5xxPercent", cls.api_5xx_percent, 1, 100),
            endpoint_5xx_errors=_int(ctx, "alarmEndpoint5xxErrors", cls.endpoint_5xx_errors, 1, 100000),
            endpoint_stuck_minutes=stuck,
        )


API_AUTH_MODES = ("apiKey", "iam")
# API Gateway ends a synchronous request at 29 s: a waiting POST must answer before that.
API_MAX_WAIT_LIMIT_S = 25


@dataclass(frozen=True)
class ApiConfig:
    """The HTTPS API (API Gateway REST API in front of the live model)."""

    auth: str = "apiKey"
    """apiKey: an API key with a usage plan (x-api-key header); iam: SigV4-signed requests."""
    rate_limit_rps: int = 5
    """Steady requests per second allowed (usage plan and stage throttle); beyond it: 429."""
    burst_limit: int = 10
    """Requests allowed in a burst above the steady rate."""
    daily_quota: int = 1000
    """Requests per API key per day (apiKey mode only); beyond it: 429 until the next UTC day."""
    max_wait_s: int = 20
    """Longest a POST /generations may wait for its result before answering 202 (at most 25)."""
    generation_ttl_days: int = 7
    """Days a generation record is kept (DynamoDB TTL); images follow generatedExpiryDays."""
    image_url_expiry_s: int = 3600
    """Lifetime of the presigned image URLs the API hands out."""
    cors_allow_origin: Optional[str] = "*"
    """Origin a web page may call the API from ("*": any; none: no CORS). The key or signature is still required."""

    @classmethod
    def from_context(cls, ctx: Context) -> "ApiConfig":
        auth = ctx("apiAuth")
        if auth is None:
            auth = cls.auth
        if auth not in API_AUTH_MODES:
            raise ConfigError("apiAuth", auth, f"expected one of {', '.join(API_AUTH_MODES)}")
        rate = _int(ctx, "apiRateLimit", cls.rate_limit_rps, 1, 10000)
        burst = _int(ctx, "apiBurstLimit", cls.burst_limit, 1, 5000)
        return cls(
            auth=auth,
            rate_limit_rps=rate,
            burst_limit=burst,
            daily_quota=_int(ctx, "apiDailyQuota", cls.daily_quota, 1, 10_000_000),
            max_wait_s=_int(ctx, "apiMaxWaitSeconds", cls.max_wait_s, 0, API_MAX_WAIT_LIMIT_S),
            generation_ttl_days=_int(ctx, "generationTtlDays", cls.generation_ttl_days, 1, 365),
            # At most what the image signer's session outlives (lambda/api/aws.py, SIGNER_SESSION_S).
            image_url_expiry_s=_int(ctx, "imageUrlExpirySeconds", cls.image_url_expiry_s, 60, IMAGE_URL_MAX_EXPIRY_S),
            cors_allow_origin=cls._cors_origin(ctx),
        )

    @classmethod
    def _cors_origin(cls, ctx: Context) -> Optional[str]:
        raw = ctx("apiCorsAllowOrigin")
        if raw is None:
            return cls.cors_allow_origin
        if raw in ("", "none"):
            return None
        if raw == "*" or (isinstance(raw, str) and _ORIGIN.match(raw)):
            return raw
        raise ConfigError("apiCorsAllowOrigin", raw, 'expected "*", an origin such as https://example.com, or "none"')


@dataclass(frozen=True)
class DeploymentEnv:
    """Where the stack goes, from the usual CDK environment variables."""

    account: Optional[str] = None
    region: Optional[str] = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> "DeploymentEnv":
        account = environ.get("CDK_DEPLOY_ACCOUNT") or environ.get("CDK_DEFAULT_ACCOUNT")
        region = environ.get("CDK_DEPLOY_REGION") or environ.get("CDK_DEFAULT_REGION")
        return cls(account=account or None, region=region or None)


@dataclass(frozen=True)
class BucketDecision:
    """What the deploy-time quota check decided, as recorded in cdk.context.json."""

    action: str  # "create" or "reuse"
    reason: str
    bucket_name: Optional[str] = None

    def to_context(self) -> dict[str, str]:
        value = {"action": self.action, "reason": self.reason}
        if self.bucket_name:
            value["bucketName"] = self.bucket_name
        return value

    @classmethod
    def from_context(cls, key: str, raw: Any) -> "BucketDecision":
        allowed = 'expected {"action": "create"} or {"action": "reuse", "bucketName": "<bucket>"}'
        if not isinstance(raw, Mapping) or raw.get("action") not in ("create", "reuse"):
            raise ConfigError(key, raw, allowed)
        name = raw.get("bucketName")
        if raw["action"] == "reuse" and not (isinstance(name, str) and _BUCKET_NAME.match(name)):
            raise ConfigError(key, raw, allowed)
        return cls(action=raw["action"], reason=str(raw.get("reason", "")), bucket_name=name)


@dataclass(frozen=True)
class AppConfig:
    stack_name: str
    env: DeploymentEnv
    storage: StorageConfig
    training: TrainingConfig
    serving: ServingConfig
    notifications: NotificationConfig
    existing_bucket_name: Optional[str] = None
    """The bucket taken over instead of created: `bucketName`, or the recorded quota decision."""
    bucket_source: str = "created"
    """How the bucket was chosen: created, configured (bucketName) or reused (quota decision)."""
    api: ApiConfig = ApiConfig()
    monitoring: MonitoringConfig = MonitoringConfig()

    @classmethod
    def load(cls, ctx: Context, environ: Mapping[str, str] = os.environ) -> "AppConfig":
        """Read and check every setting. `ctx` is `app.node.try_get_context`."""
        stack_name = _optional_str(
            ctx, "stackName", _STACK_NAME, "expected a CloudFormation stack name (letters, digits, hyphens)"
        )
        stack_name = stack_name or "DreamBoothPipeline"
        env = DeploymentEnv.from_environ(environ)
        serving = ServingConfig.from_context(ctx)
        storage = StorageConfig.from_context(ctx)
        existing, source = storage.bucket_name, "configured"
        if existing is None and env.account and env.region:
            key = bucket_decision_key(stack_name, env.account, env.region)
            raw = ctx(key)
            decision = BucketDecision.from_context(key, raw) if raw is not None else None
            if decision and decision.action == "reuse":
                existing, source = decision.bucket_name, "reused"
        return cls(
            stack_name=stack_name,
            env=env,
            storage=storage,
            training=TrainingConfig.from_context(ctx),
            serving=serving,
            notifications=NotificationConfig.from_context(ctx),
            existing_bucket_name=existing,
            bucket_source=source if existing else "created",
            api=ApiConfig.from_context(ctx),
            monitoring=MonitoringConfig.from_context(ctx, serving),
        )
