"""Why a training run failed, in one line, and whether running it again can help.

The training state machine's failure chain sends its whole state here. Step Functions' error of
a failed `createTrainingJob.sync` carries the whole DescribeTrainingJob answer as JSON in its
Cause; a user must never get that JSON, only SageMaker's FailureReason. A failure is *retryable*
when the same snapshot can succeed on a second try without any change (no capacity, a spot
interruption, an internal SageMaker error, throttling); the API's POST /models/{id}/retrain
runs those again on the staged snapshot (nothing is uploaded again). Anything else (an
algorithm error, a bad parameter) would fail the same way and needs a change and a new upload.
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping, Optional

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from dreambooth_shared.contract import RETRAINABLE_STAGES, STAGE_TRAINING, log_cold_start

logger = Logger()
log_cold_start(logger)

MAX_REASON_CHARS = 400
# Matched against SageMaker's FailureReason, SecondaryStatus and the Step Functions error name.
TRANSIENT_MARKERS = (
    "CapacityError",
    "InsufficientCapacity",
    "InsufficientInstanceCapacity",
    "capacity",
    "InternalServerError",
    "InternalFailure",
    "InternalError",
    "ServiceUnavailable",
    "internal error",
    "ThrottlingException",
    "Throttling",
    "TooManyRequests",
    "MaxWaitTimeExceeded",
    "Interrupted",
    "ResourceLimitExceeded",
    "States.Timeout",
    "Lambda.ServiceException",
    "Lambda.SdkClientException",
)
QUOTA_MARKER = "ResourceLimitExceeded"
# CreateTrainingJob's ResourceLimitExceeded names the quota: "The account-level service limit '<name>' is 0 ...".
# That message alone tells a quota, whatever Step Functions names the error or wraps the message in.
QUOTA_NAME = re.compile(r"service limit '([^']+)'")
_SPACE = re.compile(r"\s+")


def retry_hint(model_id: str) -> str:
    return (
        f"To run it again on the same files, without uploading them again: dreambooth retrain {model_id} "
        f"(or POST /models/{model_id}/retrain, or Retry on the web page)."
    )


def _parsed_cause(cause: Any) -> tuple[str, Optional[str]]:
    """(SageMaker's own reason or the cause as plain text, SecondaryStatus) from an error Cause."""
    text = cause if isinstance(cause, str) else json.dumps(cause) if cause is not None else ""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        reason = data.get("FailureReason") or data.get("errorMessage") or data.get("Message") or data.get("message")
        status = data.get("SecondaryStatus") or data.get("TrainingJobStatus")
        if not reason:
            reason = f"training job {data.get('TrainingJobName', '')} ended {status or 'without a reason'}".strip()
        return str(reason), (str(status) if status else None)
    return text, None


def _one_line(text: str) -> str:
    text = _SPACE.sub(" ", text).strip().rstrip(".")
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 3] + "..."


def _quotas_to_raise(state: Mapping[str, Any], reason: str) -> str:
    """The quotas the failed jobs hit: this job's, and the spot job's before it when that was refused too."""
    retry = state.get("onDemandRetry") if isinstance(state.get("onDemandRetry"), Mapping) else {}
    names: list[str] = []
    for text in (str(retry.get("spotCause") or ""), reason):
        names += [name for name in QUOTA_NAME.findall(text) if name not in names]
    if not names:
        return "quota named above"
    return ("quota " if len(names) == 1 else "quotas ") + " and ".join(f"'{name}'" for name in names)


def explain(state: Mapping[str, Any]) -> dict[str, Any]:
    """{reason, retryable, message} for the failure chain; never raises on odd input."""
    failure = state.get("failure") if isinstance(state.get("failure"), Mapping) else {}
    error = state.get("error") if isinstance(state.get("error"), Mapping) else {}
    snapshot = state.get("snapshot") if isinstance(state.get("snapshot"), Mapping) else {}
    model_id = str(snapshot.get("modelId") or (state.get("retrain") or {}).get("modelId") or "")
    dataset = str(state.get("dataset") or "")
    stage = str(failure.get("stage") or STAGE_TRAINING)
    name = str(error.get("Error") or "")
    sagemaker_reason, secondary = _parsed_cause(error.get("Cause"))
    if failure.get("plain"):
        reason = str(failure.get("reason") or "")  # already written for people (e.g. no spot capacity)
    else:
        detail = sagemaker_reason or name or "no reason given"
        prefix = f"{name}: " if name and name not in ("States.TaskFailed",) and not detail.startswith(name) else ""
        reason = f"{stage} failed: {prefix}{detail}"
    evidence = " ".join(filter(None, (name, sagemaker_reason, secondary)))
    quota = QUOTA_MARKER in evidence or QUOTA_NAME.search(evidence) is not None
    retryable = (
        bool(model_id)
        and stage in RETRAINABLE_STAGES
        and (quota or any(marker in evidence for marker in TRANSIENT_MARKERS))
    )
    reason = _one_line(reason)
    if retryable:
        hint = retry_hint(model_id)
        if quota:
            hint = f"Raise the SageMaker {_quotas_to_raise(state, sagemaker_reason)} first (Service Quotas). " + hint
    else:
        hint = (
            "Running it again on the same files would fail the same way: fix the cause (e.g. the "
            f"hyperparameters in dataset_info.json or the instance type), then upload to datasets/{dataset}/ again."
        )
    message = f"Dataset {dataset}: {reason}. The live model (if any) is unchanged. {hint}"
    return {"reason": reason, "retryable": retryable, "message": message}


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = explain(event)
    logger.info(
        "training failure explained",
        dataset=event.get("dataset"),
        retryable=result["retryable"],
        reason=result["reason"],
    )
    return result
