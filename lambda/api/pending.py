"""Requests the endpoint could not queue yet: re-create the endpoint, then send them.

Run by the dispatcher function (dispatch.py) when SageMaker reports the endpoint's state changed
and on a schedule. Each pending record is claimed with a conditional write before its requests
are sent, so that two dispatchers never send the same image; an image InvokeEndpointAsync did
not take is left pending and sent by a later run, once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

import records
from aws import Clients
from dreambooth_shared.contract import LIVE_POINTER_ID, STACK_DELETING_ATTRIBUTE
from endpoint import EndpointWatcher, Healer, ScalingRepair
from inference import Submitter, error_text, not_accepted
from records import FAILED, PENDING_SHARD, QUEUED
from settings import Settings


def pending_fields(sent: int, now: float) -> dict[str, Any]:
    """What marks a record pending: `submitted` images sent so far, and the sparse index's keys."""
    return {"submitted": sent, "pendingShard": PENDING_SHARD, "pendingSince": records.iso(now)}


def mark_pending(clients: Clients, settings: Settings, generation_id: str, sent: int, now: float, reason: str) -> None:
    fields = {**pending_fields(sent, now), "sendError": reason[:300]}
    clients.dynamodb.update_item(
        TableName=settings.generations_table,
        Key=records.key("generationId", generation_id),
        UpdateExpression="SET " + ", ".join(f"{name} = :{name}" for name in fields),
        ExpressionAttributeValues=records.to_item({f":{name}": value for name, value in fields.items()}),
    )


def unsent_expiry_reason(settings: Settings) -> str:
    return (
        f"the endpoint could not take the request within the request TTL ({settings.request_ttl_s // 60} min); "
        "nothing ran: send it again"
    )


@dataclass
class Dispatcher:
    settings: Settings
    clients: Clients
    endpoint: EndpointWatcher
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self.submitter = Submitter(self.settings, self.clients)
        self.healer = Healer(lambda: self.clients.stepfunctions, self.settings.deploy_state_machine_arn, self.clock)
        self.scaling = ScalingRepair(
            lambda: self.clients.application_autoscaling,
            lambda: self.clients.cloudwatch,
            lambda: self.clients.lambda_,
            lambda: self.clients.stepfunctions,
            self.settings.scaling_function_name,
            self.settings.deploy_state_machine_arn,
        )

    def run(self) -> dict[str, Any]:
        pointer = self._live_pointer()
        live = pointer.get("liveModelId")
        live = live if isinstance(live, str) and live else None
        state = self.endpoint.state(fresh=True)
        summary: dict[str, Any] = {"endpoint": state.state, "healing": False, "sent": 0, "expired": 0}
        if pointer.get(STACK_DELETING_ATTRIBUTE):
            # The cleanup is deleting the endpoint with the stack: neither heal nor register anything.
            return {**summary, "stackDeleting": True}
        summary["healing"] = bool(live) and self.healer.heal(live, state)
        if live:
            summary["autoscaling"] = self.scaling.repair(state)
        for item in self._pending():
            if self.clock() - records.parse_iso(item["createdAt"]) > self.settings.request_ttl_s:
                summary["expired"] += self._expire(item)
                continue
            if not state.accepts_requests:
                continue
            claimed = self._claim(item["generationId"])
            if claimed is None:
                continue  # another run took it
            start = int(claimed.get("submitted") or 0)
            sent, error = self.submitter.submit(claimed, start=start)
            if error is not None:
                mark_pending(
                    self.clients, self.settings, claimed["generationId"], sent, self.clock(), error_text(error)
                )
                if not_accepted(error):
                    break  # the endpoint stopped taking requests: the next run goes on
                continue
            summary["sent"] += 1
        return summary

    def _live_pointer(self) -> dict[str, Any]:
        answer = self.clients.dynamodb.get_item(
            TableName=self.settings.registry_table, Key=records.key("modelId", LIVE_POINTER_ID), ConsistentRead=True
        )
        return records.from_item(answer["Item"]) if "Item" in answer else {}

    def _pending(self) -> Iterator[dict[str, Any]]:
        paginator = self.clients.dynamodb.get_paginator("query")
        for page in paginator.paginate(
            TableName=self.settings.generations_table,
            IndexName=self.settings.pending_index,
            KeyConditionExpression="pendingShard = :shard",
            ExpressionAttributeValues=records.to_item({":shard": PENDING_SHARD}),
        ):
            for raw in page.get("Items", []):
                yield records.from_item(raw)

    def _claim(self, generation_id: str) -> Optional[dict[str, Any]]:
        """Take a pending record off the index, recorded as sent (the sending follows at once)."""
        return records.update_if(
            self.clients.dynamodb,
            TableName=self.settings.generations_table,
            Key=records.key("generationId", generation_id),
            UpdateExpression="SET submittedAt = :now REMOVE pendingShard, pendingSince, sendError",
            ConditionExpression="#s = :queued AND attribute_exists(pendingShard)",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues=records.to_item({":now": records.iso(self.clock()), ":queued": QUEUED}),
        )

    def _expire(self, item: dict[str, Any]) -> int:
        expired = records.update_if(
            self.clients.dynamodb,
            TableName=self.settings.generations_table,
            Key=records.key("generationId", item["generationId"]),
            UpdateExpression="SET #s = :failed, #e = :reason, finishedAt = :now REMOVE pendingShard, pendingSince",
            ConditionExpression="#s = :queued AND attribute_exists(pendingShard)",
            ExpressionAttributeNames={"#s": "status", "#e": "error"},
            ExpressionAttributeValues=records.to_item(
                {
                    ":failed": FAILED,
                    ":queued": QUEUED,
                    ":now": records.iso(self.clock()),
                    ":reason": unsent_expiry_reason(self.settings),
                }
            ),
        )
        return 1 if expired is not None else 0
