"""What the harness patches into moto, each patch entered on the harness's ExitStack (undone on exit).

See the docstring of emulator/pipeline_harness.py for why each exists:
- Step Functions: the `sagemaker:createTrainingJob.sync` integration moto lacks
  (`SageMakerSyncService`), field-name conversion for `states:startExecution` and aws-sdk tasks,
  results handed to the state as JSON, a Wait on a timestamp that waits until that moment, and
  Timestamp* Choice rules that compare RFC 3339 timestamps with fractions.
- Step Functions: an execution started without a name gets a fresh UUID, as in AWS
  (`patch_execution_names`; moto names it `None`, so identical nameless starts collapse into one),
  and a stopped one reads ABORTED as soon as StopExecution answers (`patch_stop_execution`).
- Lambda: moto's docker-less backend echoes payloads; `patch_lambda_invoke` runs the real handler
  in-process through the harness instead (the harness owns the functions and their threads).
"""

from __future__ import annotations

import functools
import json
import threading
from contextlib import ExitStack
from datetime import datetime, timezone
from typing import Any, Callable, Optional
from unittest import mock

import boto3

from emulator.account import REGION
from emulator.clock import VirtualClock

# The EventBridge rule Step Functions creates in the account, and uses with the machine's role, to
# learn when a training job of a `createTrainingJob.sync` task ends (Step Functions developer guide,
# "IAM policies for Amazon SageMaker", Run a Job (.sync)). AWS's name, not the project's.
SAGEMAKER_TRAINING_MANAGED_RULE = "StepFunctionsGetEventsForSageMakerTrainingJobsRule"
MANAGED_RULE_ACTIONS = ("events:PutTargets", "events:PutRule", "events:DescribeRule")


# `authorize(role ARN, checks) -> refusals` of the harness running now (its `IamEnforcement.authorize_role`),
# set by `patch_step_functions`: what Step Functions does as a machine's role beyond a task's own call.
# Read at call time: moto's parsed definitions, and the task services in them, outlive a harness.
_authorize_as_role: Optional[Callable[[str, list[Any]], list[Any]]] = None


def sagemaker_sync_service_class() -> type:
    from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import ResourceCondition
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_unsupported import (
        StateTaskServiceUnsupported,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails
    from moto.stepfunctions.parser.asl.utils import boto_client
    from moto.stepfunctions.parser.asl.utils.encoding import to_json_str

    class SageMakerSyncService(StateTaskServiceUnsupported):
        """`sagemaker:*` tasks; `createTrainingJob.sync` polls DescribeTrainingJob like AWS does."""

        def __init__(self) -> None:
            super().__init__()
            self._supported_integration_patterns = {ResourceCondition.WaitForTaskToken, ResourceCondition.Sync}

        def _task_failed(self, env, cause: str) -> FailureEventException:
            """States.TaskFailed with `cause`, as Step Functions reports a failed SageMaker task."""
            return FailureEventException(
                FailureEvent(
                    env=env,
                    error_name=StatesErrorName(typ=StatesErrorNameType.StatesTaskFailed),
                    event_type=HistoryEventType.TaskFailed,
                    event_details=EventDetails(
                        taskFailedEventDetails=TaskFailedEventDetails(
                            resource=self._get_sfn_resource(),
                            resourceType=self._get_sfn_resource_type(),
                            error=StatesErrorNameType.StatesTaskFailed.to_name(),
                            cause=cause,
                        )
                    ),
                )
            )

        def _before_eval_execution(self, env, resource_runtime_part, raw_parameters, state_credentials):
            super()._before_eval_execution(
                env=env,
                resource_runtime_part=resource_runtime_part,
                raw_parameters=raw_parameters,
                state_credentials=state_credentials,
            )
            authorize = _authorize_as_role
            if (
                authorize is None
                or self.resource.condition != ResourceCondition.Sync
                or self._get_boto_service_action() != "create_training_job"
            ):
                return
            from emulator.iam import Check

            role = state_credentials.role_arn
            rule = (
                f"arn:aws:events:{resource_runtime_part.region}:{resource_runtime_part.account}:"
                f"rule/{SAGEMAKER_TRAINING_MANAGED_RULE}"
            )
            if authorize(role, [Check(action, rule) for action in MANAGED_RULE_ACTIONS]):
                # Before the job is created. Public reports show AWS refusing this when the state
                # machine is created or updated (the deploy fails); a run here fails at the task.
                raise self._task_failed(env, f"'{role}' is not authorized to create managed-rule.")

        def _build_sync_resolver(self, env, resource_runtime_part, normalised_parameters, state_credentials):
            if self._get_boto_service_action() != "create_training_job":
                raise RuntimeError(f"harness: no .sync for {self.resource.resource_arn}")
            # Looked up at call time: emulator/iam.py signs it with the state machine's role.
            client = boto_client.boto_client_for(
                service="sagemaker", region=resource_runtime_part.region, state_credentials=state_credentials
            )
            env.stack.pop()  # the CreateTrainingJob answer
            name = normalised_parameters["TrainingJobName"]

            def resolve():
                job = client.describe_training_job(TrainingJobName=name)
                job.pop("ResponseMetadata", None)
                status = job["TrainingJobStatus"]
                if status in ("InProgress", "Stopping"):
                    return None
                job = json.loads(json.dumps(job, default=json_default))
                if status == "Completed":
                    return job
                raise self._task_failed(env, to_json_str(job))

            return resolve

        def _from_error(self, env, ex):
            # A refused SageMaker call is a task error in AWS (which `States.ALL` catches), not the
            # States.Runtime moto's base class makes of it.
            from botocore.exceptions import ClientError

            if not isinstance(ex, ClientError):
                return super()._from_error(env, ex)
            error, cause = sagemaker_task_error(ex.response)
            return FailureEvent(
                env=env,
                error_name=CustomErrorName(error_name=error),
                event_type=HistoryEventType.TaskFailed,
                event_details=EventDetails(
                    taskFailedEventDetails=TaskFailedEventDetails(
                        resource=self._get_sfn_resource(),
                        resourceType=self._get_sfn_resource_type(),
                        error=error,
                        cause=cause,
                    )
                ),
            )

    return SageMakerSyncService


def sagemaker_task_error(response: dict[str, Any]) -> tuple[str, str]:
    """(Error, Cause) of a Task state whose SageMaker call was refused. Step Functions names the error
    after the SDK's exception class: `SageMaker.ResourceLimitExceededException` for an error SageMaker's
    API models (AWS's own CreateTrainingJob example retries on that name: Step Functions developer
    guide, "Create and manage Amazon SageMaker AI jobs"), `SageMaker.AmazonSageMakerException` for the
    rest (ValidationException, ...). The Cause is SageMaker's message in the SDK's wrapper, as Step
    Functions shows other services' refusals; whether SageMaker's is wrapped so is not confirmed, so
    the project must not depend on the wrapper (a test swaps this function for the bare message)."""
    code = str(response.get("Error", {}).get("Code", ""))
    modeled = {
        name
        for name in _client_meta("sagemaker").service_model.shape_names
        if _client_meta("sagemaker").service_model.shape_for(name).metadata.get("exception")
    }
    error = (
        f"SageMaker.{code}{'' if code.endswith('Exception') else 'Exception'}"
        if code in modeled
        else "SageMaker.AmazonSageMakerException"
    )
    meta = response.get("ResponseMetadata", {})
    cause = (
        f"{response['Error'].get('Message', '')} (Service: AmazonSageMaker; Status Code: "
        f"{meta.get('HTTPStatusCode')}; Error Code: {code}; Request ID: {meta.get('RequestId')}; Proxy: null)"
    )
    return error, cause


def pascal_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {k[:1].upper() + k[1:]: pascal_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [pascal_keys(v) for v in value]
    return value


def utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value))


@functools.lru_cache(maxsize=None)
def _client_meta(service_name: str) -> Any:
    """A client's service model and method names (static: one client per service per process)."""
    return boto3.client(service_name, region_name=REGION).meta


_PARSED: dict[str, Any] = {}  # definition -> moto's parse of it, for the process
_PARSED_LOCK = threading.Lock()


def patch_execution_names(stack: ExitStack) -> None:
    """StartExecution without `name`: AWS names the execution with a UUID, so every nameless start
    is an execution of its own. moto's executing backend names it `None`: a second identical
    nameless start answers the first (running) execution, a later one ExecutionAlreadyExists, which
    hides a double start AWS would run twice (and fails a second start AWS would run)."""
    import uuid

    from moto.stepfunctions.parser.models import StepFunctionsParserBackend

    original = StepFunctionsParserBackend.start_execution
    if getattr(original, "names_executions", False):  # already in place (the test session's and a harness's)
        return

    def start_execution(backend: Any, state_machine_arn: str, name: Any = None, *args: Any, **kwargs: Any) -> Any:
        return original(backend, state_machine_arn, name or str(uuid.uuid4()), *args, **kwargs)

    start_execution.names_executions = True  # type: ignore[attr-defined]
    start_execution.moto_s = original  # type: ignore[attr-defined]  # for a test to plant moto's own naming
    stack.enter_context(mock.patch.object(StepFunctionsParserBackend, "start_execution", start_execution))


def patch_stop_execution(stack: ExitStack) -> None:
    """StopExecution: AWS answers once the execution is ABORTED (a DescribeExecution or a start of the
    same name right after it sees the stop). moto's executing backend marks it ABORTED from the
    execution's own thread some time later, so a start of the same name and input meanwhile answered
    the "running" twin (the stopped-window test failed so, 1 run in 4)."""
    from moto.stepfunctions.parser.api import ExecutionStatus
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramStopped
    from moto.stepfunctions.parser.backend.execution import Execution

    original = Execution.stop
    if getattr(original, "stops_at_once", False):  # already in place (the test session's and a harness's)
        return

    def stop(execution: Any, stop_date: Any, error: Any, cause: Any) -> None:
        original(execution, stop_date, error, cause)
        worker = execution.exec_worker
        if worker is not None and isinstance(worker.env.program_state(), ProgramStopped):
            execution.exec_status = ExecutionStatus.ABORTED
            execution.stop_date = stop_date

    stop.stops_at_once = True  # type: ignore[attr-defined]
    stop.moto_s = original  # type: ignore[attr-defined]  # for a test to plant moto's own stop
    stack.enter_context(mock.patch.object(Execution, "stop", stop))


def patch_step_functions(stack: ExitStack, authorize: Optional[Callable[[str, list[Any]], list[Any]]] = None) -> None:
    """The SageMaker .sync service and the conversions AWS makes that moto's interpreter skips
    (`authorize`: see `_authorize_as_role`)."""
    patch_jsonpath_parse(stack)
    patch_response_keys(stack)
    patch_execution_names(stack)
    patch_stop_execution(stack)
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_factory as factory,
    )

    original_factory = factory.state_task_service_for
    sync_service = sagemaker_sync_service_class()
    stack.enter_context(mock.patch(f"{__name__}._authorize_as_role", authorize))

    def service_for(service_name: str):
        if service_name == "sagemaker":
            return sync_service()
        return original_factory(service_name)

    stack.enter_context(mock.patch.object(factory, "state_task_service_for", service_for))
    # state_task_factory binds the name at its import (`from ... import state_task_service_for`):
    # patched there too, or a process that imported it before any harness (xdist workers, in
    # whatever order they get test files) keeps moto's own SageMaker service ("Unsupported sync
    # callback procedure" at createTrainingJob.sync).
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_factory

    stack.enter_context(mock.patch.object(state_task_factory, "state_task_service_for", service_for))

    # moto lists an execution before its start() sets its status (None for a moment): a
    # ListExecutions on another thread then fails with AttributeError. AWS answers RUNNING.
    from moto.stepfunctions.parser.backend.execution import Execution

    stack.enter_context(
        mock.patch.object(
            Execution,
            "status",
            property(lambda execution: execution.exec_status.value if execution.exec_status is not None else "RUNNING"),
        )
    )

    # moto parses a definition (ANTLR, a second or more for ours) at CreateStateMachine and again
    # at every StartExecution. The parsed program holds no execution state (each execution's lives
    # in its own Environment), so one parse per distinct definition serves every execution.
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    original_parse = AmazonStateLanguageParser.parse

    def parse_once(definition: str) -> Any:
        with _PARSED_LOCK:
            if definition not in _PARSED:  # a syntax error raises and is not remembered
                _PARSED[definition] = original_parse(definition)
            return _PARSED[definition]

    stack.enter_context(mock.patch.object(AmazonStateLanguageParser, "parse", staticmethod(parse_once)))

    # moto's `states:startExecution` passes ASL's field names (Input, StateMachineArn) to boto3,
    # which expects input, stateMachineArn, and hands boto3's answer back unconverted; AWS (and
    # LocalStack, which moto's interpreter comes from) convert both ways. Added here.
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_sfn import (
        StateTaskServiceSfn,
    )

    original_normalise = StateTaskServiceSfn._normalise_parameters

    def normalise_parameters(service, parameters, boto_service_name=None, service_action_name=None):
        original_normalise(service, parameters, boto_service_name, service_action_name)
        for key in list(parameters):
            if key[:1].isupper():
                parameters[key[0].lower() + key[1:]] = parameters.pop(key)

    def normalise_response(service, response, boto_service_name=None, service_action_name=None):
        if isinstance(response, dict) and service_action_name is None:
            for key in list(response):
                value = response.pop(key)
                response[key[0].upper() + key[1:]] = value.isoformat() if isinstance(value, datetime) else value

    original_eval = StateTaskServiceSfn._eval_service_task

    def eval_service_task(service, env, resource_runtime_part, normalised_parameters, state_credentials):
        original_eval(service, env, resource_runtime_part, normalised_parameters, state_credentials)
        normalise_response(service, env.stack[-1])

    stack.enter_context(mock.patch.object(StateTaskServiceSfn, "_normalise_parameters", normalise_parameters))

    # AWS hands aws-sdk results to the state as JSON (timestamps as strings); moto leaves
    # Python datetimes in the state, which then cannot be serialized.
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
        StateTaskServiceAwsSdk,
    )

    original_sdk_eval = StateTaskServiceAwsSdk._eval_service_task

    def sdk_eval(service, env, resource_runtime_part, normalised_parameters, state_credentials):
        # Field names: ASL uses the API's names with a capital first letter (ExecutionArn),
        # boto3 the model's own (executionArn for Step Functions); AWS maps between them.
        model = _client_meta(service._get_boto_service_name())
        operation = model.service_model.operation_model(model.method_to_api_mapping[service._get_boto_service_action()])
        members = {name.lower(): name for name in operation.input_shape.members}
        for key in list(normalised_parameters):
            normalised_parameters[members.get(key.lower(), key)] = normalised_parameters.pop(key)
        original_sdk_eval(service, env, resource_runtime_part, normalised_parameters, state_credentials)
        env.stack[-1] = pascal_keys(json.loads(json.dumps(env.stack[-1], default=json_default)))

    stack.enter_context(mock.patch.object(StateTaskServiceAwsSdk, "_eval_service_task", sdk_eval))

    # moto's Timestamp* Choice comparisons parse only "...:SSZ" (no fraction), and its own
    # $$.State.EnteredTime is written "...+00:00": AWS compares RFC 3339 timestamps with
    # fractional seconds, e.g. the deployment lock's idleUntil with the entered time.
    from moto.stepfunctions.parser.asl.component.state.choice.comparison.operator.implementations.is_operator import (
        IsTimestamp,
    )

    def string_to_timestamp(string: Any) -> Optional[datetime]:
        try:
            return datetime.fromisoformat(str(string).replace("Z", "+00:00")).astimezone(timezone.utc)
        except ValueError:
            return None

    stack.enter_context(mock.patch.object(IsTimestamp, "string_to_timestamp", staticmethod(string_to_timestamp)))
    stack.enter_context(mock.patch.object(StateTaskServiceSfn, "_eval_service_task", eval_service_task))


def patch_jsonpath_parse(stack: ExitStack) -> None:
    """moto's interpreter builds a JSONPath parser (jsonpath-ng's, with PLY tables) for every path it
    evaluates, at every state of every run; the parse of a path string is the same each time and
    jsonpath-ng's parsed expressions are only read (find / update build new data, not new paths),
    so each string is parsed once per process."""
    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.utils import json_path

    for module in (json_path, result_path):
        original = module.parse
        memoized = _MEMOIZED_PARSE.setdefault(original, functools.lru_cache(maxsize=8192)(original))
        stack.enter_context(mock.patch.object(module, "parse", memoized))


_MEMOIZED_PARSE: dict[Any, Any] = {}


def patch_response_keys(stack: ExitStack) -> None:
    """moto serializes every response member by member, and for each member of each object asks six
    alias providers which attribute names to try (`XFormedAttributePicker.get_possible_keys`), then
    tries each name: for a 25,000-event execution history that is 1.1 million members and most of
    the test's time. The names depend only on the member's key, its shape and parent shape, and the
    object's class (and on the object's own `Meta` aliases: objects that have one are asked every
    time). moto builds a new picker for each response, and botocore's shapes are fixed for the life
    of that response (`members` / `member` are cached properties), so the picker remembers the names
    for the response it serializes. For a plain dict (most of what moto's Step Functions returns) the
    names are tried with `dict.get`, as moto's `get_value` does for a name without a dot."""
    from moto.core.serialize import XFormedAttributePicker
    from moto.core.utils import MISSING, get_value

    keys_of, pick = XFormedAttributePicker.get_possible_keys, XFormedAttributePicker.__call__
    if getattr(keys_of, "remembers", False):  # already in place (the test session's and a harness's)
        return

    def possible_keys(picker: Any, context: Any) -> Any:
        obj, shape = context.obj, context.shape
        if hasattr(obj, "Meta"):
            return keys_of(picker, context)
        cache = picker.__dict__.setdefault("_possible_keys", {})
        key = (context.key, id(shape), id(getattr(shape, "parent", None)), obj.__class__)
        names = cache.get(key)
        if names is None:  # the shape is held with its names: its id stays its own
            names = cache[key] = (tuple(keys_of(picker, context)), shape)
        return names[0]

    def picked(picker: Any, context: Any) -> Any:
        obj = context.obj
        if type(obj) is not dict or picker.response_transformers:
            return pick(picker, context)
        for name in possible_keys(picker, context):
            value = obj.get(name, MISSING) if "." not in name else get_value(obj, name, MISSING)
            if value is not MISSING:
                return value
        return None

    possible_keys.remembers = True  # type: ignore[attr-defined]
    possible_keys.moto_s, picked.moto_s = keys_of, pick  # type: ignore[attr-defined]  # for a test to compare
    stack.enter_context(mock.patch.object(XFormedAttributePicker, "get_possible_keys", possible_keys))
    stack.enter_context(mock.patch.object(XFormedAttributePicker, "__call__", picked))


def patch_clock(stack: ExitStack, clock: VirtualClock) -> None:
    """Every wait of moto's interpreter on the harness's clock (emulator/clock.py): the threads
    it starts for an execution are actors; Wait states, `.sync` polls, retry back-offs, task
    timeouts, task tokens and joins wait on the clock, which skips ahead when all of them wait."""
    from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
    from moto.stepfunctions.parser.asl.component.program import program
    from moto.stepfunctions.parser.asl.component.state.exec import execute_state
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_callback
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.timestamp import Timestamp
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction
    from moto.stepfunctions.parser.asl.eval.callback import callback
    from moto.stepfunctions.parser.backend import execution_worker

    for module in (program, execute_state, state_task_service_callback):
        stack.enter_context(mock.patch.object(module, "threading", clock.threading_module()))
    for module in (retrier_decl, state_task_service_callback):
        stack.enter_context(mock.patch.object(module, "time", clock.time_module()))
    stack.enter_context(mock.patch.object(execute_state, "Thread", clock.Thread))
    stack.enter_context(mock.patch.object(execution_worker, "Thread", clock.Thread))
    stack.enter_context(mock.patch.object(callback, "Event", clock.event))

    def wait_interval(wait: Any, env: Any, wait_seconds: float) -> None:
        # AWS ends a Wait at its time; moto's own loop counts whole seconds on the wall clock.
        clock.wait(wait_seconds, done=lambda: not env.is_running())

    def timestamp_wait_seconds(wait: Any, env: Any) -> float:
        # moto truncates to whole seconds and compares with local time, so it wakes up to a second
        # early; AWS waits until the timestamp. 5 ms more: moto writes a time on an exact second
        # without its fraction ("...:13+00:00"), which would compare below "...:13.000Z".
        wait.string.eval(env=env)
        moment = datetime.fromisoformat(env.stack.pop().replace("Z", "+00:00"))
        return max(0.0, (moment - datetime.now(timezone.utc)).total_seconds() + 0.005)

    stack.enter_context(mock.patch.object(WaitFunction, "_wait_interval", wait_interval))
    stack.enter_context(mock.patch.object(Timestamp, "_get_wait_seconds", timestamp_wait_seconds))


def patch_state_hooks(stack: ExitStack, hooks: dict[str, list[Callable[[], None]]]) -> None:
    """Run `hooks[state name]` (each once, then dropped) on the execution's thread as that state is
    entered, before it reads its input: a test can make something happen at an exact point of a run
    (e.g. an upload while the debounce waits for the time it read) instead of guessing it by sleeping."""
    from moto.stepfunctions.parser.asl.component.state.state import CommonStateField

    original = CommonStateField._eval_state_input

    def eval_state_input(state: Any, env: Any) -> None:
        actions = hooks.pop(state.name, [])
        for action in actions:
            action()
        original(state, env)

    stack.enter_context(mock.patch.object(CommonStateField, "_eval_state_input", eval_state_input))


def patch_lambda_invoke(stack: ExitStack, harness: Any) -> None:
    """moto's docker-less Lambda backend echoes the payload; this runs the real handler instead, via
    `harness._invoke_in_process` / `harness._invoke_async`, with Lambda's payload limits."""
    from moto.awslambda_simple.models import LambdaSimpleBackend

    def invoke_in_process(
        backend: Any, function_name: str, qualifier: Any, body: Any, headers: Any, response_headers: Any
    ) -> bytes:
        from moto.core.exceptions import JsonRESTError

        name = backend.get_function(function_name, qualifier).function_name
        asynchronous = (headers or {}).get("x-amz-invocation-type") == "Event"
        too_large = harness.limits.check_lambda_request(name, body or b"", asynchronous=asynchronous)
        if too_large:  # what Lambda answers (HTTP 413) before running anything
            raise JsonRESTError("RequestEntityTooLargeException", str(too_large))
        if asynchronous:
            harness._invoke_async(name, body)
            return b""  # Lambda's 202 to an asynchronous invocation carries no payload
        result, errored, _ = harness._invoke_in_process(name, body)
        if harness.limits.check_lambda_response(name, result):
            # Lambda replaces a response over 6 MB with this function error.
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps(
                {
                    "errorType": "Function.ResponseSizeTooLarge",
                    "errorMessage": "Response payload size exceeded maximum allowed payload size "
                    f"({len(result.encode())} bytes).",
                }
            ).encode()
        if errored:
            response_headers["x-amz-function-error"] = "Unhandled"
        return result.encode()

    stack.enter_context(mock.patch.object(LambdaSimpleBackend, "invoke", invoke_in_process))
