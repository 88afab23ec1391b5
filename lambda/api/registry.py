"""GET /models, GET /models/{id}, PUT /models/live, POST /models/{id}/retrain and GET /status.

The registry table belongs to the training pipeline (modelId partition key; one `__live__`
pointer item). This module reads it, switches the live model by starting the pipeline's
deployment state machine, which updates the registry itself, and retrains a model whose
training failed for a transient reason by starting the training state machine on the model's
staged snapshot (claiming the model first, so one request starts one retrain).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any, Optional

from botocore.exceptions import ClientError

import records
import spec
from aws import Clients
from dreambooth_shared.contract import LIVE_POINTER_ID, STATUS_DEPLOYING, STATUS_TRAINING, STATUS_VALIDATING, error_code
from endpoint import EndpointWatcher
from errors import Conflict, NotFound, Unavailable
from settings import Settings

SWITCH_SCHEMA = "SwitchLiveRequest"
IN_PROGRESS = (STATUS_VALIDATING, STATUS_TRAINING, STATUS_DEPLOYING)
NOT_DEPLOYABLE = (STATUS_VALIDATING, STATUS_TRAINING)
_MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
FAILED = "failed"
TRAINING = "training"
# Written by the training state machine's failure chain (training_failure.py): running the same
# snapshot again can succeed. Execution `<modelId>_retrain_<n>` (RETRAIN_EXECUTION_SUFFIX in
# stacks/training/workflow.py) trains it as job `<modelId>-r<n>`.
RETRYABLE = "retryable"
RETRAIN_EXECUTION_SUFFIX = "_retrain_"

# Registry attribute -> API field, in the order the API shows them.
_FIELDS = (
    ("modelId", "model_id"),
    ("dataset", "dataset"),
    ("status", "status"),
    ("instancePrompt", "instance_prompt"),
    ("classPrompt", "class_prompt"),
    ("hyperparameters", "hyperparameters"),
    ("trainingJobName", "training_job_name"),
    ("artifactUri", "artifact_uri"),
    ("trainLoss", "train_loss"),
    ("failureReason", "failure_reason"),
    ("retryable", "retryable"),
    ("retrainCount", "retrain_count"),
    ("createdAt", "created_at"),
    ("updatedAt", "updated_at"),
)


def present_model(item: dict[str, Any], live_model_id: Optional[str]) -> dict[str, Any]:
    body = {api: item[attr] for attr, api in _FIELDS if item.get(attr) is not None}
    body.setdefault("status", "unknown")
    if not isinstance(body.get("hyperparameters", {}), dict):
        body.pop("hyperparameters")
    if not isinstance(body.get("train_loss", 0), (int, float)):
        body.pop("train_loss")
    if not isinstance(body.get("retryable", False), bool):
        body.pop("retryable")
    if not isinstance(body.get("retrain_count", 0), int):
        body.pop("retrain_count")
    for name in (
        "dataset",
        "status",
        "instance_prompt",
        "class_prompt",
        "training_job_name",
        "artifact_uri",
        "failure_reason",
        "created_at",
        "updated_at",
    ):
        if name in body and not isinstance(body[name], str):
            body[name] = str(body[name])
    body["live"] = item["modelId"] == live_model_id
    return body


@dataclass
class Registry:
    settings: Settings
    clients: Clients
    endpoint: EndpointWatcher

    def list_models(self) -> dict[str, Any]:
        items = self._scan()
        live = self._live_model_id(items)
        models = [present_model(i, live) for i in items if i["modelId"] != LIVE_POINTER_ID]
        models.sort(key=lambda m: (m.get("created_at", ""), m["model_id"]), reverse=True)
        return {"models": models, "live_model_id": live}

    def get_model(self, model_id: str) -> dict[str, Any]:
        item = self._get(model_id)
        if item is None:
            raise NotFound(f"no model with id {model_id!r}")
        return present_model(item, self._live_model_id())

    def switch_live(self, body: Any) -> tuple[int, dict[str, Any]]:
        model_id = spec.validate(SWITCH_SCHEMA, body)["model_id"]
        item = self._get(model_id)
        if item is None:
            raise NotFound(f"no model with id {model_id!r}")
        status = item.get("status")
        if status in NOT_DEPLOYABLE or not item.get("artifactUri"):
            raise Conflict(f"model {model_id!r} has no trained artifact to deploy (status: {status})")
        running = self.clients.stepfunctions.list_executions(
            stateMachineArn=self.settings.deploy_state_machine_arn, statusFilter="RUNNING", maxResults=1
        ).get("executions", [])
        if running or status == STATUS_DEPLOYING:
            raise Conflict("a deployment is already in progress; watch GET /status and try again when it ends")
        if self._live_model_id() == model_id and self.endpoint.state(fresh=True).state == "in_service":
            return 200, {"model_id": model_id, "state": "already_live"}
        execution = self.clients.stepfunctions.start_execution(
            stateMachineArn=self.settings.deploy_state_machine_arn, input=json.dumps({"modelId": model_id})
        )
        return 202, {"model_id": model_id, "state": "started", "execution_arn": execution["executionArn"]}

    def retrain(self, model_id: str) -> tuple[int, dict[str, Any]]:
        """Train a model again on its staged snapshot after a transient failure: 202, or a refusal."""
        item = self._get(model_id)
        if item is None:
            raise NotFound(f"no model with id {model_id!r}")
        status = item.get("status")
        if status != FAILED:
            if status in IN_PROGRESS and item.get("retrainCount"):
                raise Conflict(
                    f"model {model_id!r} is already being retrained (status: {status}); watch GET /models/{{id}}"
                )
            raise Conflict(f"model {model_id!r} is {status}, not failed: only a failed training can be retrained")
        reason = str(item.get("failureReason", "no reason recorded"))
        if item.get(RETRYABLE) is not True:
            folder = f"datasets/{item.get('dataset', '<name>')}/"
            if reason.startswith("invalid dataset"):
                raise Conflict(
                    f"model {model_id!r} was refused as an invalid dataset ({reason}); it is retried only "
                    f"after it changes: fix the files under {folder} and upload them again"
                )
            raise Conflict(
                f"model {model_id!r} failed for a reason a retry would not fix ({reason}): fix the cause, "
                f"then upload to {folder} again"
            )
        attempt = int(item.get("retrainCount") or 0) + 1
        # The claim: of two requests (a double click), one moves the model on; the other gets 409.
        claimed = records.update_if(
            self.clients.dynamodb,
            TableName=self.settings.registry_table,
            Key=records.key("modelId", model_id),
            UpdateExpression="SET #s = :training, retrainCount = :attempt, lastFailureReason = failureReason, "
            "updatedAt = :now REMOVE failureReason, #r",
            ConditionExpression="#s = :failed AND #r = :true AND "
            "(attribute_not_exists(retrainCount) OR retrainCount = :previous)",
            ExpressionAttributeNames={"#s": "status", "#r": RETRYABLE},
            ExpressionAttributeValues=records.to_item(
                {
                    ":training": TRAINING,
                    ":failed": FAILED,
                    ":true": True,
                    ":attempt": attempt,
                    ":previous": attempt - 1,
                    ":now": records.iso(time.time()),
                }
            ),
        )
        if claimed is None:
            raise Conflict(f"model {model_id!r} is already being retrained; watch GET /models/{{id}}")
        name = f"{model_id}{RETRAIN_EXECUTION_SUFFIX}{attempt}"
        try:
            execution = self.clients.stepfunctions.start_execution(
                stateMachineArn=self.settings.training_state_machine_arn,
                name=name,
                input=json.dumps({"dataset": item["dataset"], "retrain": {"modelId": model_id, "attempt": attempt}}),
            )
        except ClientError as error:
            self._release_retrain(model_id, attempt, reason)
            code = error_code(error) or "error"
            raise Unavailable(
                f"could not start the retrain ({code}); nothing changed, try again", retry_after_s=5
            ) from None
        return 202, {
            "model_id": model_id,
            "state": "started",
            "execution_arn": execution["executionArn"],
            "training_job_name": f"{model_id}-r{attempt}",
        }

    def _release_retrain(self, model_id: str, attempt: int, reason: str) -> None:
        """Undo a claim whose execution never started: the model is failed and retryable again."""
        records.update_if(
            self.clients.dynamodb,
            TableName=self.settings.registry_table,
            Key=records.key("modelId", model_id),
            UpdateExpression="SET #s = :failed, failureReason = :reason, #r = :true, retrainCount = :previous",
            ConditionExpression="retrainCount = :attempt AND #s = :training",
            ExpressionAttributeNames={"#s": "status", "#r": RETRYABLE},
            ExpressionAttributeValues=records.to_item(
                {
                    ":failed": FAILED,
                    ":reason": reason,
                    ":true": True,
                    ":previous": attempt - 1,
                    ":attempt": attempt,
                    ":training": TRAINING,
                }
            ),
        )

    def status(self) -> dict[str, Any]:
        pointer = self._pointer()
        live = self._live_model_id(pointer=pointer)
        live_item = self._get(live) if live else None
        training = self._scan(in_progress_only=True)
        training.sort(key=lambda i: str(i.get("createdAt", "")), reverse=True)
        return {
            "endpoint": self._endpoint_json(pointer),
            "live_model": present_model(live_item, live) if live_item else None,
            "training": [present_model(i, live) for i in training],
        }

    def _endpoint_json(self, pointer: Optional[dict[str, Any]]) -> dict[str, Any]:
        """SageMaker's view of the endpoint (instances: 0 when scaled to zero), with the last failed
        attempt to re-create it, if the registry records one."""
        body = self.endpoint.state(fresh=True).to_json()
        if pointer and pointer.get("endpointError"):
            body["last_error"] = str(pointer["endpointError"])
        return body

    def _pointer(self) -> Optional[dict[str, Any]]:
        answer = self.clients.dynamodb.get_item(
            TableName=self.settings.registry_table,
            Key=records.key("modelId", LIVE_POINTER_ID),
            ConsistentRead=True,
        )
        return records.from_item(answer["Item"]) if "Item" in answer else None

    def _get(self, model_id: str) -> Optional[dict[str, Any]]:
        if model_id == LIVE_POINTER_ID or not _MODEL_ID.fullmatch(model_id):
            return None
        answer = self.clients.dynamodb.get_item(
            TableName=self.settings.registry_table, Key=records.key("modelId", model_id), ConsistentRead=True
        )
        return records.from_item(answer["Item"]) if "Item" in answer else None

    def _live_model_id(
        self, items: Optional[list[dict[str, Any]]] = None, pointer: Optional[dict[str, Any]] = None
    ) -> Optional[str]:
        if items is not None:
            pointer = next((i for i in items if i["modelId"] == LIVE_POINTER_ID), None)
        elif pointer is None:
            pointer = self._pointer()
        live = pointer.get("liveModelId") if pointer else None
        return live if isinstance(live, str) and live else None

    def _scan(self, in_progress_only: bool = False) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {"TableName": self.settings.registry_table}
        if in_progress_only:
            kwargs.update(
                FilterExpression="#s IN (:a, :b, :c)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=records.to_item(dict(zip((":a", ":b", ":c"), IN_PROGRESS))),
            )
        items: list[dict[str, Any]] = []
        paginator = self.clients.dynamodb.get_paginator("scan")
        for page in paginator.paginate(**kwargs):
            items.extend(records.from_item(i) for i in page.get("Items", []))
        return items
