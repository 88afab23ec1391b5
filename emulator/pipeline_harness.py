"""Run the synthesized stack on moto: the real template, the real handlers, pipeline and API.

`PipelineHarness` synthesizes the app (cdk-nag included), then "deploys" the template's
resources into moto: the bucket, the DynamoDB tables (the API's generations table with its TTL
setting), the SNS topic (with an SQS queue subscribed, to read notifications), the project's
Lambda functions (pipeline functions, the API, result and dispatcher functions, each with its
environment from the template) and both state machines. State machine definitions and function
environments are taken from the template and only their CloudFormation intrinsics (Ref,
Fn::GetAtt, Fn::Join, Fn::FindInMap, ...) are resolved to the moto resources; nothing is
rewritten by hand. `api()` calls the real API function as API Gateway's Lambda proxy
integration does (emulator/api_gateway.py builds the event).

What the harness adds to moto, and says so:
- Lambda: moto runs functions in Docker; here moto's docker-less Lambda backend (which only
  echoes payloads) is patched to import the function's handler from its synthesized asset
  directory and call it in-process, with the function's environment from the template, each
  function with its own copy of its modules, as separate Lambda functions have (see
  `_invoke_in_process`). An asynchronous invocation (InvocationType=Event, and SNS's delivery to
  a Lambda subscriber) answers at once and runs the function on a background thread;
  `wait_until_idle` waits for those too, and `async_invocations` records their results.
- SNS: SageMaker's asynchronous inference notices (from `SageMakerSimulator`) are delivered as
  SNS delivers to Lambda: to every function the template subscribes to that topic
  (AWS::SNS::Subscription, protocol lambda), with SNS's event, asynchronously.
- API Gateway: moto does not execute AWS_PROXY integrations. `api()` builds the REST proxy event
  (emulator/api_gateway.py) and calls the API function's handler in-process; it does not
  authenticate, throttle or validate request models (asserted on the template in tests/api).
- SageMaker runtime: InvokeEndpoint is answered by `SageMakerSimulator` with placeholder JPEGs,
  only while the simulated endpoint serves a model (see sagemaker_sim.py).
- Step Functions: `sagemaker:createTrainingJob.sync` (moto refuses `.sync` for SageMaker) is
  served by `SageMakerSyncService`, which creates the job and polls DescribeTrainingJob, as the
  real integration does.
- Step Functions: `states:startExecution` converts field names between ASL and boto3, and
  aws-sdk tasks map field names (ExecutionArn <-> executionArn) and hand results to the state
  as JSON (timestamps as strings, PascalCase names), as AWS does; moto's port of the
  interpreter skips these conversions; a Wait on a timestamp waits until that moment (moto's
  truncates to whole seconds and wakes early); Timestamp* Choice rules compare RFC 3339
  timestamps with fractions (moto's parse only whole seconds). See `_patch_sfn_integration`.
- EventBridge schedule rules (the dispatcher's periodic check) match no event: `deliver()` skips
  them; tests run the scheduled function themselves (`run_schedule`). The rules are created in
  moto's EventBridge; a disabled one delivers nothing.
- CloudFormation: `delete_stack_cleanup()` sends the cleanup custom resource its Delete request
  (properties from the template, the response URL answered in-process).
- SageMaker: durations, failures and UpdateEndpoint come from `SageMakerSimulator`.
- JumpStart: a placeholder inference script tarball (inference.py, requirements.txt) at the lock's
  `inference_script_uri` for the region, which the packaging step unpacks into a model's code/.
- DynamoDB: moto's conditional writes are not atomic across threads; `atomic_dynamodb`
  serializes its item operations, as DynamoDB serializes writes to an item.
- Service limits (emulator/limits.py): `States.ALL` does not catch `States.Runtime` or
  `States.DataLimitExceeded` (AWS's rule; moto's catches both), an execution past 25,000 history
  events fails, every state's input and output in each history is checked against 256 KiB, and
  Lambda payloads against 6 MB (sync) / 256 KiB (async). A violation fails the test at
  `wait_until_idle` and at the end of the `with` block (`enforce_limits=False` leaves them in
  `h.limits.violations` for a test to assert on).
- EventBridge: Step Functions' "Execution Status Change" event is delivered for every execution
  that ended, when `wait_until_idle` finds the pipeline idle (to the run-failure handler's rule).
- Time: `h.clock` (emulator/clock.py). Every clock in the process reads the wall clock plus
  an offset that jumps ahead when every thread the harness runs (the test, each execution and
  the threads moto starts for it, each asynchronous invocation, the simulator's settling endpoints
  and its ticker) waits: Wait states, `.sync` polls, retries, task timeouts and tokens end at
  their time on every clock without that time passing on the wall clock.
- Lambda: Powertools keeps one metric set per process; each invocation here keeps its own
  (`separate_metric_sets`), as each function's process does on Lambda.
- EventBridge: moto does not deliver S3 events to Lambda targets. `upload()` builds the event S3
  sends, checks it against the synthesized rule's pattern with moto's event-pattern matcher, and
  invokes the listener function as EventBridge would.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tarfile
import threading
import time
import uuid
import zipfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping, Optional
from unittest import mock

import boto3
from moto import mock_aws

from dreambooth_shared.contract import (
    DEPLOY_MACHINE_SUFFIX,
    LIVE_POINTER_ID,
    TRAINING_MACHINE_SUFFIX,
    ApiEnv,
    PipelineEnv,
)
from emulator.account import ACCOUNT, BUCKET_NAME, REGION
from emulator.api_gateway import Answer, ApiGatewayAdapter
from emulator.assembly import FAST_CONTEXT, Synthesized, synthesize
from emulator.atomic_dynamodb import atomic_dynamodb
from emulator.clock import VirtualClock
from emulator.iam import IamEnforcement
from emulator.intrinsics import Resolver, getatt_targets
from emulator.lambda_runtime import load
from emulator.lambdas import AsyncInvocation, FunctionSpec, LambdaContext, separate_metric_sets
from emulator.limits import ServiceLimits
from emulator.moto_patches import patch_clock, patch_lambda_invoke, patch_state_hooks, patch_step_functions, utc
from emulator.observe import Run
from emulator.sagemaker_sim import SageMakerSimulator
from emulator.service_model import ServiceModelCheck

_ENV_LOCK = threading.RLock()
_END_EVENTS = {"ExecutionSucceeded", "ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut"}
JUMPSTART_INFERENCE_PLACEHOLDER = b"# placeholder for JumpStart's inference.py (harness)\n"


# ---------------------------------------------------------------------------------------------
# The harness
# ---------------------------------------------------------------------------------------------


@dataclass
class PipelineHarness:
    """Context manager: moto running the synthesized pipeline and API. See the module docstring.

    Usage:
        with PipelineHarness(context={"quietWindowSeconds": 2}) as h:
            h.upload_dataset("doppler", images)
            h.wait_until_idle(60)
            runs = h.training_runs()
            answer = h.api("POST", "/generations", {"prompt": "Doppler on the beach"})  # -> Answer
            h.wait_until_idle(30)           # SageMaker answered and the result function ran
            h.api("GET", f"/generations/{answer.json()['id']}")
    """

    context: Mapping[str, Any] = field(default_factory=dict)
    simulator: SageMakerSimulator = field(default_factory=SageMakerSimulator)
    synthesized: Optional[Synthesized] = None
    deliver_endpoint_events: bool = True
    """False simulates lost SageMaker events: deployments then rely on their bounded polling."""
    remove_grants: Optional[Callable[[str, dict[str, Any]], bool]] = None
    """Test-only: drop the policy statements this predicate picks (role logical id, statement), to
    plant a missing grant (see emulator/iam.py `statements_matching`)."""
    bucket_key_arn: Optional[str] = None
    """The bucket's default encryption is SSE-KMS with this customer key, as a reused bucket's may be
    (`bucketName` = `BUCKET_NAME` and `bucketKmsKeyArn` = this key in the synthesized context;
    `KMS_BUCKET_CONTEXT`); the key itself is not modelled, only what IAM must allow with it."""
    limits: ServiceLimits = field(default_factory=ServiceLimits)
    enforce_limits: bool = True
    """A run that passes a service limit fails the test (see emulator/limits.py)."""

    def __post_init__(self) -> None:
        self._stack = ExitStack()
        self.functions: dict[str, FunctionSpec] = {}
        self.async_invocations: list[AsyncInvocation] = []
        self._async_threads: list[threading.Thread] = []
        self._finished_runs: dict[str, Run] = {}  # execution ARN -> its run, once it ended
        self._setup_clients: dict[str, Any] = {}  # before IAM has an administrator
        self._state_hooks: dict[str, list[Callable[[], None]]] = {}
        self.activity: list[tuple[datetime, str, str]] = []
        """What the harness did on the stack's behalf: (UTC time, component, what happened)."""
        self.iam = IamEnforcement(region=REGION, account=ACCOUNT)
        """Each call signed as the role that makes it in AWS and authorized (emulator/iam.py)."""
        self.service_model = ServiceModelCheck()
        """Each call's parameters checked against botocore's model (emulator/service_model.py)."""
        self.clock: VirtualClock = self.simulator.clock
        """The emulated world's time, the simulator's too: skips ahead while everything waits
        (emulator/clock.py)."""

    # ---- lifecycle ----

    def __enter__(self) -> "PipelineHarness":
        self.synthesized = self.synthesized or synthesize({**FAST_CONTEXT, **self.context})
        self._stack.enter_context(self.clock)
        self._stack.enter_context(
            mock.patch.dict(
                os.environ,
                {
                    "AWS_DEFAULT_REGION": REGION,
                    "AWS_REGION": REGION,
                    "POWERTOOLS_TRACE_DISABLED": "true",
                    "POWERTOOLS_METRICS_NAMESPACE": "harness",
                    "POWERTOOLS_LOG_LEVEL": "WARNING",
                },
            )
        )
        self._stack.enter_context(
            mock_aws(
                config={
                    "stepfunctions": {"execute_state_machine": True},
                    "lambda": {"use_docker": False},
                }
            )
        )
        self._stack.enter_context(atomic_dynamodb())
        self.limits.install(self._stack)
        self.simulator.on_endpoint_settled = self._on_endpoint_settled
        self.simulator.on_async_notice = self.deliver_sns
        self._stack.enter_context(self.simulator)
        # moto's interpreter logs every IsPresent miss as an ERROR and every SageMaker task as
        # "unsupported": noise here, since the harness serves those tasks.
        parser_log = logging.getLogger("moto.stepfunctions.parser")
        self._stack.callback(parser_log.setLevel, parser_log.level)
        parser_log.setLevel(logging.CRITICAL)
        patch_step_functions(self._stack, authorize=lambda role, checks: self.iam.authorize_role(role, checks))
        patch_clock(self._stack, self.clock)
        patch_lambda_invoke(self._stack, self)
        separate_metric_sets(self._stack)
        patch_state_hooks(self._stack, self._state_hooks)
        self._deploy()
        self._stack.enter_context(self.service_model)
        self._stack.enter_context(self.iam)
        self.simulator.client_for_role = self.iam.client
        # Every function's code is imported now, before anything runs: importing applies the
        # function's environment to os.environ for a moment, which a boto3 client being created
        # on an execution's thread (it reads os.environ for proxies) must never see half-done.
        for spec in self.functions.values():
            with self.iam.acting_as(spec.role):
                self._load_handler(spec)
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self._stop_running_executions()
            self._join_async(timeout_s=30)  # none may outlive moto and reach for real AWS
            if exc[0] is None:
                self.check_limits()
        finally:
            self._stack.close()
        if exc[0] is None:
            # A handler that catches AccessDenied or ValidationException and carries on must
            # still fail the test: AWS would have refused that call.
            refused = [str(d) for d in self.iam.unexpected_denials()] + self.service_model.unexpected()
            if refused:
                raise AssertionError("calls AWS would refuse:\n" + "\n".join(refused))

    def _announce_ended_executions(self) -> None:
        """Step Functions' "Execution Status Change" event for each execution that ended, delivered
        to the rules that match it (as EventBridge would; moto emits none)."""
        announced = self.__dict__.setdefault("_announced", set())
        for arn in (self.training_machine_arn, self.deploy_machine_arn):
            for run in self.runs(arn):
                if run.status == "RUNNING" or run.arn in announced:
                    continue
                announced.add(run.arn)
                self.deliver(
                    {
                        "version": "0",
                        "id": str(uuid.uuid4()),
                        "detail-type": "Step Functions Execution Status Change",
                        "source": "aws.states",
                        "account": ACCOUNT,
                        "region": REGION,
                        "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "resources": [run.arn],
                        "detail": {
                            "executionArn": run.arn,
                            "stateMachineArn": arn,
                            "name": run.name,
                            "status": run.status,
                            "input": json.dumps(run.input),
                            "error": run.error,
                            "cause": run.cause,
                        },
                    }
                )

    def check_limits(self) -> None:
        """Check every execution's history (state sizes, event count); fail on any violation so far."""
        self.training_runs(), self.deploy_runs()  # runs() checks each finished history
        if self.enforce_limits:
            self.limits.raise_if_violated()

    def when_entering(self, state_name: str, action: Callable[[], None]) -> None:
        """Run `action` once, on the execution's thread, when a run next enters `state_name`
        (before the state reads its input; the run goes on when the action returns)."""
        self._state_hooks.setdefault(state_name, []).append(action)

    def record(self, component: str, what: str) -> None:
        self.activity.append((datetime.now(timezone.utc), component, what))

    def client(self, service: str) -> Any:
        """The test's own client (the administrator's once IAM is enforced; one per service)."""
        if self.iam.has_admin:
            return self.iam.client(service)
        if service not in self._setup_clients:
            self._setup_clients[service] = boto3.client(service, region_name=REGION)
        return self._setup_clients[service]

    # ---- deployment of the template's pipeline resources into moto ----

    def _deploy(self) -> None:
        synth = self.synthesized
        assert synth is not None
        template = synth.template
        refs: dict[str, str] = {}
        arns: dict[str, str] = {}
        for logical, resource in template["Resources"].items():
            props = resource.get("Properties", {})
            kind = resource["Type"]
            if kind == "AWS::DynamoDB::Table":
                refs[logical], arns[logical] = logical, f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{logical}"
            elif kind == "AWS::SNS::Topic":
                refs[logical] = arns[logical] = f"arn:aws:sns:{REGION}:{ACCOUNT}:{logical}"
            elif kind == "AWS::IAM::Role":
                refs[logical], arns[logical] = logical, f"arn:aws:iam::{ACCOUNT}:role/{logical}"
            elif kind == "AWS::Lambda::Function":
                refs[logical], arns[logical] = logical, f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{logical}"
            elif kind == "AWS::StepFunctions::StateMachine":
                name = props.get("StateMachineName", logical)
                refs[logical] = arns[logical] = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}"
            elif kind == "AWS::S3::Bucket":
                refs[logical], arns[logical] = BUCKET_NAME, f"arn:aws:s3:::{BUCKET_NAME}"
            elif kind == "AWS::Events::Rule":  # Ref: the rule's name
                refs[logical], arns[logical] = logical, f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{logical}"
            elif kind == "AWS::Logs::LogGroup":
                name = props.get("LogGroupName", logical)
                name = name if isinstance(name, str) else None  # resolved below, once refs exist
                refs[logical], arns[logical] = (
                    name or logical,
                    f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name or logical}:*",
                )
            elif kind == "AWS::KMS::Key":
                refs[logical], arns[logical] = logical, f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{logical}"
            elif kind == "AWS::IAM::ManagedPolicy":
                refs[logical] = arns[logical] = f"arn:aws:iam::{ACCOUNT}:policy/{logical}"
            else:
                # Resources the harness does not deploy (alarms, API Gateway, ...): a stable name, so that
                # policies naming them resolve.
                refs.setdefault(logical, logical)
                arns.setdefault(logical, f"arn:aws:{kind.split('::')[1].lower()}:{REGION}:{ACCOUNT}:{logical}")
        self.resolve = Resolver(template, refs, arns, synth.stack_name)
        for logical, resource in synth.resources("AWS::Logs::LogGroup").items():
            if not isinstance(resource["Properties"].get("LogGroupName", ""), str):
                name = self.resolve(resource["Properties"]["LogGroupName"])
                refs[logical], arns[logical] = name, f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}:*"
        self.refs, self.arns = refs, arns

        s3 = self.client("s3")
        s3.create_bucket(Bucket=BUCKET_NAME)
        s3.put_bucket_versioning(Bucket=BUCKET_NAME, VersioningConfiguration={"Status": "Enabled"})
        if self.bucket_key_arn:
            s3.put_bucket_encryption(
                Bucket=BUCKET_NAME,
                ServerSideEncryptionConfiguration={
                    "Rules": [
                        {
                            "ApplyServerSideEncryptionByDefault": {
                                "SSEAlgorithm": "aws:kms",
                                "KMSMasterKeyID": self.bucket_key_arn,
                            }
                        }
                    ]
                },
            )
        self._publish_jumpstart_inference_script(template)

        dynamodb = self.client("dynamodb")
        for logical, resource in synth.resources("AWS::DynamoDB::Table").items():
            props = resource["Properties"]
            indexes = (
                {"GlobalSecondaryIndexes": props["GlobalSecondaryIndexes"]}
                if props.get("GlobalSecondaryIndexes")
                else {}
            )
            dynamodb.create_table(
                TableName=logical,
                KeySchema=props["KeySchema"],
                AttributeDefinitions=props["AttributeDefinitions"],
                BillingMode="PAY_PER_REQUEST",
                **indexes,
            )
            if props.get("TimeToLiveSpecification"):
                dynamodb.update_time_to_live(
                    TableName=logical, TimeToLiveSpecification=props["TimeToLiveSpecification"]
                )

        sns, sqs = self.client("sns"), self.client("sqs")
        self.notification_queues: dict[str, str] = {}
        subscribed = {
            self.resolve(sub["Properties"]["TopicArn"])
            for sub in synth.resources("AWS::SNS::Subscription").values()
            if sub["Properties"]["Protocol"] == "lambda"
        }
        for logical, topic in synth.resources("AWS::SNS::Topic").items():
            key = topic.get("Properties", {}).get("KmsMasterKeyId")
            sns.create_topic(Name=logical, Attributes={"KmsMasterKeyId": self.resolve(key)} if key else {})
            if arns[logical] in subscribed:
                continue  # delivered to its Lambda subscribers by `deliver_sns`, not read as a notification
            queue_url = sqs.create_queue(QueueName=f"{logical}-inbox")["QueueUrl"]
            queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            sns.subscribe(TopicArn=arns[logical], Protocol="sqs", Endpoint=queue_arn)
            self.notification_queues[logical] = queue_url

        self._create_jumpstart_objects()
        # The rules themselves (state ENABLED), so that disabling one stops its deliveries.
        eventbridge = self.client("events")
        for logical, resource in synth.resources("AWS::Events::Rule").items():
            props = resource["Properties"]
            trigger = (
                {"ScheduleExpression": props["ScheduleExpression"]}
                if "ScheduleExpression" in props
                else {"EventPattern": json.dumps(self.resolve(props["EventPattern"]))}
            )
            eventbridge.put_rule(Name=logical, State=props.get("State", "ENABLED"), **trigger)
        self.iam.create_roles(template, self.resolve, remove=self.remove_grants)

        lambda_ = self.client("lambda")
        dummy_zip = io.BytesIO()
        with zipfile.ZipFile(dummy_zip, "w") as archive:
            archive.writestr("placeholder.py", "")
        for logical, resource in synth.resources("AWS::Lambda::Function").items():
            props = resource["Properties"]
            source = synth.project_code(logical)
            if source is None:
                continue  # CDK's own helpers (bucket notifications), not the project's code
            code_dir = synth.asset_dir(logical)
            environment = {
                k: str(self.resolve(v)) for k, v in props.get("Environment", {}).get("Variables", {}).items()
            }
            lambda_.create_function(
                FunctionName=logical,
                Runtime="python3.12",
                Role=arns[self._role_of(props)],
                Handler=props["Handler"],
                Code={"ZipFile": dummy_zip.getvalue()},
                Environment={"Variables": environment},
                Timeout=int(props.get("Timeout", 30)),
            )
            self.functions[logical] = FunctionSpec(
                logical, logical, code_dir, props["Handler"], environment, source, role=self._role_of(props)
            )

        sfn = self.client("stepfunctions")
        self.state_machines: dict[str, str] = {}
        for logical, resource in synth.resources("AWS::StepFunctions::StateMachine").items():
            props = resource["Properties"]
            definition = self.resolve(props["DefinitionString"])
            json.loads(definition)  # fully resolved
            name = props.get("StateMachineName", logical)
            sfn.create_state_machine(name=name, definition=definition, roleArn=arns[self._role_of(props, "RoleArn")])
            self.state_machines[logical] = arns[logical]

    def _publish_jumpstart_inference_script(self, template: dict[str, Any]) -> None:
        """A stand-in for JumpStart's inference script tarball at the lock's URI for the region
        (the packaging step unpacks it into a model's code/): inference.py and requirements.txt,
        at the top level as in JumpStart's source-directory tarballs. Placeholder content."""
        (mapping,) = [m for name, m in template.get("Mappings", {}).items() if "JumpStart" in name]
        bucket, _, key = mapping[REGION]["InferenceScriptUri"][len("s3://") :].partition("/")
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w:gz") as tar:
            for name, body in (("inference.py", JUMPSTART_INFERENCE_PLACEHOLDER), ("requirements.txt", b"")):
                info = tarfile.TarInfo(name)
                info.size = len(body)
                tar.addfile(info, io.BytesIO(body))
        s3 = self.client("s3")
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key=key, Body=archive.getvalue())

    @staticmethod
    def _role_of(props: Mapping[str, Any], key: str = "Role") -> str:
        return props[key]["Fn::GetAtt"][0]

    def _create_jumpstart_objects(self) -> None:
        """JumpStart's public bucket and the objects the training job reads (script, base model)."""
        from stacks.training.jumpstart_lock import JumpStartLock

        uris = JumpStartLock.load().regions[REGION]
        s3 = self.client("s3")
        for uri in (uris["training_script_uri"], uris["base_model_uri"]):
            bucket, _, key = uri[len("s3://") :].partition("/")
            if bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
                s3.create_bucket(Bucket=bucket)
            s3.put_object(Bucket=bucket, Key=key, Body=b"simulated JumpStart artifact")

    # ---- handles on the pipeline's resources ----

    # Found by their properties (a machine's name, the table a function is told to use), not by
    # their logical ids, which may change with the construct tree.

    def _machine_named(self, suffix: str) -> str:
        assert self.synthesized is not None
        (arn,) = [
            self.arns[k]
            for k, r in self.synthesized.resources("AWS::StepFunctions::StateMachine").items()
            if r["Properties"].get("StateMachineName", "").endswith(suffix)
        ]
        return arn

    @property
    def training_machine_arn(self) -> str:
        return self._machine_named(TRAINING_MACHINE_SUFFIX)

    @property
    def deploy_machine_arn(self) -> str:
        return self._machine_named(DEPLOY_MACHINE_SUFFIX)

    @property
    def bucket(self) -> str:
        return BUCKET_NAME

    @property
    def registry_table(self) -> str:
        """The table the API function keeps the model registry in."""
        return self.api_function.environment[ApiEnv.REGISTRY_TABLE]

    @property
    def state_table(self) -> str:
        """The table the pipeline's functions keep upload windows, locks and parked waits in."""
        (table,) = {
            spec.environment[PipelineEnv.STATE_TABLE_NAME]
            for spec in self.functions.values()
            if PipelineEnv.STATE_TABLE_NAME in spec.environment
        }
        return table

    @property
    def endpoint_name(self) -> str:
        assert self.synthesized is not None
        return f"{self.synthesized.stack_name[:59]}-sd"

    def function_with_handler(self, handler: str) -> FunctionSpec:
        """The one function whose Handler is `handler` ("module.function")."""
        (match,) = [spec for spec in self.functions.values() if spec.handler == handler]
        return match

    @property
    def api_function(self) -> FunctionSpec:
        """The function behind the REST API's methods (their AWS_PROXY integration's target)."""
        assert self.synthesized is not None
        targets = set()
        for method in self.synthesized.resources("AWS::ApiGateway::Method").values():
            integration = method["Properties"].get("Integration", {})
            if integration.get("Type") == "AWS_PROXY":
                targets.update(getatt_targets(integration["Uri"]))
        (logical,) = targets
        return self.functions[logical]

    @property
    def results_function(self) -> FunctionSpec:
        """The function subscribed to SageMaker's asynchronous inference notices."""
        return self.function_with_handler("results.lambda_handler")

    @property
    def dispatch_function(self) -> FunctionSpec:
        return self.function_with_handler("dispatch.lambda_handler")

    @property
    def generations_table(self) -> str:
        return self.api_function.environment[ApiEnv.GENERATIONS_TABLE]

    # ---- running handlers in-process ----

    def _invoke_in_process(self, function_name: str, event: Any) -> tuple[str, bool, str]:
        spec = self.functions[function_name]
        payload = json.loads(event) if isinstance(event, (str, bytes)) else event
        with self.iam.acting_as(spec.role):
            handler = self._load_handler(spec)
            spec.invocations += 1
            try:
                result = handler(payload, LambdaContext(spec))
            except Exception as error:  # what Lambda returns for an unhandled error
                return json.dumps({"errorMessage": str(error), "errorType": type(error).__name__}), True, ""
        return json.dumps(result), False, ""

    def _invoke_async(self, function_name: str, body: Any) -> None:
        payload = json.loads(body) if isinstance(body, (str, bytes)) and body else (body or {})
        record = AsyncInvocation(function_name, payload, datetime.now(timezone.utc))
        self.async_invocations.append(record)
        self.record("lambda", f"{function_name} invoked asynchronously (Event): {json.dumps(payload)}")

        def run() -> None:
            result, errored, _ = self._invoke_in_process(function_name, payload)
            record.result = json.loads(result)
            if errored:
                record.error = f"{record.result.get('errorType')}: {record.result.get('errorMessage')}"
            record.finished = datetime.now(timezone.utc)
            self.record("lambda", f"{function_name} finished: {record.error or result}")

        thread = self.clock.Thread(target=run, name=f"async-{function_name}", daemon=True)
        self._async_threads.append(thread)
        thread.start()

    def _join_async(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        for thread in list(self._async_threads):
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._async_threads)

    def _load_handler(self, spec: FunctionSpec) -> Callable[..., Any]:
        module_name, _, function_name = spec.handler.rpartition(".")
        if spec.module is None:
            with _ENV_LOCK:
                # A fresh copy of the code per function (its plain module names kept out of
                # sys.modules): each reads its own environment at import, as on Lambda.
                spec.module = load(spec.code_dir, module_name, spec.environment)
        return getattr(spec.module, function_name)

    # ---- the API, as API Gateway's Lambda proxy integration calls it ----

    def api(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: Optional[dict[str, str]] = None,
        query: Optional[str] = None,
    ) -> Answer:
        """Call the real API function with the REST proxy event API Gateway would send.

        `body` may be a dict (sent as JSON), str or bytes. A POST /generations sends its requests
        to the simulated asynchronous endpoint; `wait_until_idle` waits for the result function.
        """
        spec = self.api_function
        with self.iam.acting_as(spec.role):
            handler = self._load_handler(spec)
            spec.invocations += 1
            answer = ApiGatewayAdapter(handler).call(method, path, body, headers=headers, query=query)
        self.limits.check_lambda_response(spec.name, json.dumps(answer.raw))
        try:
            shown = answer.json()
        except ValueError:
            shown = None
        state = f" {shown['status']}" if isinstance(shown, dict) and isinstance(shown.get("status"), str) else ""
        self.record("api", f"{method.upper()} {path}{'?' + query if query else ''} -> {answer.status}{state}")
        return answer

    def invoke(self, spec: FunctionSpec, payload: Any) -> Any:
        """Invoke a pipeline function through moto's Lambda API (which runs it in-process)."""
        response = self.client("lambda").invoke(FunctionName=spec.name, Payload=json.dumps(payload).encode())
        body = json.loads(response["Payload"].read())
        if response.get("FunctionError"):
            raise RuntimeError(f"{spec.name} failed: {body}")
        return body

    # ---- uploads and events ----

    def s3_event(self, key: str, *, size: int, etag: str, when: Optional[datetime] = None) -> dict[str, Any]:
        """The EventBridge event S3 sends for an object created in the bucket."""
        when = when or datetime.now(timezone.utc)
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Object Created",
            "source": "aws.s3",
            "account": ACCOUNT,
            "time": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": REGION,
            "resources": [f"arn:aws:s3:::{BUCKET_NAME}"],
            "detail": {
                "version": "0",
                "bucket": {"name": BUCKET_NAME},
                "object": {"key": key, "size": size, "etag": etag, "sequencer": uuid.uuid4().hex[:18]},
                "request-id": uuid.uuid4().hex[:16],
                "requester": ACCOUNT,
                "reason": "PutObject",
            },
        }

    def deliver(self, event: Mapping[str, Any]) -> Optional[dict[str, Any]]:
        """Deliver one event as EventBridge would: to the target of each synthesized rule it matches."""
        assert self.synthesized is not None
        # moto's TestEventPattern API is a stub; its rule matcher (used for PutEvents) is real.
        from moto.events.models import EventPattern

        answer = None
        for logical, rule in self.synthesized.resources("AWS::Events::Rule").items():
            if "EventPattern" not in rule["Properties"]:
                continue  # a schedule: fires on time, matches no event
            if not self.rule_enabled(logical):
                continue
            pattern = self.resolve(rule["Properties"]["EventPattern"])
            if not EventPattern.load(json.dumps(pattern)).matches_event(dict(event)):
                continue
            (target,) = rule["Properties"]["Targets"]
            function = self.resolve(target["Arn"]).rsplit(":", 1)[1]
            self.record("eventbridge", f"{event['detail-type']} ({event['source']}) -> {function}")
            response = self.client("lambda").invoke(FunctionName=function, Payload=json.dumps(event).encode())
            answer = json.loads(response["Payload"].read())
            if response.get("FunctionError"):
                raise RuntimeError(f"{function} failed: {answer}")
        return answer

    def endpoint_event(self, endpoint_name: str, status: str) -> dict[str, Any]:
        """The EventBridge event SageMaker sends when an endpoint changes state."""
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "SageMaker Endpoint State Change",
            "source": "aws.sagemaker",
            "account": ACCOUNT,
            "region": REGION,
            "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "resources": [f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{endpoint_name.lower()}"],
            "detail": {
                "EndpointName": endpoint_name,
                "EndpointStatus": status,
                "EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{endpoint_name.lower()}",
            },
        }

    def deliver_sns(self, topic_arn: str, message: Mapping[str, Any]) -> None:
        """Publish as SNS delivers to Lambda: each function the template subscribes to the topic,
        invoked asynchronously with SNS's event."""
        assert self.synthesized is not None
        for subscription in self.synthesized.resources("AWS::SNS::Subscription").values():
            props = subscription["Properties"]
            if props["Protocol"] != "lambda" or self.resolve(props["TopicArn"]) != topic_arn:
                continue
            function = self.resolve(props["Endpoint"]).rsplit(":", 1)[1]
            event = {
                "Records": [
                    {
                        "EventSource": "aws:sns",
                        "EventVersion": "1.0",
                        "EventSubscriptionArn": f"{topic_arn}:{uuid.uuid4()}",
                        "Sns": {
                            "Type": "Notification",
                            "MessageId": str(uuid.uuid4()),
                            "TopicArn": topic_arn,
                            "Subject": None,
                            "Message": json.dumps(message),
                            "Timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                            "SignatureVersion": "1",
                            "MessageAttributes": {},
                        },
                    }
                ]
            }
            self.record(
                "sns",
                f"{topic_arn.rsplit(':', 1)[1]} -> {function}: {message.get('invocationStatus')} "
                f"{message.get('inferenceId')}",
            )
            self._invoke_async(function, event)

    def run_schedule(self, spec: FunctionSpec) -> Any:
        """Fire the schedule rule that targets `spec`'s function now, as EventBridge does (the
        Scheduled Event)."""
        assert self.synthesized is not None
        ((logical, rule),) = [
            (name, r)
            for name, r in self.synthesized.resources("AWS::Events::Rule").items()
            if "ScheduleExpression" in r["Properties"]
            and any(getatt_targets(t["Arn"]) == {spec.logical_id} for t in r["Properties"]["Targets"])
        ]
        if not self.rule_enabled(logical):
            self.record("eventbridge", f"schedule {logical} is disabled: nothing runs")
            return None
        (target,) = rule["Properties"]["Targets"]
        function = self.resolve(target["Arn"]).rsplit(":", 1)[1]
        assert function == spec.name
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": ACCOUNT,
            "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": REGION,
            "resources": [],
            "detail": {},
        }
        self.record("eventbridge", f"schedule {rule['Properties']['ScheduleExpression']} -> {function}")
        return self.invoke(spec, event)

    def rule_enabled(self, logical_id: str) -> bool:
        """Whether the EventBridge rule is enabled in moto (a disabled rule delivers nothing)."""
        try:
            return self.client("events").describe_rule(Name=logical_id)["State"] == "ENABLED"
        except self.client("events").exceptions.ResourceNotFoundException:
            return False  # deleted: nothing delivers

    def delete_stack_cleanup(self) -> dict[str, Any]:
        """What CloudFormation does first when the stack is deleted: the cleanup custom resource's
        Delete (its function, with the properties of the template, resolved). Returns the answer it
        sent to CloudFormation's response URL."""
        assert self.synthesized is not None
        ((logical, resource),) = self.synthesized.resources("Custom::DreamBoothSageMakerCleanup").items()
        properties = {k: self.resolve(v) for k, v in resource["Properties"].items()}
        function = self.resolve(properties["ServiceToken"]).rsplit(":", 1)[1]
        answers: list[dict[str, Any]] = []

        class _Answered:
            status = 200

            def __enter__(self) -> "_Answered":
                return self

            def __exit__(self, *exc: Any) -> None:
                return None

        def answer(request: Any, timeout: float) -> _Answered:
            answers.append(json.loads(request.data))
            return _Answered()

        event = {
            "RequestType": "Delete",
            "ResponseURL": "https://cloudformation-custom-resource-response.harness/",
            "StackId": f"arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{self.synthesized.stack_name}/harness",
            "RequestId": str(uuid.uuid4()),
            "LogicalResourceId": logical,
            "PhysicalResourceId": f"{function}-sagemaker-cleanup",
            "ResourceType": resource["Type"],
            "ResourceProperties": properties,
        }
        self.record("cloudformation", f"delete {logical} -> {function}")
        with mock.patch("urllib.request.urlopen", answer):
            self.invoke(self.functions[function], event)
        (sent,) = answers
        return sent

    def _on_endpoint_settled(self, endpoint_name: str, status: str) -> None:
        if self.deliver_endpoint_events:
            self.deliver(self.endpoint_event(endpoint_name, status))

    def put(self, key: str, body: bytes) -> dict[str, Any]:
        """Put an object without notifying (tests that control delivery use `deliver`)."""
        response = self.client("s3").put_object(Bucket=BUCKET_NAME, Key=key, Body=body)
        self.record("s3", f"PutObject {key} ({len(body)} bytes)")
        return self.s3_event(key, size=len(body), etag=response["ETag"].strip('"'))

    def upload(self, key: str, body: bytes) -> Optional[dict[str, Any]]:
        return self.deliver(self.put(key, body))

    def generation_images(self, generation_id: str) -> dict[str, bytes]:
        """The images the result function stored for a generation (S3 key -> bytes)."""
        s3 = self.client("s3")
        listing = s3.list_objects_v2(Bucket=BUCKET_NAME, Prefix=f"generated/{generation_id}/").get("Contents", [])
        return {o["Key"]: s3.get_object(Bucket=BUCKET_NAME, Key=o["Key"])["Body"].read() for o in listing}

    def upload_dataset(self, dataset: str, files: Mapping[str, bytes]) -> list[dict[str, Any]]:
        """Upload files under datasets/<dataset>/, each followed by its event; returns the events."""
        events = []
        for name, body in files.items():
            event = self.put(f"datasets/{dataset}/{name}", body)
            self.deliver(event)
            events.append(event)
        return events

    def train_and_deploy(self, dataset: str, files: Mapping[str, bytes], timeout_s: float = 60) -> str:
        """Upload, wait for the pipeline to settle, return the id of the model that run registered."""
        before = set(self.models())
        self.upload_dataset(dataset, files)
        self.wait_until_idle(timeout_s)
        (model_id,) = set(self.models()) - before
        return model_id

    # ---- reading results ----

    def executions(self, machine_arn: str) -> list[dict[str, Any]]:
        return self.client("stepfunctions").list_executions(stateMachineArn=machine_arn)["executions"]

    def wait_until_idle(self, timeout_s: float = 60.0) -> None:
        """Wait until no execution of either state machine, no asynchronous request at the simulated
        endpoint, no endpoint still to settle and no asynchronous invocation is running."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            running = [
                e["executionArn"]
                for arn in (self.training_machine_arn, self.deploy_machine_arn)
                for e in self.executions(arn)
                if e["status"] == "RUNNING"
            ]
            running += [f"{n} asynchronous request(s) at SageMaker"] if (n := self.simulator.unfinished()) else []
            running += [t.name for t in self._async_threads if t.is_alive()]
            running += self.simulator.settling()  # its state-change event may still start a run
            if not running:
                self._announce_ended_executions()
                self.check_limits()
                return
            # 0.2 s on the clock: when everything else waits it skips there at once, never past the
            # moment the pipeline went idle (e.g. to an idle endpoint's scale-in a minute later).
            self.clock.wait(0.2)
        raise TimeoutError(f"still running after {timeout_s}s: {running}")

    def runs(self, machine_arn: str) -> list[Run]:
        """Every execution of the machine, oldest first, with its history.

        A finished execution's history is read (and checked against the limits) once: it cannot
        change, and reading a long one through moto costs far more than the test's own work.
        """
        sfn = self.client("stepfunctions")
        result = []
        for execution in sorted(self.executions(machine_arn), key=lambda e: e["startDate"]):
            if (finished := self._finished_runs.get(execution["executionArn"])) is not None:
                result.append(finished)
                continue
            described = sfn.describe_execution(executionArn=execution["executionArn"])
            pages = sfn.get_paginator("get_execution_history").paginate(
                executionArn=execution["executionArn"], PaginationConfig={"PageSize": 1000}
            )
            history = [event for page in pages for event in page["events"]]
            ended = described["status"] != "RUNNING" and bool(history) and history[-1]["type"] in _END_EVENTS
            if ended:
                self.limits.check_history(execution["executionArn"].rsplit(":", 1)[-1], history)
            result.append(
                Run(
                    arn=execution["executionArn"],
                    name=execution["executionArn"].rsplit(":", 1)[-1],
                    status=described["status"],
                    input=json.loads(described.get("input") or "{}"),
                    output=json.loads(described["output"]) if described.get("output") else None,
                    error=described.get("error"),
                    cause=described.get("cause"),
                    events=history,
                    started=described["startDate"],
                    stopped=described.get("stopDate"),
                )
            )
            if ended:
                self._finished_runs[result[-1].arn] = result[-1]
        return result

    def training_runs(self) -> list[Run]:
        return self.runs(self.training_machine_arn)

    def deploy_runs(self) -> list[Run]:
        return self.runs(self.deploy_machine_arn)

    def registry(self) -> dict[str, dict[str, Any]]:
        from boto3.dynamodb.types import TypeDeserializer

        deserialize = TypeDeserializer().deserialize
        items = self.client("dynamodb").scan(TableName=self.registry_table)["Items"]
        return {item["modelId"]["S"]: {k: deserialize(v) for k, v in item.items()} for item in items}

    def models(self) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.registry().items() if k != LIVE_POINTER_ID}

    def live_pointer(self) -> Optional[dict[str, Any]]:
        return self.registry().get(LIVE_POINTER_ID)

    def notifications(self) -> list[dict[str, str]]:
        """Every message published to the pipeline's topic so far (drained from its SQS inbox)."""
        sqs = self.client("sqs")
        self._received = getattr(self, "_received", [])
        for queue_url in self.notification_queues.values():
            while True:
                messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
                if not messages:
                    break
                for message in messages:
                    body = json.loads(message["Body"])
                    self._received.append(
                        {
                            "subject": body.get("Subject", ""),
                            "message": body["Message"],
                            "time": body.get("Timestamp", ""),
                        }
                    )
                    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return list(self._received)

    def timeline(self, *, describes: bool = False) -> list[tuple[datetime, str, str]]:
        """Everything that happened, in time order: (UTC time, component, what happened).

        Merges the harness's own `activity` (S3 puts, EventBridge deliveries, asynchronous
        invocations, API calls), both state machines' execution histories (started, each state
        entered, how it ended), what the SageMaker simulator did (DescribeEndpoint polls only
        with `describes=True`) and the SNS notifications.
        """
        entries = list(self.activity)
        for component, runs in (("training-sm", self.training_runs()), ("deploy-sm", self.deploy_runs())):
            for run in runs:
                for event in run.events:
                    kind = event["type"]
                    if kind == "ExecutionStarted":
                        what = f"execution {run.name} started"
                    elif "stateEnteredEventDetails" in event:
                        what = f"state {event['stateEnteredEventDetails'].get('name', '?')}"
                    elif kind in ("ExecutionSucceeded", "ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut"):
                        what = f"execution {run.name} {kind[len('Execution') :].lower()}"
                        if kind == "ExecutionFailed" and run.error:
                            what += f" ({run.error})"
                    else:
                        continue
                    entries.append((utc(event["timestamp"]), component, what))
        simulator = self.simulator
        for offset, event, detail in simulator.timeline:
            if event == "describe" and not describes:
                continue
            entries.append(
                (simulator.started_at + timedelta(seconds=offset), "sagemaker (simulated)", f"{event} {detail}")
            )
        for note in self.notifications():
            when = datetime.fromisoformat(note["time"].replace("Z", "+00:00")) if note["time"] else None
            entries.append((when or datetime.now(timezone.utc), "sns", f"notification: {note['subject']}"))
        return sorted(entries, key=lambda entry: entry[0])

    def _stop_running_executions(self) -> None:
        sfn = self.client("stepfunctions")
        for arn in getattr(self, "state_machines", {}).values():
            for execution in self.executions(arn):
                if execution["status"] == "RUNNING":
                    try:
                        sfn.stop_execution(executionArn=execution["executionArn"])
                    except AttributeError:
                        # moto's worker has not set up its environment yet (the execution was
                        # started a moment ago): nothing to stop; it ends with the mock.
                        continue
