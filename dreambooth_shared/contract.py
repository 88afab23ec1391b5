"""Names two sides share: the constructs, the Lambda functions they deploy, and the CLI.

Defined once here and imported on both sides, never retyped, as `dreambooth_shared.contract`: the
constructs and the CLI from the repository, the handlers from their asset, which carries this package.
Plain values only (and three tiny helpers: `error_code`, `training_quota_name`, `log_cold_start`):
this module imports nothing at its top, so it runs in any Lambda asset unchanged.
"""


def error_code(error: BaseException) -> str:
    """The AWS error code of a botocore ClientError ("NoSuchKey", "ConditionalCheckFailedException",
    "404" for a HEAD), "" for anything else."""
    response = getattr(error, "response", None)
    details = response.get("Error") if isinstance(response, dict) else None
    return str(details.get("Code") or "") if isinstance(details, dict) else ""


# ---- S3 prefixes of the data bucket ----
DATASETS_PREFIX = "datasets/"
"""Photos of a dataset under datasets/<name>/: an upload here starts a training."""
# Where the pipeline copies an accepted snapshot for the training job. Its first path part is not
# a valid dataset name, so uploads the pipeline makes there never trigger a training.
STAGING_PREFIX = DATASETS_PREFIX + "_pipeline/"
MODELS_PREFIX = "models/"
"""A model's artifacts, dataset report and snapshot list: models/<dataset>/<version>/."""
GENERATED_PREFIX = "generated/"
"""Generated images: generated/<generationId>/<index>.jpg."""
# API Gateway cuts synchronous integrations at 29 s: the API function answers (or is stopped) before.
API_GATEWAY_LIMIT_S = 29
# Where the CLI and the web page stage a dataset's images before committing them into datasets/<name>/:
# uploads/<name>/<token>/ (outside datasets/, so staging never triggers the pipeline).
UPLOADS_PREFIX = "uploads/"
# Asynchronous inference: the API's request objects, SageMaker's answers and failures.
INFERENCE_PREFIX = "inference/"
INFERENCE_REQUESTS_PREFIX = INFERENCE_PREFIX + "requests/"
INFERENCE_OUTPUTS_PREFIX = INFERENCE_PREFIX + "outputs/"
INFERENCE_FAILURES_PREFIX = INFERENCE_PREFIX + "failures/"

# ---- the model registry (modelId partition key) ----
LIVE_POINTER_ID = "__live__"
"""Registry item that points at the live model (see docs/pipeline.md for the item layout)."""
STACK_DELETING_ATTRIBUTE = "stackDeletingSince"
"""Set on the live pointer by the cleanup when the stack is being deleted: from then on nothing
creates the endpoint again (the dispatcher neither heals nor registers scaling; a deployment, an
API heal's included, stops at its start with StackBeingDeleted)."""
# Model statuses, in the order a model normally goes through them.
STATUS_VALIDATING = "validating"
STATUS_TRAINING = "training"
STATUS_DEPLOYING = "deploying"
STATUS_LIVE = "live"
STATUS_RETIRED = "retired"
STATUS_FAILED = "failed"

# ---- the pipeline-state table (pk partition key) ----
DATASET_ITEM_PREFIX = "dataset#"  # quiet-window debounce of one dataset's uploads
SNAPSHOT_ITEM_PREFIX = "snapshot#"  # "this dataset snapshot was already taken on": blocks duplicates
DEPLOY_LOCK_ID = "deploy-lock"  # the one deployment allowed at a time
ENDPOINT_WAITER_PREFIX = "endpoint-waiter#"  # a deployment's parked wait for its endpoint

# ---- the endpoint ----
# The two state machines are named "<stack name>-train" and "<stack name>-deploy".
TRAINING_MACHINE_SUFFIX = "-train"
DEPLOY_MACHINE_SUFFIX = "-deploy"

VARIANT_NAME = "AllTraffic"
"""The endpoint's one production variant (the deploy workflow names it; autoscaling scales it)."""
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
"""What Application Auto Scaling scales on the variant (its instance count)."""


# ---- SageMaker's quotas (AWS's names, as Service Quotas lists them) ----
def training_quota_name(instance_type: str, *, spot: bool = False) -> str:
    """The account's quota of training instances of one type, e.g. "ml.g4dn.2xlarge for spot training
    job usage": what preflight reads and CreateTrainingJob's ResourceLimitExceeded names in its message
    ("The account-level service limit '<name>' is 0 Instances ...")."""
    return f"{instance_type} for {'spot ' if spot else ''}training job usage"


# ---- custom metrics ----
METRICS_NAMESPACE = "DreamBoothPipeline"
"""Namespace of every custom metric of this project (Powertools' POWERTOOLS_METRICS_NAMESPACE)."""
# Powertools adds a `service` dimension (POWERTOOLS_SERVICE_NAME) to every metric it emits.
PIPELINE_SERVICE = "dreambooth-pipeline"
API_SERVICE = "inference-api"
RESULTS_SERVICE = "generation-results"
METRIC_ENDPOINT_IN_SERVICE = "EndpointInService"
METRIC_ENDPOINT_TRANSITION_MINUTES = "EndpointTransitionMinutes"
METRIC_GENERATIONS_REQUESTED = "GenerationsRequested"  # every accepted generation (API_SERVICE)
METRIC_GENERATIONS_SUCCEEDED = "GenerationsSucceeded"  # from SageMaker's notices (RESULTS_SERVICE)
METRIC_GENERATIONS_FAILED = "GenerationsFailed"
# Published by the training state machine itself (aws-sdk PutMetricData, no Lambda; PIPELINE_SERVICE)
# after each trained model, and read by the dashboard.
METRIC_TRAINING_SECONDS = "TrainingSeconds"
METRIC_BILLABLE_SECONDS = "BillableTrainingSeconds"
METRIC_TRAIN_LOSS = "TrainLoss"


class ApiEnv:
    """Environment variables the InferenceApi construct sets for the API's functions (settings.py reads them)."""

    GENERATIONS_TABLE = "GENERATIONS_TABLE"
    REGISTRY_TABLE = "REGISTRY_TABLE"
    BUCKET_NAME = "BUCKET_NAME"
    ENDPOINT_NAME = "ENDPOINT_NAME"
    DEPLOY_STATE_MACHINE_ARN = "DEPLOY_STATE_MACHINE_ARN"
    TRAINING_STATE_MACHINE_ARN = "TRAINING_STATE_MACHINE_ARN"
    MAX_WAIT_S = "MAX_WAIT_SECONDS"
    GENERATION_TTL_DAYS = "GENERATION_TTL_DAYS"
    IMAGE_URL_EXPIRY_S = "IMAGE_URL_EXPIRY_SECONDS"
    IMAGE_SIGNER_ROLE_ARN = "IMAGE_SIGNER_ROLE_ARN"
    CORS_ALLOW_ORIGIN = "CORS_ALLOW_ORIGIN"
    API_AUTH = "API_AUTH"
    IDLE_MINUTES = "IDLE_MINUTES"
    REQUEST_PREFIX = "ASYNC_REQUEST_PREFIX"
    REQUEST_TTL_S = "ASYNC_REQUEST_TTL_SECONDS"
    INVOCATION_TIMEOUT_S = "ASYNC_INVOCATION_TIMEOUT_SECONDS"
    INSTANCE_START_MINUTES = "INSTANCE_START_MINUTES"
    PENDING_INDEX = "PENDING_INDEX_NAME"
    SCALING_FUNCTION_NAME = "SCALING_FUNCTION_NAME"  # the dispatcher's only


class PipelineEnv:
    """Environment variables the pipeline's constructs set for its functions (intake, training, serving,
    monitoring); the dataset-judging ones are also set on the API's function (its dataset commit)."""

    BUCKET_NAME = "BUCKET_NAME"
    # how datasets are judged (dataset_rules.JudgeSettings)
    DEFAULT_INSTANCE_PROMPT = "DEFAULT_INSTANCE_PROMPT"
    DEFAULT_CLASS_PROMPT = "DEFAULT_CLASS_PROMPT"
    DEFAULT_HYPERPARAMETERS = "DEFAULT_HYPERPARAMETERS"
    TRAINING_INSTANCE_TYPE = "TRAINING_INSTANCE_TYPE"
    MIN_IMAGES = "MIN_IMAGES"
    MAX_IMAGES = "MAX_IMAGES"
    MAX_IMAGE_BYTES = "MAX_IMAGE_BYTES"
    TRAINING_SCRIPT_URI = "TRAINING_SCRIPT_URI"
    # the upload listener
    STATE_TABLE_NAME = "STATE_TABLE_NAME"
    TRAINING_STATE_MACHINE_ARN = "TRAINING_STATE_MACHINE_ARN"
    TOPIC_ARN = "TOPIC_ARN"
    QUIET_WINDOW_S = "QUIET_WINDOW_SECONDS"
    # model packaging
    INFERENCE_SCRIPT_URI = "INFERENCE_SCRIPT_URI"
    # endpoint autoscaling
    MAX_INSTANCES = "MAX_INSTANCES"
    TARGET_BACKLOG_PER_INSTANCE = "TARGET_BACKLOG_PER_INSTANCE"
    IDLE_MINUTES = "IDLE_MINUTES"
    # the report of runs that ended uncaught
    REGISTRY_TABLE_NAME = "REGISTRY_TABLE_NAME"
    DEPLOY_STATE_MACHINE_ARN = "DEPLOY_STATE_MACHINE_ARN"
    TRAINING_STATUSES = "TRAINING_STATUSES"
    DEPLOY_STATUSES = "DEPLOY_STATUSES"
    FAILED_STATUS = "FAILED_STATUS"


# Failure stages of the training state machine (the `stage` of its failure chain) after which the
# dataset's staged snapshot exists, so that a retrain has something to train on
# (stacks/training/workflow.py names them; lambda/training/training_failure.py reads them).
STAGE_TRAINING = "training"
STAGE_TRAINING_ON_DEMAND = "training on demand"  # the retry after a spot stop
STAGE_RECORDING_TRAINING_START = "recording the training start"
STAGE_PREPARING_RETRAIN = "preparing the retrain"
RETRAINABLE_STAGES = (STAGE_TRAINING, STAGE_TRAINING_ON_DEMAND, STAGE_RECORDING_TRAINING_START, STAGE_PREPARING_RETRAIN)


# ---- what each function reports about itself (read by the acceptance run, scripts/acceptance.py) ----
COLD_START_LOG_MESSAGE = "cold start"
SDK_VERSIONS_LOG_FIELD = "sdk_versions"
"""The structured log field each function writes once per cold start: {"boto3": ..., "botocore": ...},
the SDK it really runs with (bundled or the Lambda runtime's)."""


class PackagedLog:
    """The packaging function's line for each training output it packages (training/runtime/model_tasks.py):
    the acceptance run finds it by the output (the job's S3ModelArtifacts) to see whether that output had
    code/inference.py, and the Lambda REPORT line of the same request for how long the packaging took."""

    MESSAGE = "model packaged"
    TRAINING_OUTPUT = "training_output"
    CODE_ADDED = "code_added"
    """True: the training output had no code/inference.py, so the step added JumpStart's."""


PACKAGING_TIMEOUT_S = 900
"""The packaging function's timeout (Lambda's longest): the whole trained model streams through it once."""


def log_cold_start(logger) -> None:  # noqa: ANN001 (a Powertools Logger; not imported here)
    """One structured line per cold start (each handler module calls it where it creates its logger)."""
    import boto3
    import botocore

    logger.info(
        COLD_START_LOG_MESSAGE,
        extra={SDK_VERSIONS_LOG_FIELD: {"boto3": boto3.__version__, "botocore": botocore.__version__}},
    )
