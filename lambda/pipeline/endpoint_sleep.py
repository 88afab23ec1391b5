"""Idle shutdown of the endpoint, and its autoscaling. Plain logic: the handlers are in idle_tasks.py.

Sleep: when the live endpoint has served nothing for `idle_minutes`, delete the endpoint only (the
SageMaker model and endpoint config stay) and mark the registry's `__live__` pointer asleep. The
API wakes it on the next generation request by running the deploy state machine in wake mode.

Last use = the newest of: the endpoint's CloudWatch `Invocations` (any minute with a non-zero
sum), the pointer's `lastUsedAt` (written by the API on every POST /generations), the pointer's
`updatedAt` (when the model went live or woke) and the endpoint's LastModifiedTime.

Races are closed with two conditional writes:
- the deployment lock (the deploy state machine's `deploy-lock` item) is taken for the few seconds
  of the sleep, as `idle-check:<id>` with `idleUntil`: no deployment or wake-up can run meanwhile,
  and a deployment finding the lock waits (a stale idle lock is taken over after `idleUntil`);
- the pointer is marked asleep only if `lastUsedAt` did not move past the cutoff. The API's
  `lastUsedAt` update returns the new item, so a request either lands before the mark (and the
  sleep is called off) or sees the mark (and wakes the endpoint).

The lock's expiry is on the wall clock (`clock`), idleness is judged as of the event's time.
Two endpoints the registry does not call awake are handled too (same lock, never during a
deployment, models and configs kept): one InService after its wake-up was marked failed is
recorded awake (then the idle rules apply); one InService with no live model recorded is deleted
after the idle window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Optional

from botocore.exceptions import ClientError

LIVE_POINTER_ID = "__live__"
DEPLOY_LOCK_ID = "deploy-lock"
VARIANT_NAME = "AllTraffic"
IDLE_LOCK_PREFIX = "idle-check:"
# The idle check holds the deployment lock at most this long (it needs seconds).
IDLE_LOCK_S = 300

# `endpointState` on the live pointer; absent = awake (the deploy state machine's PutItem drops it).
ASLEEP, WAKING, WAKE_FAILED = "asleep", "waking", "wake_failed"

# CloudWatch refuses a GetMetricStatistics request for more data points than this.
MAX_DATAPOINTS = 1440
# The metric window reaches this far before the idle window (the metric's own delay).
METRIC_MARGIN_MINUTES = 5

SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
SCALING_POLICY_NAME = "invocations-per-instance"
SCALE_IN_COOLDOWN_S = 600
SCALE_OUT_COOLDOWN_S = 120


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_iso(text: Any) -> Optional[datetime]:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)
    except ValueError:
        return None


def sleep_episode(moment: datetime) -> str:
    """Names one sleep; the wake-up execution is named after it, so each episode wakes once."""
    return moment.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S%f")[:-3]


def resource_id(endpoint: str) -> str:
    return f"endpoint/{endpoint}/variant/{VARIANT_NAME}"


def metric_period_s(window: timedelta) -> int:
    """The smallest period (a multiple of 60 s) giving at most MAX_DATAPOINTS points over `window`."""
    minutes = max(1, -(-int(window.total_seconds()) // 60))
    return 60 * max(1, -(-minutes // MAX_DATAPOINTS))


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class IdleSettings:
    registry_table: str
    state_table: str
    endpoint_name: str
    deploy_state_machine_arn: str
    idle_minutes: int
    topic_arn: str = ""


@dataclass(frozen=True)
class Decision:
    # slept, disabled, no_live_model, asleep, no_endpoint, busy, deploying, in_use,
    # orphan_deleted (an endpoint no live model is recorded for)
    action: str
    detail: str = ""
    last_used_at: Optional[str] = None


def _code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def _string(item: dict[str, Any], name: str) -> Optional[str]:
    value = item.get(name, {})
    return value.get("S") if isinstance(value, dict) else None


class IdleCheck:
    """One run of the scheduled idle check (see module docstring)."""

    def __init__(self, settings: IdleSettings, *, dynamodb: Any, sagemaker: Any, cloudwatch: Any, sfn: Any,
                 autoscaling: Any, sns: Any = None, clock: Callable[[], datetime] = _utcnow):
        self.settings = settings
        self.clock = clock  # the wall clock: lock expiry (the event's time may be late)
        self.dynamodb, self.sagemaker, self.cloudwatch = dynamodb, sagemaker, cloudwatch
        self.sfn, self.autoscaling, self.sns = sfn, autoscaling, sns

    def run(self, now: datetime, request_id: str) -> Decision:
        settings = self.settings
        if settings.idle_minutes <= 0:
            return Decision("disabled")
        pointer = self._pointer()
        model_id = _string(pointer or {}, "liveModelId")
        if not pointer or not model_id:
            return self._orphan(pointer, now, request_id)
        state = _string(pointer, "endpointState")
        if state == WAKE_FAILED:
            pointer = self._recover_wake(pointer, model_id, request_id)
            if pointer is None:
                return Decision("asleep", WAKE_FAILED)
        elif state:
            return Decision("asleep", state)
        endpoint = self._describe()
        if endpoint is None:
            return Decision("no_endpoint")
        if endpoint["EndpointStatus"] != "InService":
            return Decision("busy", endpoint["EndpointStatus"])
        if self._deployment_running():
            return Decision("deploying")
        last_used = self._last_used(pointer, endpoint, now)
        cutoff = now - timedelta(minutes=settings.idle_minutes)
        if last_used is not None and last_used > cutoff:
            return Decision("in_use", last_used_at=iso(last_used))
        if not self._take_lock(request_id, now):
            return Decision("deploying", "the deployment lock is held")
        try:
            if not self._mark_asleep(model_id, endpoint["EndpointConfigName"], cutoff, now):
                return Decision("in_use", "a generation request arrived during the check")
            try:
                deregister_scaling(self.autoscaling, settings.endpoint_name)
                self.sagemaker.delete_endpoint(EndpointName=settings.endpoint_name)
            except ClientError:
                self._unmark(now)  # still serving: say so
                raise
        finally:
            self._release_lock(request_id)
        self._notify(model_id, endpoint["EndpointConfigName"], last_used)
        return Decision("slept", endpoint["EndpointConfigName"],
                        last_used_at=iso(last_used) if last_used else None)

    def _recover_wake(self, pointer: dict[str, Any], model_id: str, request_id: str) -> Optional[dict[str, Any]]:
        """A wake-up marked failed (e.g. it timed out) whose endpoint SageMaker finished anyway:
        InService with the live model's kept config and no deployment running. Recorded awake (the
        sleep fields go, under the lock and only if the pointer is unchanged), so the idle rules
        apply to it from here on. The pointer as it now is, or None when it stays wake_failed."""
        config = _string(pointer, "endpointConfigName") or model_id
        endpoint = self._describe()
        if (endpoint is None or endpoint["EndpointStatus"] != "InService"
                or endpoint["EndpointConfigName"] != config or self._deployment_running()):
            return None
        if not self._take_lock(request_id, self.clock()):
            return None
        try:
            attempt = pointer.get("wakeAttempt", {"N": "0"})
            recovered = self._update_if(
                TableName=self.settings.registry_table, Key={"modelId": {"S": LIVE_POINTER_ID}},
                UpdateExpression=("REMOVE endpointState, asleepSince, sleepEpisode, wakeAttempt, "
                                  "wakeFailureReason, wakeRequestedAt"),
                ConditionExpression=("liveModelId = :model AND endpointState = :failed AND "
                                     "(attribute_not_exists(wakeAttempt) OR wakeAttempt = :attempt)"),
                ExpressionAttributeValues={":model": {"S": model_id}, ":failed": {"S": WAKE_FAILED},
                                           ":attempt": attempt if "N" in attempt else {"N": "0"}},
            )
        finally:
            self._release_lock(request_id)
        if not recovered:
            return None  # a request claimed a new wake-up meanwhile: that run decides
        return self._pointer()

    def _orphan(self, pointer: Optional[dict[str, Any]], now: datetime, request_id: str) -> Decision:
        """An InService endpoint with no live model recorded (a first deployment that timed out
        while SageMaker went on creating it) serves nothing the registry knows: deleted after the
        idle window, when no deployment runs. Its model and config are kept."""
        endpoint = self._describe()
        if endpoint is None or endpoint["EndpointStatus"] != "InService" or self._deployment_running():
            return Decision("no_live_model")
        last_used = self._last_used(pointer or {}, endpoint, now)
        if last_used is not None and last_used > now - timedelta(minutes=self.settings.idle_minutes):
            return Decision("no_live_model", "an endpoint without a live model, not idle long enough yet",
                            last_used_at=iso(last_used))
        if not self._take_lock(request_id, now):
            return Decision("deploying", "the deployment lock is held")
        try:
            # Deployments write the pointer under the lock: re-read now that nothing else can.
            if _string(self._pointer() or {}, "liveModelId"):
                return Decision("no_live_model", "a model went live during the check")
            deregister_scaling(self.autoscaling, self.settings.endpoint_name)
            self.sagemaker.delete_endpoint(EndpointName=self.settings.endpoint_name)
        finally:
            self._release_lock(request_id)
        config = endpoint["EndpointConfigName"]
        if self.sns and self.settings.topic_arn:
            self.sns.publish(
                TopicArn=self.settings.topic_arn, Subject="DreamBooth: unregistered endpoint deleted",
                Message=(f"Endpoint {self.settings.endpoint_name} (config {config}) was InService with no live "
                         f"model recorded (a deployment that did not finish) and unused since "
                         f"{iso(last_used) if last_used else 'its creation'}; it was deleted to stop its cost. "
                         "Its model and endpoint config are kept."),
            )
        return Decision("orphan_deleted", config, last_used_at=iso(last_used) if last_used else None)

    # ---- reading ----

    def _pointer(self) -> Optional[dict[str, Any]]:
        return self.dynamodb.get_item(TableName=self.settings.registry_table,
                                      Key={"modelId": {"S": LIVE_POINTER_ID}}, ConsistentRead=True).get("Item")

    def _describe(self) -> Optional[dict[str, Any]]:
        try:
            return self.sagemaker.describe_endpoint(EndpointName=self.settings.endpoint_name)
        except ClientError as error:
            if _code(error) == "ValidationException":
                return None
            raise

    def _deployment_running(self) -> bool:
        answer = self.sfn.list_executions(stateMachineArn=self.settings.deploy_state_machine_arn,
                                          statusFilter="RUNNING", maxResults=1)
        return bool(answer.get("executions"))

    def _last_used(self, pointer: dict[str, Any], endpoint: dict[str, Any], now: datetime) -> Optional[datetime]:
        candidates = [parse_iso(_string(pointer, "lastUsedAt")), parse_iso(_string(pointer, "updatedAt"))]
        modified = endpoint.get("LastModifiedTime")
        if isinstance(modified, datetime):
            candidates.append(modified.astimezone(timezone.utc))
        candidates.append(self._last_invocation(now))
        known = [c for c in candidates if c is not None]
        return max(known) if known else None

    def _last_invocation(self, now: datetime) -> Optional[datetime]:
        """End of the newest minute in which the endpoint was invoked (within the idle window)."""
        window = timedelta(minutes=self.settings.idle_minutes + METRIC_MARGIN_MINUTES)
        period = metric_period_s(window)  # 60 s up to a day; coarser so CloudWatch answers (<= 1440 points)
        answer = self.cloudwatch.get_metric_statistics(
            Namespace="AWS/SageMaker", MetricName="Invocations",
            Dimensions=[{"Name": "EndpointName", "Value": self.settings.endpoint_name},
                        {"Name": "VariantName", "Value": VARIANT_NAME}],
            StartTime=now - window, EndTime=now, Period=period, Statistics=["Sum"],
        )
        used = [point["Timestamp"] for point in answer.get("Datapoints", []) if point.get("Sum", 0) > 0]
        # The end of the period: never earlier than the real use.
        return max(used).astimezone(timezone.utc) + timedelta(seconds=period) if used else None

    # ---- writing ----

    def _take_lock(self, request_id: str, now: datetime) -> bool:
        """`now` is the moment judged (the event's time); the lock's expiry is on the wall clock, so a
        late delivery does not take a lock that has already expired."""
        taken = self.clock()
        return self._update_if(
            TableName=self.settings.state_table, Key={"pk": {"S": DEPLOY_LOCK_ID}},
            UpdateExpression="SET #owner = :me, idleUntil = :until, since = :now",
            ConditionExpression="attribute_not_exists(#owner)",
            ExpressionAttributeNames={"#owner": "owner"},
            ExpressionAttributeValues={":me": {"S": IDLE_LOCK_PREFIX + request_id},
                                       ":until": {"S": iso(taken + timedelta(seconds=IDLE_LOCK_S))},
                                       ":now": {"S": iso(taken)}},
        )

    def _update_if(self, **request: Any) -> bool:
        """UpdateItem with a ConditionExpression: False (nothing written) when the condition failed."""
        try:
            self.dynamodb.update_item(**request)
        except ClientError as error:
            if _code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _release_lock(self, request_id: str) -> None:
        self._update_if(  # nothing to release when a deployment took it over after idleUntil
            TableName=self.settings.state_table, Key={"pk": {"S": DEPLOY_LOCK_ID}},
            UpdateExpression="REMOVE #owner, idleUntil",
            ConditionExpression="#owner = :me",
            ExpressionAttributeNames={"#owner": "owner"},
            ExpressionAttributeValues={":me": {"S": IDLE_LOCK_PREFIX + request_id}},
        )

    def _mark_asleep(self, model_id: str, config_name: str, cutoff: datetime, now: datetime) -> bool:
        return self._update_if(
            TableName=self.settings.registry_table, Key={"modelId": {"S": LIVE_POINTER_ID}},
            UpdateExpression=("SET endpointState = :asleep, asleepSince = :now, sleepEpisode = :episode, "
                              "endpointConfigName = :config, wakeAttempt = :zero "
                              "REMOVE wakeFailureReason, wakeRequestedAt"),
            ConditionExpression=("liveModelId = :model AND attribute_not_exists(endpointState) AND "
                                 "(attribute_not_exists(lastUsedAt) OR lastUsedAt <= :cutoff)"),
            ExpressionAttributeValues={
                ":asleep": {"S": ASLEEP}, ":now": {"S": iso(now)}, ":episode": {"S": sleep_episode(now)},
                ":config": {"S": config_name}, ":zero": {"N": "0"}, ":model": {"S": model_id},
                ":cutoff": {"S": iso(cutoff)},
            },
        )

    def _unmark(self, now: datetime) -> None:
        self.dynamodb.update_item(
            TableName=self.settings.registry_table, Key={"modelId": {"S": LIVE_POINTER_ID}},
            UpdateExpression="SET lastUsedAt = :now REMOVE endpointState, asleepSince, sleepEpisode, wakeAttempt",
            ExpressionAttributeValues={":now": {"S": iso(now)}},
        )

    def _notify(self, model_id: str, config_name: str, last_used: Optional[datetime]) -> None:
        if not (self.sns and self.settings.topic_arn):
            return
        since = iso(last_used) if last_used else "its creation"
        self.sns.publish(
            TopicArn=self.settings.topic_arn, Subject="DreamBooth: endpoint asleep",
            Message=(f"Endpoint {self.settings.endpoint_name} had no use since {since} "
                     f"(idleMinutes={self.settings.idle_minutes}) and was deleted to stop its cost. Model "
                     f"{model_id} and endpoint config {config_name} are kept: the next generation request "
                     "wakes it (a few minutes; the API answers 503 with Retry-After meanwhile)."),
        )


def register_scaling(autoscaling: Any, endpoint: str, *, min_instances: int, max_instances: int,
                     target_invocations: int) -> dict[str, Any]:
    """Scalable target for the variant + target tracking on invocations per instance. Idempotent."""
    autoscaling.register_scalable_target(
        ServiceNamespace="sagemaker", ResourceId=resource_id(endpoint), ScalableDimension=SCALABLE_DIMENSION,
        MinCapacity=min_instances, MaxCapacity=max_instances,
    )
    autoscaling.put_scaling_policy(
        PolicyName=SCALING_POLICY_NAME, ServiceNamespace="sagemaker", ResourceId=resource_id(endpoint),
        ScalableDimension=SCALABLE_DIMENSION, PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": float(target_invocations),
            "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
            "ScaleInCooldown": SCALE_IN_COOLDOWN_S,
            "ScaleOutCooldown": SCALE_OUT_COOLDOWN_S,
        },
    )
    return {"resourceId": resource_id(endpoint), "min": min_instances, "max": max_instances,
            "targetInvocationsPerInstance": target_invocations}


def deregister_scaling(autoscaling: Any, endpoint: str) -> bool:
    """Remove the scalable target (and with it its policy). False when there was none."""
    try:
        autoscaling.deregister_scalable_target(
            ServiceNamespace="sagemaker", ResourceId=resource_id(endpoint), ScalableDimension=SCALABLE_DIMENSION,
        )
        return True
    except ClientError as error:
        # AWS answers ObjectNotFoundException; moto a ValidationException "No scalable target found".
        if _code(error) == "ObjectNotFoundException" or "No scalable target" in str(error):
            return False
        raise
