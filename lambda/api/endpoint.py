"""State of the SageMaker endpoint that serves the live model, and its re-creation (healing).

The endpoint is an asynchronous one: SageMaker queues requests while it updates (the old model
serves until the new one is in service) and while it scales out from zero instances. Only an
endpoint that does not exist (deleted out of band, or failed) cannot queue: then the live model's
endpoint is re-created by starting the deploy state machine for the live model, which creates the
endpoint from the kept endpoint config and registers its autoscaling again (and, the model being
live already, never marks it failed when that does not work).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

from botocore.exceptions import ClientError

from dreambooth_shared import autoscaling
from dreambooth_shared.contract import error_code

NONE, CREATING, UPDATING, IN_SERVICE, FAILED = "none", "creating", "updating", "in_service", "failed"

_STATES = {
    "Creating": CREATING,
    "Updating": UPDATING,
    "SystemUpdating": UPDATING,
    "RollingBack": UPDATING,
    "InService": IN_SERVICE,
    "Failed": FAILED,
    "UpdateRollbackFailed": FAILED,
    "OutOfService": FAILED,
    "Deleting": NONE,
}

# DescribeEndpoint has a low request quota; its answer is reused for this long.
CACHE_TTL_S = 5.0
# States in which InvokeEndpointAsync queues a request (an update keeps the old model serving).
ACCEPTING = (IN_SERVICE, UPDATING)
# Requests arriving together start one re-creation: the deploy execution is named after the
# second (Step Functions answers a repeated name with the running execution). Two started a
# second apart are harmless: the deploy lock runs them one after the other, and the second finds
# the endpoint serving the live model's config already.
HEAL_WINDOW_S = 1


@dataclass(frozen=True)
class EndpointState:
    name: str
    state: str
    sagemaker_status: Optional[str] = None
    failure_reason: Optional[str] = None
    instances: Optional[int] = None
    """CurrentInstanceCount of the variant (0: scaled to zero)."""
    created_at: Optional[float] = None
    """CreationTime (epoch seconds): requests sent before it went with a deleted endpoint."""
    config_name: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name, "state": self.state}
        if self.sagemaker_status:
            body["sagemaker_status"] = self.sagemaker_status
        if self.failure_reason:
            body["failure_reason"] = self.failure_reason
        if self.instances is not None:
            body["instances"] = self.instances
        return body

    @property
    def accepts_requests(self) -> bool:
        return self.state in ACCEPTING

    @property
    def needs_healing(self) -> bool:
        return self.state in (NONE, FAILED)


class EndpointWatcher:
    def __init__(
        self,
        sagemaker: Callable[[], Any],
        name: str,
        *,
        ttl_s: float = CACHE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._sagemaker = sagemaker
        self.name = name
        self._ttl_s = ttl_s
        self._clock = clock
        self._cached: Optional[tuple[float, EndpointState]] = None

    def state(self, *, fresh: bool = False) -> EndpointState:
        now = self._clock()
        if not fresh and self._cached and now - self._cached[0] < self._ttl_s:
            return self._cached[1]
        state = self._describe()
        self._cached = (now, state)
        return state

    def serving_config(self) -> Optional[str]:
        """The endpoint config that serves now, for a result's record: the cached answer while it says
        InService (an update started since then moves traffic only once its new instances are up,
        minutes later, so the cached config is still the one serving), else a fresh one."""
        in_service = self._cached is not None and self._cached[1].state == IN_SERVICE
        return self.state(fresh=not in_service).config_name

    def _describe(self) -> EndpointState:
        try:
            answer = self._sagemaker().describe_endpoint(EndpointName=self.name)
        except ClientError as error:
            if error_code(error) == "ValidationException":
                return EndpointState(self.name, NONE)
            raise
        status = answer.get("EndpointStatus", "")
        variants = answer.get("ProductionVariants") or [{}]
        count = variants[0].get("CurrentInstanceCount")
        created = answer.get("CreationTime")
        return EndpointState(
            self.name,
            _STATES.get(status, UPDATING),
            status,
            answer.get("FailureReason"),
            instances=count if isinstance(count, int) else None,
            created_at=created.timestamp() if hasattr(created, "timestamp") else None,
            config_name=answer.get("EndpointConfigName"),
        )


@dataclass
class Healer:
    """Starts the deploy state machine for the live model when its endpoint cannot queue requests."""

    stepfunctions: Callable[[], Any]
    deploy_state_machine_arn: str
    clock: Callable[[], float] = time.time

    def heal(self, model_id: str, state: EndpointState) -> bool:
        """True when a re-creation was started (or is running under this window's name); False when
        none is needed, a deployment runs, or this window's one has already ended (the next try
        comes with the next request or the periodic check)."""
        if not state.needs_healing or not self.deploy_state_machine_arn:
            return False
        sfn = self.stepfunctions()
        if deployment_running(sfn, self.deploy_state_machine_arn):
            return False  # a deployment is under way: it creates the endpoint if it is missing
        window = int(self.clock()) // HEAL_WINDOW_S
        digest = hashlib.sha256(model_id.encode()).hexdigest()[:16]
        try:
            sfn.start_execution(
                stateMachineArn=self.deploy_state_machine_arn,
                name=f"heal-{digest}-{window}",
                input=json.dumps({"modelId": model_id}),
            )
        except ClientError as error:
            if error_code(error) != "ExecutionAlreadyExists":
                raise
            return False
        return True


def deployment_running(stepfunctions: Any, deploy_state_machine_arn: str) -> bool:
    return bool(
        stepfunctions.list_executions(
            stateMachineArn=deploy_state_machine_arn, statusFilter="RUNNING", maxResults=1
        ).get("executions")
    )


@dataclass
class ScalingRepair:
    """Registers the autoscaling of an InService endpoint that has none or only part of it (a
    deployment that ended while the endpoint was still updating could not register it; a
    registration or deregistration that failed half way leaves a target without its alarms; a lost
    registration leaves an endpoint at zero instances that never starts, or one at one that never
    stops), by invoking the stack's scaling function: never while a deployment runs (it may have
    removed the registration for its update)."""

    autoscaling: Callable[[], Any]
    cloudwatch: Callable[[], Any]
    lambda_: Callable[[], Any]
    stepfunctions: Callable[[], Any]
    scaling_function: str
    deploy_state_machine_arn: str

    def repair(self, state: EndpointState) -> Optional[str]:
        """None (not InService, or no scaling function configured), "registered" (nothing to do),
        "deployment running" (left to it) or "repaired"."""
        if state.state != IN_SERVICE or not self.scaling_function:
            return None
        if not autoscaling.missing_parts(self.autoscaling(), self.cloudwatch(), state.name):
            return "registered"
        if self.deploy_state_machine_arn and deployment_running(self.stepfunctions(), self.deploy_state_machine_arn):
            return "deployment running"
        answer = self.lambda_().invoke(
            FunctionName=self.scaling_function,
            Payload=json.dumps({"action": "register", "endpointName": state.name}).encode(),
        )
        result = json.loads(answer["Payload"].read() or b"null")
        if answer.get("FunctionError") or not (isinstance(result, dict) and result.get("registered")):
            raise RuntimeError(f"the scaling function did not register the endpoint's autoscaling: {result}")
        return "repaired"
