"""What an execution that ended without recording why leaves behind, found and reported.

Most failures go through the state machines' own failure chains (registry `failed` with the
reason, a notification). A few end an execution whatever it catches: `States.DataLimitExceeded`,
`States.Runtime`, the 25,000-event history limit, a timeout. Step Functions then emits its
"Execution Status Change" event; for a FAILED or TIMED_OUT execution of either state machine this
looks up the model it was working on and, if the registry still shows it in progress (the chain
never ran), marks it failed with the error and publishes the notification the chain would have.
A model already `failed` (or live, retired) is left alone, so a normal failure is never reported twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Optional

from botocore.exceptions import ClientError

TERMINAL_ERRORS = ("States.DataLimitExceeded", "States.Runtime")
CAUSE_CHARS = 500


@dataclass(frozen=True)
class Machines:
    training_arn: str
    deploy_arn: str
    in_progress: dict[str, tuple[str, ...]]
    """Machine ARN -> the statuses its models have while it runs (stuck when it is gone)."""
    failed_status: str


def model_of(registry: Any, table: str, detail: Mapping[str, Any], machines: Machines) -> Optional[dict[str, Any]]:
    """The registry item the execution worked on, or None (it ended before registering one)."""
    if detail["stateMachineArn"] == machines.deploy_arn:
        model_id = json.loads(detail.get("input") or "{}").get("modelId")
        if not model_id:
            return None
        return registry.get_item(TableName=table, Key={"modelId": {"S": model_id}}, ConsistentRead=True).get("Item")
    # The training run records its execution on the model it registers (RegisterModel).
    pages = registry.get_paginator("scan").paginate(
        TableName=table,
        FilterExpression="trainingExecution = :arn",
        ExpressionAttributeValues={":arn": {"S": detail["executionArn"]}},
        ConsistentRead=True,
    )
    return next((item for page in pages for item in page.get("Items", [])), None)


def on_execution_end(
    detail: Mapping[str, Any], *, registry: Any, sns: Any, table: str, topic_arn: str, machines: Machines
) -> dict[str, Any]:
    kind = "deployment" if detail["stateMachineArn"] == machines.deploy_arn else "training"
    error = detail.get("error") or detail["status"]
    cause = (detail.get("cause") or "no cause given")[:CAUSE_CHARS]
    reason = f"the {kind} run {detail['name']} ended with {error} before it could record why: {cause}"
    model = model_of(registry, table, detail, machines)
    if model is None:
        if kind == "training" and (error in TERMINAL_ERRORS or detail["status"] == "TIMED_OUT"):
            dataset = json.loads(detail.get("input") or "{}").get("dataset", "?")
            _publish(
                sns,
                topic_arn,
                "DreamBooth: training failed",
                f"Dataset {dataset}: {reason}. No model was registered; the live model (if any) is unchanged.",
            )
            return {"action": "notified", "reason": reason}
        return {"action": "none"}
    status = model["status"]["S"]
    if status not in machines.in_progress.get(detail["stateMachineArn"], ()):
        return {"action": "none", "status": status}  # its own failure chain ran, or it went live
    model_id = model["modelId"]["S"]
    try:
        registry.update_item(
            TableName=table,
            Key={"modelId": {"S": model_id}},
            UpdateExpression="SET #status = :failed, failureReason = :reason",
            ConditionExpression="#status = :seen",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":failed": {"S": machines.failed_status},
                ":reason": {"S": reason},
                ":seen": {"S": status},
            },
        )
    except ClientError as failure:
        if failure.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return {"action": "none", "status": "changed meanwhile"}
        raise
    subject = "DreamBooth: deployment failed" if kind == "deployment" else "DreamBooth: training failed"
    _publish(
        sns,
        topic_arn,
        subject,
        f"Model {model_id}: {reason}. It is marked failed; the previously live model (if any) is still serving.",
    )
    return {"action": "marked-failed", "modelId": model_id, "reason": reason}


def _publish(sns: Any, topic_arn: str, subject: str, message: str) -> None:
    sns.publish(TopicArn=topic_arn, Subject=subject, Message=message)
