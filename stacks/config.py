"""Typed, frozen settings read once from CDK context.

Each setting (its context key, default, allowed values and meaning) is declared once, as a
`Setting` on the config dataclass field it fills; the configuration tables of docs/ are
written from them (`python -m scripts.settings_table`). A setting can be overridden in `cdk.json`
(which carries none by default) or on the command line (`npx cdk deploy -c bucketName=my-bucket`).
Values given on the command line arrive as strings, so every parser accepts both the typed value
and its text.
A bad value raises `ConfigError`, which names the key and what is allowed; `app.py` turns it
into a one-line message and a failed synth.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
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


# SageMaker's longest training job (MaxRuntimeInSeconds / MaxWaitTimeInSeconds): 28 days.
MAX_TRAINING_MINUTES = 28 * 24 * 60
# How long a spot job may wait for capacity (on top of its run time) before it is trained on demand.
SPOT_CAPACITY_WAIT_MINUTES = 30

JUMPSTART_LOCK_MAX_AGE_DAYS = 30
"""A region's entry of the JumpStart lock (stacks/training/jumpstart.lock.json) resolved longer ago than this is
resolved again from JumpStart's metadata by the next `make deploy` with credentials (JumpStart may have deprecated
the version or moved an artifact meanwhile)."""

JUMPSTART_LOCK_FILE = Path(__file__).resolve().parent / "training" / "jumpstart.lock.json"
"""The JumpStart lock (read by stacks/training/jumpstart_lock.py; its images' CUDA decides the GPU families here)."""

# SageMaker's NVIDIA GPU instance families for Stable Diffusion 2.1 base: each GPU's architecture and the
# first CUDA (major, minor) that builds for it (NVIDIA's CUDA Toolkit release notes: 11.8 adds Ada, sm_89,
# and Hopper, sm_90; 12.8 adds Blackwell, sm_100/sm_120). A family is accepted when the lock's images
# (their `-cuNNN-` tag, stacks/training/jumpstart.lock.json) are built for at least that CUDA: an older
# build carries no kernels for the GPU. Families not listed (no such GPU) are refused with the plain rule.
GPU_FAMILIES = {
    "g4dn": ("NVIDIA T4, Turing, sm_75", (10, 0)),
    "g5": ("NVIDIA A10G, Ampere, sm_86", (11, 1)),
    "p3": ("NVIDIA V100, Volta, sm_70", (9, 0)),
    "p4d": ("NVIDIA A100, Ampere, sm_80", (11, 0)),
    "g6": ("NVIDIA L4, Ada, sm_89", (11, 8)),
    "g6e": ("NVIDIA L40S, Ada, sm_89", (11, 8)),
    "p5": ("NVIDIA H100, Hopper, sm_90", (11, 8)),
    "gr6": ("NVIDIA L4, Ada, sm_89", (11, 8)),
    "p5e": ("NVIDIA H200, Hopper, sm_90", (11, 8)),
    "p5en": ("NVIDIA H200, Hopper, sm_90", (11, 8)),
    "p6-b200": ("NVIDIA B200, Blackwell, sm_100", (12, 8)),
    "p6-b300": ("NVIDIA B300, Blackwell, sm_100", (12, 8)),
    "p6e-gb200": ("NVIDIA GB200, Blackwell, sm_100", (12, 8)),
    "g7e": ("NVIDIA RTX PRO 6000, Blackwell, sm_120", (12, 8)),
}
_CUDA_TAG = re.compile(r"-cu(?P<major>\d+)(?P<minor>\d)-")


def lock_images_cuda(lock_file: Optional[Path] = None) -> tuple[int, int]:
    """The oldest CUDA (major, minor) the lock's images are built for: one template serves every region it
    lists, so a family must run with the images of all of them."""
    import json

    lock_file = lock_file or JUMPSTART_LOCK_FILE
    lock = json.loads(lock_file.read_text())
    images = [
        entry[name] for entry in lock["regions"].values() for name in ("training_image_uri", "inference_image_uri")
    ]
    found = [(int(m.group("major")), int(m.group("minor"))) for image in images if (m := _CUDA_TAG.search(image))]
    if not images or len(found) < len(images):
        untagged = next((image for image in images if not _CUDA_TAG.search(image)), "none")
        raise ConfigError(
            "JumpStart lock", str(lock_file.name), f"an image names no CUDA version (-cuNNN-): {untagged}"
        )
    return min(found)


def families_for(cuda: tuple[int, int]) -> tuple[str, ...]:
    return tuple(family for family, (_, needs) in GPU_FAMILIES.items() if needs <= cuda)


def _cuda_text(cuda: tuple[int, int]) -> str:
    return f"CUDA {cuda[0]}.{cuda[1]}"


_INSTANCE_TYPE = re.compile(r"^ml\.(?P<family>[a-z0-9-]+)\.(?P<size>\d*x?large)$")
_BUCKET_NAME = re.compile(r"^(?!xn--)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$")
_STACK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")
IMAGE_URL_MAX_EXPIRY_S = 3600
"""Presigned image URLs live at most this long: the signer's session (one hour, the most STS gives a
session started from a role's session) must last until the `expires_at` the API states."""
_KMS_KEY_ARN = re.compile(
    r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/(mrk-[0-9a-f]{32}|[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12})$"
)


# The botocore SageMaker model's enums of what CreateTrainingJob and CreateEndpointConfig accept.
TRAINING_INSTANCE_SHAPE = "TrainingInstanceType"
ENDPOINT_INSTANCE_SHAPE = "ProductionVariantInstanceType"


def sagemaker_instance_types(shape: str) -> tuple[str, ...]:
    """The instance types botocore's SageMaker service model lists for `shape` (offline, no call)."""
    import botocore.session

    return tuple(botocore.session.get_session().get_service_model("sagemaker").shape_for(shape).enum)


class ConfigError(ValueError):
    """A context value is missing, of the wrong type or out of range."""

    def __init__(self, key: str, value: Any, allowed: str):
        super().__init__(f"Invalid value {value!r} for context key '{key}': {allowed}.")
        self.key = key


Context = Callable[[str], Any]


@dataclass(frozen=True, kw_only=True)
class Setting:
    """One setting: its cdk context key, default, what it accepts and what it means, declared once.

    The config dataclasses below declare each field with `setting(...)`: the field's default, the
    `from_context` parsing and its error, and the configuration tables of docs/
    (`python -m scripts.settings_table`, checked by tests/test_settings_docs.py) all come from it.
    """

    key: str
    default: Any
    description: str
    shown_default: Optional[str] = None
    """How the tables show a default that follows from another setting."""
    note: str = ""
    """A limit that depends on another setting, added to the tables' "allowed" column."""

    def read(self, ctx: Context) -> Any:
        raw = ctx(self.key)
        return self.default if raw is None else self.parse(raw)

    def parse(self, raw: Any) -> Any:
        raise NotImplementedError

    def refuse(self, raw: Any, allowed: Optional[str] = None) -> ConfigError:
        return ConfigError(self.key, raw, allowed or self.rule)

    @property
    def rule(self) -> str:
        """What the error message says is allowed."""
        raise NotImplementedError

    @property
    def allowed(self) -> str:
        """What the tables say is allowed."""
        raise NotImplementedError

    @property
    def default_text(self) -> str:
        if self.shown_default is not None:
            return self.shown_default
        if self.default is None:
            return "none"
        if self.default == "":
            return "empty"
        if isinstance(self.default, bool):
            return f"`{str(self.default).lower()}`"
        return f"`{self.default}`"


@dataclass(frozen=True, kw_only=True)
class IntSetting(Setting):
    minimum: int
    maximum: int
    choices: tuple[int, ...] = ()
    choices_name: str = ""
    """What the choices are, for the error message (e.g. "CloudWatch Logs' retention values")."""

    @property
    def rule(self) -> str:
        return f"expected a whole number from {self.minimum} to {self.maximum}"

    @property
    def allowed(self) -> str:
        if self.choices:
            return f"one of {self.choices_name}: {', '.join(map(str, self.choices))}"
        return f"{self.minimum}-{self.maximum}"

    def parse(self, raw: Any) -> int:
        if isinstance(raw, bool):
            raise self.refuse(raw)
        try:
            value = raw if isinstance(raw, int) else int(str(raw).strip())
        except ValueError:
            raise self.refuse(raw) from None
        if not self.minimum <= value <= self.maximum:
            raise self.refuse(raw)
        if self.choices and value not in self.choices:
            raise self.refuse(raw, f"expected one of {self.choices_name}: {', '.join(map(str, self.choices))}")
        return value


@dataclass(frozen=True, kw_only=True)
class BoolSetting(Setting):
    rule = "expected true or false"
    allowed = "`true`, `false`"

    def parse(self, raw: Any) -> bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("true", "yes", "1"):
            return True
        if text in ("false", "no", "0"):
            return False
        raise self.refuse(raw)


@dataclass(frozen=True, kw_only=True)
class TextSetting(Setting):
    max_length: int
    allow_empty: bool = False

    @property
    def rule(self) -> str:
        return f"expected text of at most {self.max_length} characters" + ("" if self.allow_empty else ", not empty")

    @property
    def allowed(self) -> str:
        return f"text, at most {self.max_length} characters" + ("" if self.allow_empty else ", not empty")

    def parse(self, raw: Any) -> str:
        if not isinstance(raw, str) or len(raw) > self.max_length or (not self.allow_empty and not raw.strip()):
            raise self.refuse(raw)
        return raw.strip()


@dataclass(frozen=True, kw_only=True)
class PatternSetting(Setting):
    """Text matching `pattern`; empty text means the default (none unless given)."""

    pattern: re.Pattern[str]
    what: str
    """What a value is, for the error ("expected <what>") and the tables."""

    @property
    def rule(self) -> str:
        return f"expected {self.what}"

    @property
    def allowed(self) -> str:
        return self.what

    def parse(self, raw: Any) -> Optional[str]:
        if raw == "":
            return self.default
        if not isinstance(raw, str) or not self.pattern.match(raw):
            raise self.refuse(raw)
        return raw


@dataclass(frozen=True, kw_only=True)
class ChoiceSetting(Setting):
    choices: tuple[str, ...]

    @property
    def rule(self) -> str:
        return f"expected one of {', '.join(self.choices)}"

    @property
    def allowed(self) -> str:
        return ", ".join(f"`{choice}`" for choice in self.choices)

    def parse(self, raw: Any) -> str:
        if raw not in self.choices:
            raise self.refuse(raw)
        return raw


@dataclass(frozen=True, kw_only=True)
class InstanceTypeSetting(Setting):
    shape: str
    """The botocore SageMaker shape whose enum lists the instance types the call accepts."""

    @property
    def rule(self) -> str:
        return (
            "expected a SageMaker GPU instance type such as ml.g4dn.2xlarge "
            f"(families: {', '.join(families_for(lock_images_cuda()))})"
        )

    @property
    def allowed(self) -> str:
        cuda = lock_images_cuda()
        newer = [family for family in GPU_FAMILIES if family not in families_for(cuda)]
        refused = f"; {', '.join(newer[:3])} and newer are refused" if newer else ""
        return (
            f"a GPU instance type (families {', '.join(families_for(cuda))}) that botocore's "
            f"`{self.shape}` list has{refused} (the pinned images are {_cuda_text(cuda)})"
        )

    def parse(self, raw: Any) -> str:
        match = _INSTANCE_TYPE.match(raw) if isinstance(raw, str) else None
        family = match.group("family") if match else None
        if family not in GPU_FAMILIES:
            raise self.refuse(raw)
        cuda = lock_images_cuda()
        gpu, needs = GPU_FAMILIES[family]
        if needs > cuda:
            raise self.refuse(
                raw,
                (
                    f"the JumpStart lock's images are built for {_cuda_text(cuda)}, which predates the GPU of {family} "
                    f"({gpu}: {_cuda_text(needs)} first builds for it): they may not run there. Choose a type of the "
                    f"families {', '.join(families_for(cuda))}, e.g. ml.g5.2xlarge or ml.g4dn.2xlarge"
                ),
            )
        offered = sagemaker_instance_types(self.shape)
        if raw not in offered:
            family = match.group("family")
            sizes = [t for t in offered if t.split(".")[1] == family]
            raise self.refuse(
                raw,
                f"SageMaker does not offer it ({self.shape} in botocore's service model); "
                f"{family} sizes it offers: {', '.join(sizes) or 'none'}",
            )
        return raw


@dataclass(frozen=True, kw_only=True)
class OriginSetting(Setting):
    """A CORS origin: "*", scheme://host[:port], or "none"/empty for no CORS (None)."""

    rule = 'expected "*", an origin such as https://example.com, or "none"'
    allowed = "`*`, `https://host[:port]`, `none`"

    def parse(self, raw: Any) -> Optional[str]:
        if raw in ("", "none"):
            return None
        if raw == "*" or (isinstance(raw, str) and _ORIGIN.match(raw)):
            return raw
        raise self.refuse(raw)


def setting(spec: Setting) -> Any:
    """A config dataclass field whose default, parsing and documentation come from `spec`."""
    return field(default=spec.default, metadata={"setting": spec})


def settings_of(section: type) -> tuple[Setting, ...]:
    """The settings a config dataclass declares, in field order."""
    return tuple(f.metadata["setting"] for f in fields(section) if "setting" in f.metadata)


def _read(section: type, ctx: Context) -> dict[str, Any]:
    """{field name: parsed value or default} of every setting the section declares."""
    return {f.name: f.metadata["setting"].read(ctx) for f in fields(section) if "setting" in f.metadata}


_BUCKET_RULE = "an S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)"

STACK_NAME = PatternSetting(
    key="stackName",
    default="DreamBoothPipeline",
    pattern=_STACK_NAME,
    what="a CloudFormation stack name (letters, digits, hyphens)",
    description="CloudFormation stack name; run-time resource names derive from it",
)


@dataclass(frozen=True)
class StorageConfig:
    """The data bucket (datasets/, models/, generated/)."""

    bucket_name: Optional[str] = setting(
        PatternSetting(
            key="bucketName",
            default=None,
            pattern=_BUCKET_NAME,
            what=_BUCKET_RULE,
            description="use this existing bucket instead of creating one (never created, deleted or reconfigured)",
        )
    )
    bucket_quota_margin: int = setting(
        IntSetting(
            key="bucketQuotaMargin",
            default=2,
            minimum=0,
            maximum=1000,
            description="at deploy, reuse an earlier bucket when no more than this many more buckets could be created",
        )
    )
    generated_expiry_days: int = setting(
        IntSetting(
            key="generatedExpiryDays",
            default=30,
            minimum=0,
            maximum=3650,
            description="generated images under `generated/` expire after this many days (`0`: never)",
        )
    )
    noncurrent_version_expiry_days: int = setting(
        IntSetting(
            key="noncurrentVersionExpiryDays",
            default=30,
            minimum=1,
            maximum=3650,
            description="overwritten or deleted object versions expire after this many days",
        )
    )
    abort_multipart_days: int = setting(
        IntSetting(
            key="abortIncompleteUploadDays",
            default=7,
            minimum=1,
            maximum=365,
            description="incomplete multipart uploads are aborted after this many days",
        )
    )
    access_log_bucket_name: Optional[str] = setting(
        PatternSetting(
            key="accessLogBucketName",
            default=None,
            pattern=_BUCKET_NAME,
            what=_BUCKET_RULE,
            description="existing bucket that receives S3 server access logs (prefix `dreambooth-pipeline/`)",
        )
    )
    bucket_kms_key_arn: Optional[str] = setting(
        PatternSetting(
            key="bucketKmsKeyArn",
            default=None,
            pattern=_KMS_KEY_ARN,
            what="a KMS key ARN (arn:aws:kms:<region>:<account>:key/<key id>)",
            description="the customer KMS key a reused bucket's default encryption (SSE-KMS) uses: the roles get "
            "`kms:Decrypt` (readers) / `kms:GenerateDataKey` (writers) on it, through S3 only "
            "(`kms:ViaService`); `dreambooth preflight` stops with this fix when the bucket needs it",
        )
    )

    @classmethod
    def from_context(cls, ctx: Context) -> "StorageConfig":
        return cls(**_read(cls, ctx))


@dataclass(frozen=True)
class TrainingConfig:
    """The fine-tuning job and the dataset checks in front of it (used by the training pipeline)."""

    instance_type: str = setting(
        InstanceTypeSetting(
            key="trainingInstanceType",
            default="ml.g4dn.2xlarge",
            shape=TRAINING_INSTANCE_SHAPE,
            description="SageMaker GPU instance type for fine-tuning (so `ml.p3.xlarge` or `ml.g5.3xlarge`, "
            "which SageMaker does not train on, are refused at synth)",
        )
    )
    max_runtime_minutes: int = setting(
        IntSetting(
            key="trainingMaxRuntimeMinutes",
            default=120,
            minimum=10,
            maximum=MAX_TRAINING_MINUTES,
            description="hard stop of one training job (SageMaker StoppingCondition.MaxRuntimeInSeconds)",
        )
    )
    spot: bool = setting(
        BoolSetting(
            key="spotTraining",
            default=True,
            description="train on managed spot capacity (a fraction of the on-demand price); when it does not come "
            "within `spotMaxWaitMinutes`, the same photos are trained again on demand at once "
            "(see Spot training in docs/pipeline.md)",
        )
    )
    spot_max_wait_minutes: int = setting(
        IntSetting(
            key="spotMaxWaitMinutes",
            default=120 + SPOT_CAPACITY_WAIT_MINUTES,
            minimum=10,
            maximum=MAX_TRAINING_MINUTES,
            shown_default=f"`trainingMaxRuntimeMinutes` + {SPOT_CAPACITY_WAIT_MINUTES}",
            note="at least `trainingMaxRuntimeMinutes`",
            description="spot only: longest the spot job may take, waiting for capacity included "
            "(MaxWaitTimeInSeconds)",
        )
    )
    quiet_window_s: int = setting(
        IntSetting(
            key="quietWindowSeconds",
            default=120,
            minimum=1,
            maximum=3600,
            description="training starts once no file has arrived under `datasets/<name>/` for this long",
        )
    )
    default_instance_prompt: str = setting(
        TextSetting(
            key="defaultInstancePrompt",
            default="a photo of sks {dataset}",
            max_length=300,
            description="prompt used when a dataset has no `dataset_info.json` (`{dataset}` = folder name)",
        )
    )
    default_class_prompt: str = setting(
        TextSetting(
            key="defaultClassPrompt",
            default="",
            max_length=300,
            allow_empty=True,
            description="class prompt used when a dataset has no `dataset_info.json` (only needed with prior "
            "preservation)",
        )
    )
    min_images: int = setting(
        IntSetting(
            key="datasetMinImages",
            default=3,
            minimum=1,
            maximum=1000,
            description="fewest usable images a dataset may have",
        )
    )
    max_images: int = setting(
        IntSetting(
            key="datasetMaxImages",
            default=100,
            minimum=1,
            maximum=1000,
            note="at least `datasetMinImages`",
            description="most usable images a dataset may have",
        )
    )
    max_image_mb: int = setting(
        IntSetting(
            key="datasetMaxImageMegabytes",
            default=20,
            minimum=1,
            maximum=200,
            description="largest image accepted, in megabytes",
        )
    )

    @classmethod
    def from_context(cls, ctx: Context) -> "TrainingConfig":
        values = _read(cls, ctx)
        if values["max_images"] < values["min_images"]:
            raise ConfigError(
                "datasetMaxImages", values["max_images"], f"expected at least datasetMinImages ({values['min_images']})"
            )
        max_runtime = values["max_runtime_minutes"]
        if ctx("spotMaxWaitMinutes") is None:
            values["spot_max_wait_minutes"] = min(max_runtime + SPOT_CAPACITY_WAIT_MINUTES, MAX_TRAINING_MINUTES)
        elif values["spot_max_wait_minutes"] < max_runtime:
            # SageMaker refuses MaxWaitTimeInSeconds < MaxRuntimeInSeconds: say so at synth instead.
            raise ConfigError(
                "spotMaxWaitMinutes",
                ctx("spotMaxWaitMinutes"),
                f"expected at least trainingMaxRuntimeMinutes ({max_runtime}): the wait for spot "
                "capacity comes on top of the run time",
            )
        return cls(**values)


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

    instance_type: str = setting(
        InstanceTypeSetting(
            key="endpointInstanceType",
            default="ml.g4dn.2xlarge",
            shape=ENDPOINT_INSTANCE_SHAPE,
            description="SageMaker GPU instance type for the endpoint",
        )
    )
    endpoint_poll_s: int = setting(
        IntSetting(
            key="endpointPollSeconds",
            default=180,
            minimum=1,
            maximum=300,
            description="longest wait between DescribeEndpoint checks while an endpoint is created or updated; the "
            "endpoint's state-change event usually ends it sooner",
        )
    )
    endpoint_max_wait_minutes: int = setting(
        IntSetting(
            key="endpointMaxWaitMinutes",
            default=60,
            minimum=5,
            maximum=240,
            note="with `endpointPollSeconds`, within Step Functions' 25,000 history events per execution: synth "
            "refuses pairs that do not fit (e.g. 2 s with 60 min, 1 s with 240 min) and names the smallest poll "
            "and largest wait that do",
            description="a deployment not InService after this long fails; the previous model keeps serving. Also "
            "bounds the wait for a busy endpoint (e.g. OutOfService) before an update",
        )
    )
    idle_minutes: int = setting(
        IntSetting(
            key="idleMinutes",
            default=10,
            minimum=0,
            maximum=MAX_IDLE_MINUTES,
            description="the endpoint scales in to zero instances (billing stops) after this many minutes without a "
            "queued or running request; the next request starts an instance (`0`: keep one instance "
            "always)",
        )
    )
    max_instances: int = setting(
        IntSetting(
            key="endpointMaxInstances",
            default=1,
            minimum=1,
            maximum=MAX_ENDPOINT_INSTANCES,
            description="autoscaling maximum (`1`: no scaling out beyond one instance)",
        )
    )
    target_backlog_per_instance: int = setting(
        IntSetting(
            key="endpointTargetBacklogPerInstance",
            default=2,
            minimum=1,
            maximum=1000,
            description="autoscaling target: queued requests (one per image) per instance "
            "(ApproximateBacklogSizePerInstance) above which another instance starts",
        )
    )
    request_ttl_minutes: int = setting(
        IntSetting(
            key="asyncRequestTtlMinutes",
            default=MAX_REQUEST_TTL_MINUTES,
            minimum=1,
            maximum=MAX_REQUEST_TTL_MINUTES,
            description="how long SageMaker keeps a request queued (e.g. while an instance starts) before it fails it "
            "(RequestTTLSeconds)",
        )
    )
    invocation_timeout_s: int = setting(
        IntSetting(
            key="asyncInvocationTimeoutSeconds",
            default=MAX_INVOCATION_TIMEOUT_S,
            minimum=1,
            maximum=MAX_INVOCATION_TIMEOUT_S,
            description="how long the model may work on one image before the request fails (InvocationTimeoutSeconds)",
        )
    )

    @property
    def min_instances(self) -> int:
        """Autoscaling minimum: 0 (scale to zero) unless idle_minutes is 0."""
        return 0 if self.idle_minutes else 1

    @classmethod
    def from_context(cls, ctx: Context) -> "ServingConfig":
        return cls(**_read(cls, ctx))


@dataclass(frozen=True)
class NotificationConfig:
    email: Optional[str] = setting(
        PatternSetting(
            key="notificationEmail",
            default=None,
            pattern=_EMAIL,
            what="an e-mail address",
            description="e-mail address subscribed to the pipeline's SNS topic (notifications and alarms)",
        )
    )

    @classmethod
    def from_context(cls, ctx: Context) -> "NotificationConfig":
        return cls(**_read(cls, ctx))


# The values CloudWatch Logs accepts for a log group's retention (RetentionInDays).
LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)


@dataclass(frozen=True)
class MonitoringConfig:
    """Log retention, the CloudWatch dashboard and the alarms sent to the notifications topic."""

    log_retention_days: int = setting(
        IntSetting(
            key="logRetentionDays",
            default=30,
            minimum=1,
            maximum=3653,
            choices=LOG_RETENTION_DAYS,
            choices_name="CloudWatch Logs' retention values",
            description="retention of every log group the stack creates (Lambda, state machines, API access log)",
        )
    )
    api_5xx_percent: int = setting(
        IntSetting(
            key="alarmApi5xxPercent",
            default=5,
            minimum=1,
            maximum=100,
            description="alarm when more than this percentage of API requests in 5 minutes answered 5xx",
        )
    )
    endpoint_5xx_errors: int = setting(
        IntSetting(
            key="alarmEndpoint5xxErrors",
            default=1,
            minimum=1,
            maximum=100000,
            description="alarm when the endpoint answered at least this many 5xx errors (Invocation5XXErrors) in "
            "5 minutes",
        )
    )
    endpoint_stuck_minutes: int = setting(
        IntSetting(
            key="alarmEndpointStuckMinutes",
            default=30,
            minimum=1,
            maximum=240,
            note="below `endpointMaxWaitMinutes` (when that is 31 or less, the default is one less than it)",
            description="alarm when a deployment has waited this long for the endpoint to leave Creating/Updating",
        )
    )

    @classmethod
    def from_context(cls, ctx: Context, serving: "ServingConfig") -> "MonitoringConfig":
        values = _read(cls, ctx)
        limit = serving.endpoint_max_wait_minutes - 1
        if ctx("alarmEndpointStuckMinutes") is None:
            values["endpoint_stuck_minutes"] = min(values["endpoint_stuck_minutes"], limit)
        elif values["endpoint_stuck_minutes"] > limit:
            raise ConfigError(
                "alarmEndpointStuckMinutes",
                ctx("alarmEndpointStuckMinutes"),
                f"expected at most {limit}: below endpointMaxWaitMinutes "
                f"({serving.endpoint_max_wait_minutes}), when the deployment gives up on its own",
            )
        return cls(**values)


API_AUTH_MODES = ("apiKey", "iam")
# API Gateway ends a synchronous request at 29 s: a waiting POST must answer before that.
API_MAX_WAIT_LIMIT_S = 25


@dataclass(frozen=True)
class ApiConfig:
    """The HTTPS API (API Gateway REST API in front of the live model)."""

    auth: str = setting(
        ChoiceSetting(
            key="apiAuth",
            default="apiKey",
            choices=API_AUTH_MODES,
            description="`apiKey`: an API key with a usage plan (`x-api-key` header); `iam`: SigV4-signed IAM callers",
        )
    )
    rate_limit_rps: int = setting(
        IntSetting(
            key="apiRateLimit",
            default=5,
            minimum=1,
            maximum=10000,
            description="steady requests per second allowed (usage plan and stage throttle); beyond it: 429",
        )
    )
    burst_limit: int = setting(
        IntSetting(
            key="apiBurstLimit",
            default=10,
            minimum=1,
            maximum=5000,
            description="requests allowed in a burst above the steady rate",
        )
    )
    daily_quota: int = setting(
        IntSetting(
            key="apiDailyQuota",
            default=1000,
            minimum=1,
            maximum=10_000_000,
            description="requests per API key per day (apiKey mode only); beyond it: 429 until the next UTC day",
        )
    )
    max_wait_s: int = setting(
        IntSetting(
            key="apiMaxWaitSeconds",
            default=20,
            minimum=0,
            maximum=API_MAX_WAIT_LIMIT_S,
            description="longest a `POST /generations` waits for its result before answering 202 (API Gateway ends "
            "a request at 29 s)",
        )
    )
    generation_ttl_days: int = setting(
        IntSetting(
            key="generationTtlDays",
            default=7,
            minimum=1,
            maximum=365,
            description="days a generation record is kept (DynamoDB TTL on `expiresAt`); images follow "
            "`generatedExpiryDays`",
        )
    )
    # At most what the image signer's session outlives (lambda/api/aws.py, SIGNER_SESSION_S).
    image_url_expiry_s: int = setting(
        IntSetting(
            key="imageUrlExpirySeconds",
            default=3600,
            minimum=60,
            maximum=IMAGE_URL_MAX_EXPIRY_S,
            description="lifetime of the presigned image URLs the API hands out; each image's `expires_at` says when "
            "its URL stops working (at most an hour: they are signed by a one-hour session of the image "
            "signer role, see Image URLs in docs/api.md)",
        )
    )
    cors_allow_origin: Optional[str] = setting(
        OriginSetting(
            key="apiCorsAllowOrigin",
            default="*",
            description="origin a web page may call the API from (`*`: any; `none`: no CORS); preflight answers and "
            "CORS headers on every answer, API Gateway's refusals included. The key or signature is "
            "still required",
        )
    )

    @classmethod
    def from_context(cls, ctx: Context) -> "ApiConfig":
        return cls(**_read(cls, ctx))


SETTINGS: dict[str, tuple[Setting, ...]] = {
    "stack": (STACK_NAME,),
    "storage": settings_of(StorageConfig),
    "training": settings_of(TrainingConfig),
    "serving": settings_of(ServingConfig),
    "notifications": settings_of(NotificationConfig),
    "api": settings_of(ApiConfig),
    "monitoring": settings_of(MonitoringConfig),
}
"""Every setting, per section: the registry the configuration tables are generated from."""


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
        stack_name = STACK_NAME.read(ctx)
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
