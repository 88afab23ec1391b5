"""GET /models, GET /models/{id}, PUT /models/live and GET /status, over the pipeline's registry.

The registry table belongs to the training pipeline (modelId partition key; one `__live__`
pointer item). This module only reads it, and switches the live model by starting the
pipeline's deployment state machine, which updates the registry itself.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Optional

import records
import spec
from aws import Clients
from endpoint import EndpointWatcher
from errors import Conflict, NotFound
from records import LIVE_POINTER_ID
from settings import Settings

SWITCH_SCHEMA = "SwitchLiveRequest"
IN_PROGRESS = ("validating", "training", "deploying")
NOT_DEPLOYABLE = ("validating", "training")
_MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")

# Registry attribute -> API field, in the order the API shows them.
_FIELDS = (
    ("modelId", "model_id"), ("dataset", "dataset"), ("status", "status"),
    ("instancePrompt", "instance_prompt"), ("classPrompt", "class_prompt"),
    ("hyperparameters", "hyperparameters"), ("trainingJobName", "training_job_name"),
    ("artifactUri", "artifact_uri"), ("trainLoss", "train_loss"), ("failureReason", "failure_reason"),
    ("createdAt", "created_at"), ("updatedAt", "updated_at"),
)


def present_model(item: dict[str, Any], live_model_id: Optional[str]) -> dict[str, Any]:
    body = {api: item[attr] for attr, api in _FIELDS if item.get(attr) is not None}
    body.setdefault("status", "unknown")
    if not isinstance(body.get("hyperparameters", {}), dict):
        body.pop("hyperparameters")
    if not isinstance(body.get("train_loss", 0), (int, float)):
        body.pop("train_loss")
    for name in ("dataset", "status", "instance_prompt", "class_prompt", "training_job_name",
                 "artifact_uri", "failure_reason", "created_at", "updated_at"):
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
        if running or status == "deploying":
            raise Conflict("a deployment is already in progress; watch GET /status and try again when it ends")
        if self._live_model_id() == model_id and self.endpoint.state(fresh=True).state == "in_service":
            return 200, {"model_id": model_id, "state": "already_live"}
        execution = self.clients.stepfunctions.start_execution(
            stateMachineArn=self.settings.deploy_state_machine_arn, input=json.dumps({"modelId": model_id})
        )
        return 202, {"model_id": model_id, "state": "started", "execution_arn": execution["executionArn"]}

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
            TableName=self.settings.registry_table, Key=records.key("modelId", LIVE_POINTER_ID), ConsistentRead=True,
        )
        return records.from_item(answer["Item"]) if "Item" in answer else None

    def _get(self, model_id: str) -> Optional[dict[str, Any]]:
        if model_id == LIVE_POINTER_ID or not _MODEL_ID.fullmatch(model_id):
            return None
        answer = self.clients.dynamodb.get_item(
            TableName=self.settings.registry_table, Key=records.key("modelId", model_id), ConsistentRead=True
        )
        return records.from_item(answer["Item"]) if "Item" in answer else None

    def _live_model_id(self, items: Optional[list[dict[str, Any]]] = None,
                       pointer: Optional[dict[str, Any]] = None) -> Optional[str]:
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
