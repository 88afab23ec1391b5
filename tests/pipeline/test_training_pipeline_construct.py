"""What the TrainingPipeline construct synthesizes: trigger, roles, state machines, cleanup."""

from __future__ import annotations

import json
import os
import re

import pytest
from aws_cdk import assertions
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Match, Template

from stacks.training.jumpstart_lock import JumpStartLock
from tests import template_find as find
from tests.conftest import synth_stack


@pytest.fixture(scope="module")
def template(created_stack) -> Template:
    return Template.from_stack(created_stack)


@pytest.fixture(scope="module")
def resources(template) -> dict:
    return template.to_json()["Resources"]


by_type = find.of_type


def registry_table(resources: dict) -> str:
    keyed_by_model = [{"AttributeName": "modelId", "KeyType": "HASH"}]
    return find.only(
        resources, "AWS::DynamoDB::Table", lambda p: p["KeySchema"] == keyed_by_model, "the model registry"
    )


MACHINES = {"-train": find.training_machine, "-deploy": find.deploy_machine}


def states(resources: dict, name_fragment: str) -> dict:
    """The States of the training ("-train") or deployment ("-deploy") state machine."""
    return find.states(resources[MACHINES[name_fragment](resources)])


# Each role by what it is: who assumes it, or what runs with it.
ROLES = {
    "training job": lambda resources: find.role_described(resources, "SageMaker training job"),
    "hosting": lambda resources: find.role_described(resources, "SageMaker endpoint model"),
    "training machine": lambda resources: find.role_of(resources, find.training_machine(resources)),
    "deploy machine": lambda resources: find.role_of(resources, find.deploy_machine(resources)),
}


def policy_statements(resources: dict, role: str) -> list[dict]:
    """The statements of a role: one of ROLES, or a role's logical id."""
    return find.statements_of_role(resources, ROLES[role](resources) if role in ROLES else role)


def test_uploads_under_datasets_reach_the_listener(template, resources):
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": ["aws.s3"],
                "detail-type": ["Object Created"],
                "detail": {"bucket": {"name": [Match.any_value()]}, "object": {"key": [{"prefix": "datasets/"}]}},
            },
            "Targets": [
                Match.object_like({"RetryPolicy": {"MaximumRetryAttempts": 8, "MaximumEventAgeInSeconds": 7200}})
            ],
        },
    )
    listener = resources[find.function(resources, "upload_listener.handler")]
    assert listener["Properties"]["Environment"]["Variables"]["QUIET_WINDOW_SECONDS"] == "120"


def test_training_uses_the_sync_integration_with_a_gpu_and_a_time_limit(resources):
    train = states(resources, "-train")["TrainModel"]
    assert train["Resource"] == "arn:X:states:::sagemaker:createTrainingJob.sync"
    params = train["Parameters"]
    assert params["ResourceConfig"]["InstanceType"] == "ml.g4dn.2xlarge"
    assert params["StoppingCondition"] == {"MaxRuntimeInSeconds": 7200, "MaxWaitTimeInSeconds": 9000}  # spot by default
    # SageMaker's default model.tar.gz (the packaging step unpacks it): no CompressionType through .sync.
    assert params["OutputDataConfig"] == {"S3OutputPath.$": "$.snapshot.outputUri"}
    assert {c["ChannelName"] for c in params["InputDataConfig"]} == {"training", "model"}
    # No Lambda pollers and no long fixed waits in either machine.
    for fragment in ("-train", "-deploy"):
        for name, state in states(resources, fragment).items():
            if state["Type"] == "Wait":
                assert state.get("Seconds", 0) <= 300 or "TimestampPath" in state, name


def _configured() -> dict:
    stack = synth_stack(
        {
            "trainingInstanceType": "ml.g5.2xlarge",
            "endpointInstanceType": "ml.g5.xlarge",
            "trainingMaxRuntimeMinutes": 90,
            "endpointPollSeconds": 15,
        }
    )
    return Template.from_stack(stack).to_json()["Resources"]


def test_configured_instance_types_and_runtime_reach_the_template():
    resources = _configured()
    assert states(resources, "-train")["TrainModel"]["Parameters"]["ResourceConfig"]["InstanceType"] == "ml.g5.2xlarge"
    assert states(resources, "-train")["TrainModel"]["Parameters"]["StoppingCondition"]["MaxRuntimeInSeconds"] == 5400
    deploy = states(resources, "-deploy")
    assert deploy["CreateEndpointConfig"]["Parameters"]["ProductionVariants"][0]["InstanceType"] == "ml.g5.xlarge"
    assert deploy["WaitForEndpoint"]["TimeoutSeconds"] == 15
    assert deploy["WaitForEndpoint"]["Resource"] == "arn:X:states:::lambda:invoke.waitForTaskToken"
    # A bounded number of polls: endpointMaxWaitMinutes (60) / 15 s.
    choice = deploy["IsNewModelServing"]["Choices"]
    assert {"Variable": "$.polls.count", "NumericGreaterThanEquals": 240, "Next": "EndpointTooSlow"} in choice


def test_endpoint_poll_and_max_wait_reach_every_wait_of_the_deployment(resources):
    """endpointPollSeconds spaces every endpoint wait and endpointMaxWaitMinutes (60) bounds each, as
    docs/pipeline.md says; the lock checks (at least 30 s apart, or the poll when shorter) cover two
    such waits of the lock's holder plus its margin."""
    from stacks.serving.workflow import LOCK_HOLD_MARGIN_S, MAX_LOCK_CHECKS

    for deploy, poll in ((states(resources, "-deploy"), 180), (states(_configured(), "-deploy"), 15)):
        polls = 60 * 60 // poll
        assert deploy["WaitForEndpoint"]["TimeoutSeconds"] == poll
        assert deploy["PollEndpointInstead"]["Seconds"] == deploy["WaitForBusyEndpoint"]["Seconds"] == poll
        assert {"Variable": "$.polls.count", "NumericGreaterThanEquals": polls, "Next": "EndpointTooSlow"} in deploy[
            "IsNewModelServing"
        ]["Choices"]
        assert {"Variable": "$.waits.busy", "NumericGreaterThanEquals": polls, "Next": "EndpointStayedBusy"} in deploy[
            "IsBusyWaitOver"
        ]["Choices"]
        lock_wait = deploy["WaitForOtherDeployment"]["Seconds"]
        assert lock_wait >= min(poll, 30) and lock_wait * MAX_LOCK_CHECKS >= 2 * poll * polls + LOCK_HOLD_MARGIN_S


def test_jumpstart_values_come_from_the_lock_file_by_region(template):
    lock = JumpStartLock.load()
    mappings = template.to_json()["Mappings"]
    (mapping,) = mappings.values()
    assert set(mapping) == set(lock.regions)
    assert mapping["eu-west-1"]["TrainingImage"] == lock.regions["eu-west-1"]["training_image_uri"]
    assert mapping["eu-west-1"]["BaseModelObject"] == (
        "jumpstart-cache-prod-eu-west-1/stabilityai-training/train-model-txt2img-stabilityai-stable-diffusion-v2-1-base.tar.gz"
    )


def test_training_role_reads_only_datasets_and_jumpstart_and_writes_only_models(resources):
    statements = policy_statements(resources, "training job")
    s3 = [s for s in statements if any(a.startswith("s3:") for a in _actions(s))]
    reads = [json.dumps(s["Resource"]) for s in s3 if "s3:GetObject*" in _actions(s) or "s3:GetObject" in _actions(s)]
    writes = [json.dumps(s["Resource"]) for s in s3 if "s3:PutObject" in _actions(s)]
    assert any("/datasets/*" in r for r in reads) and not any("/models/" in r for r in reads)
    assert any("BaseModelObject" in r for r in reads)
    assert any("ScriptObject" in r for r in reads)
    assert len(writes) == 1 and "/models/*" in writes[0] and "/datasets/" not in writes[0]
    assert not any(r == '"*"' for r in reads + writes)
    for statement in statements:
        assert "s3:*" not in _actions(statement) and "iam:PassRole" not in _actions(statement)


def test_state_machines_pass_only_the_sagemaker_roles_and_only_to_sagemaker(resources):
    for machine, role in (("training machine", "training job"), ("deploy machine", "hosting")):
        passes = [s for s in policy_statements(resources, machine) if "iam:PassRole" in _actions(s)]
        assert passes, machine
        for statement in passes:
            assert {"Fn::GetAtt": [ROLES[role](resources), "Arn"]} in find.listed(statement["Resource"])
            assert "*" not in json.dumps(statement["Resource"])
            assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    # The hosting role is left as written: CDK's CreateModel task adds nothing to it.
    hosting = policy_statements(resources, "hosting")
    assert not any(s["Resource"] == "*" and "s3:GetObject" in _actions(s) for s in hosting)


def test_sagemaker_containers_may_write_to_the_log_groups_sagemaker_uses(resources, created_stack):
    def log_groups(role: str) -> str:
        return json.dumps(
            [s["Resource"] for s in policy_statements(resources, role) if "logs:PutLogEvents" in _actions(s)]
        )

    # Training jobs share one group; an endpoint's containers log to a group named after the endpoint.
    assert "log-group:/aws/sagemaker/TrainingJobs:*" in log_groups("training job")
    endpoint_group = f"log-group:/aws/sagemaker/Endpoints/{created_stack.stack_name}-sd:*"
    assert endpoint_group in log_groups("hosting")


def test_state_machines_log_everything_and_are_traced(template):
    template.resource_properties_count_is(
        "AWS::StepFunctions::StateMachine",
        {
            "LoggingConfiguration": Match.object_like({"Level": "ALL", "IncludeExecutionData": True}),
            "TracingConfiguration": {"Enabled": True},
        },
        2,
    )


def test_registry_table_matches_the_api_contract(template, created_stack):
    pipeline = created_stack.pipeline
    template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [{"AttributeName": "modelId", "KeyType": "HASH"}],
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        },
    )
    assert pipeline.endpoint_name == "DreamBoothPipeline-sd"
    for attribute in ("registry_table", "deploy_state_machine", "training_state_machine", "topic"):
        assert getattr(pipeline, attribute) is not None


def test_email_subscription_only_when_configured(template):
    protocols = [s["Properties"]["Protocol"] for s in template.find_resources("AWS::SNS::Subscription").values()]
    assert protocols == ["lambda", "lambda"]  # the result function on the two inference topics, no e-mail
    with_email = Template.from_stack(synth_stack({"notificationEmail": "me@example.com"}))
    with_email.has_resource_properties("AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "me@example.com"})
    template.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": Match.any_value()})


def test_cleanup_custom_resource_targets_the_endpoint_and_the_registry(template, resources):
    template.has_resource_properties(
        "Custom::DreamBoothSageMakerCleanup",
        {
            "EndpointName": "DreamBoothPipeline-sd",
            "RegistryTableName": {"Ref": registry_table(resources)},
            "StateMachineArns": Match.any_value(),
        },
    )
    statements = policy_statements(resources, _role_of(resources, "cleanup.handler"))
    actions = {a for s in statements for a in _actions(s)}
    assert {"sagemaker:DeleteEndpoint", "sagemaker:DeleteEndpointConfig", "sagemaker:DeleteModel"} <= actions
    assert not any(a.startswith("s3:") for a in actions)  # never anything in the bucket


def test_function_environments_are_what_the_handlers_read(resources, monkeypatch):
    import importlib
    import sys

    from tests.pipeline.conftest import LAMBDA_DIRS  # (on pytest.ini's pythonpath)

    # The pipeline's functions: those whose handler module is in one of its function folders.
    functions = {
        k: v
        for k, v in by_type(resources, "AWS::Lambda::Function").items()
        if any((d / (v["Properties"]["Handler"].rsplit(".", 1)[0] + ".py")).is_file() for d in LAMBDA_DIRS)
    }
    seen = set()
    for logical, function in functions.items():
        module_name = function["Properties"]["Handler"].rsplit(".", 1)[0]
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        for name, value in variables.items():
            monkeypatch.setenv(name, value if isinstance(value, str) else "resolved-at-deploy")
        sys.modules.pop(module_name, None)
        module = importlib.import_module(module_name)  # reads and checks its environment at import
        if hasattr(module, "Settings"):
            module.Settings.from_environ()
        if module_name == "autoscaling_task":
            module.ScalingSettings.from_environ(dict(os.environ))
        seen.add(module_name)
        assert function["Properties"]["Layers"], logical
        assert function["Properties"]["TracingConfig"] == {"Mode": "Active"}
    assert seen == {
        "dataset_tasks",
        "model_tasks",
        "run_failure_tasks",
        "upload_listener",
        "cleanup",
        "endpoint_waiter",
        "autoscaling_task",
        "training_failure",
    }


def _actions(statement: dict) -> list[str]:
    return find.listed(statement["Action"])


def test_quiet_window_and_limits_are_configurable():
    stack = synth_stack({"quietWindowSeconds": "30", "datasetMinImages": 5, "datasetMaxImages": 20})
    functions = Template.from_stack(stack).find_resources("AWS::Lambda::Function")
    variables = {k: v["Properties"].get("Environment", {}).get("Variables", {}) for k, v in functions.items()}
    assert any(v.get("QUIET_WINDOW_SECONDS") == "30" for v in variables.values())
    assert any(v.get("MIN_IMAGES") == "5" and v.get("MAX_IMAGES") == "20" for v in variables.values())
    assertions.Template.from_stack(stack)  # synthesizes cleanly


def test_endpoint_state_changes_wake_the_waiting_deployment(template, resources):
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventPattern": {
                "source": ["aws.sagemaker"],
                "detail-type": ["SageMaker Endpoint State Change"],
                "detail": {"EndpointName": ["DreamBoothPipeline-sd"]},
            },
        },
    )
    wait = states(resources, "-deploy")["WaitForEndpoint"]
    assert wait["Resource"] == "arn:X:states:::lambda:invoke.waitForTaskToken"
    assert wait["TimeoutSeconds"] == 180  # endpointPollSeconds: the bounded fallback poll
    assert [c["ErrorEquals"] for c in wait["Catch"]] == [["States.Timeout"], ["States.ALL"]]
    for handler in ("endpoint_waiter.park", "endpoint_waiter.on_state_change"):
        sends = [
            s
            for s in policy_statements(resources, _role_of(resources, handler))
            if "states:SendTaskSuccess" in _actions(s)
        ]
        (statement,) = sends
        assert "stateMachine:DreamBoothPipeline-deploy" in json.dumps(statement["Resource"])


def test_releasing_the_lock_never_changes_how_a_deployment_ends(resources):
    deploy = states(resources, "-deploy")
    for release, end in (
        ("ReleaseLock", "ModelIsLive"),
        ("ReleaseLockAfterFailure", "DeploymentFailed"),
        ("ReleaseLockUnknownModel", "UnknownModel"),
    ):
        assert deploy[release]["Next"] == end
        (caught,) = deploy[release]["Catch"]  # the lock was taken over meanwhile
        assert deploy[caught["Next"]]["Next"] == end
    assert (deploy["DeploymentFailed"]["Type"], deploy["UnknownModel"]["Type"]) == ("Fail", "Fail")


def _role_of(resources: dict, handler: str) -> str:
    return find.role_of(resources, find.function(resources, handler))


def test_no_function_deletes_the_endpoint_but_the_stack_cleanup(resources):
    # Scale to zero is SageMaker's autoscaling: nothing of ours deletes an idle endpoint.
    for function in by_type(resources, "AWS::Lambda::Function").values():
        handler = function["Properties"]["Handler"]
        role = function["Properties"]["Role"]["Fn::GetAtt"][0]
        actions = {a for s in policy_statements(resources, role) for a in _actions(s)}
        assert ("sagemaker:DeleteEndpoint" in actions) == (handler == "cleanup.handler"), handler
    # The one scheduled rule is the API's dispatch check (it re-creates, never deletes, an endpoint).
    scheduled = [
        t["Arn"]
        for r in by_type(resources, "AWS::Events::Rule").values()
        if "ScheduleExpression" in r["Properties"]
        for t in r["Properties"]["Targets"]
    ]
    assert scheduled == [{"Fn::GetAtt": [find.function(resources, "dispatch.lambda_handler"), "Arn"]}]


def test_autoscaling_gets_only_what_its_code_calls_and_its_star_is_acknowledged_exactly(created_stack, resources):
    statements = policy_statements(resources, _role_of(resources, "autoscaling_task.handler"))
    on_star = sorted(a for s in statements if s["Resource"] == "*" for a in _actions(s))
    assert on_star == sorted(
        [
            "application-autoscaling:DeregisterScalableTarget",
            "application-autoscaling:DescribeScalableTargets",
            "application-autoscaling:DescribeScalingPolicies",
            "application-autoscaling:DeleteScalingPolicy",
            "application-autoscaling:RegisterScalableTarget",
            "application-autoscaling:PutScalingPolicy",
            "xray:PutTelemetryRecords",
            "xray:PutTraceSegments",
        ]
    )
    acknowledged = _acknowledgments(created_stack, _role_of(resources, "autoscaling_task.handler"))
    reason = acknowledged["AwsSolutions-IAM5[Resource::*]"]
    assert set(re.findall(r"[a-z-]+:[A-Z][A-Za-z]+", reason)) == set(on_star), reason


def _acknowledgments(stack, role_logical_id: str) -> dict[str, str]:
    """{finding id: reason} acknowledged on the role (later acknowledgments of an id replace earlier)."""
    (role,) = [
        c
        for c in stack.node.find_all()
        if isinstance(c, iam.Role) and stack.get_logical_id(c.node.default_child) == role_logical_id
    ]
    found = {}
    for entry in role.node.metadata:
        if entry.type == "aws:cdk:acknowledged-rules":
            found.update({key.removeprefix("Annotation::"): value for key, value in entry.data.items()})
    return found


def test_autoscaling_may_create_only_its_service_linked_role(resources):
    statements = policy_statements(resources, _role_of(resources, "autoscaling_task.handler"))
    (slr,) = [s for s in statements if s["Action"] == "iam:CreateServiceLinkedRole"]
    assert slr["Condition"] == {"StringLike": {"iam:AWSServiceName": "sagemaker.application-autoscaling.amazonaws.com"}}
    assert "AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint" in json.dumps(slr["Resource"])
    (alarms,) = [s for s in statements if "cloudwatch:PutMetricAlarm" in s["Action"]]
    # Application Auto Scaling's target-tracking alarms and the stack's two step-policy alarms, nothing else
    assert "alarm:TargetTracking-endpoint/DreamBoothPipeline-sd/*" in json.dumps(alarms["Resource"])
    assert "alarm:DreamBoothPipeline-sd-*" in json.dumps(alarms["Resource"]) and len(alarms["Resource"]) == 2


def test_deploy_applies_autoscaling_after_in_service_and_removes_it_before_an_update(resources):
    deploy = states(resources, "-deploy")
    assert deploy["CreateEndpointConfig"]["Parameters"]["ProductionVariants"][0]["InitialInstanceCount"] == 1
    # (choice 1: a real-time endpoint, which no update can make asynchronous, is deleted)
    assert deploy["WhatIsTheEndpointDoing"]["Choices"][1]["Next"] == "DeleteRealTimeEndpoint"
    assert deploy["WhatIsTheEndpointDoing"]["Choices"][2]["Next"] == "PrepareAutoscalingForUpdate"
    prepare = deploy["PrepareAutoscalingForUpdate"]
    assert prepare["Next"] == "UpdateEndpoint" and prepare["ResultPath"] == "$.scaling"
    assert prepare["Parameters"]["Payload"] == {
        "action": "prepare-update",
        "endpointName": "DreamBoothPipeline-sd",
        "endpointConfigName.$": "$.modelId",
    }
    # Whatever removed it, every failure registers it again before the run ends
    (catch,) = prepare["Catch"]
    assert deploy[catch["Next"]]["Result"] == {"deregistered": True}
    restore = deploy["DidThisRunRemoveAutoscaling"]["Choices"][0]
    assert restore["Next"] == "RestoreAutoscaling"
    assert deploy["RestoreAutoscaling"]["Parameters"]["Payload"]["action"] == "register"
    assert deploy["RestoreAutoscaling"]["Next"] == deploy["RestoreAutoscaling"]["Catch"][0]["Next"] == "IsTheLiveModel"
    assert deploy["IsNewModelServing"]["Choices"][0]["Next"] == "ApplyAutoscaling"
    assert deploy["ApplyAutoscaling"]["Parameters"]["Payload"]["action"] == "register"
    assert deploy["ApplyAutoscaling"]["Catch"][0]["Next"] == "NotifyAutoscalingFailed"


def test_scaling_limits_and_idle_time_come_from_config():
    stack = synth_stack({"idleMinutes": 25, "endpointMaxInstances": 4, "endpointTargetBacklogPerInstance": 9})
    resources = Template.from_stack(stack).to_json()["Resources"]
    (scaling,) = [
        f
        for f in by_type(resources, "AWS::Lambda::Function").values()
        if f["Properties"]["Handler"] == "autoscaling_task.handler"
    ]
    variables = scaling["Properties"]["Environment"]["Variables"]
    assert (variables["IDLE_MINUTES"], variables["MAX_INSTANCES"], variables["TARGET_BACKLOG_PER_INSTANCE"]) == (
        "25",
        "4",
        "9",
    )


def test_the_endpoint_config_is_asynchronous_with_its_outputs_and_notices(resources):
    config = states(resources, "-deploy")["CreateEndpointConfig"]
    assert config["Resource"] == "arn:X:states:::aws-sdk:sagemaker:createEndpointConfig"
    parameters = config["Parameters"]
    async_config = parameters["AsyncInferenceConfig"]
    assert async_config["ClientConfig"] == {"MaxConcurrentInvocationsPerInstance": 1}
    output = json.dumps(async_config["OutputConfig"])
    assert "/inference/outputs" in output and "/inference/failures" in output
    notices = async_config["OutputConfig"]["NotificationConfig"]
    topics = {
        k
        for k, r in by_type(resources, "AWS::SNS::Topic").items()
        if r["Properties"]["DisplayName"].startswith("DreamBooth generations")
    }
    assert set(notices) == {"SuccessTopic", "ErrorTopic"} and len(topics) == 2
    machine = resources[find.deploy_machine(resources)]
    raw = json.dumps(machine["Properties"]["DefinitionString"])
    assert all(raw.count(f'"Ref": "{topic}"') == 1 for topic in topics)  # one success, one error topic
    # SageMaker writes and notifies with the hosting role: exactly those grants
    hosting = policy_statements(resources, "hosting")
    publish = [s for s in hosting if s["Action"] == "sns:Publish"]
    assert sorted(
        r["Ref"] for s in publish for r in (s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]])
    ) == sorted(topics)
    puts = json.dumps([s["Resource"] for s in hosting if "s3:PutObject" in _actions(s)])
    assert "/inference/outputs/*" in puts and "/inference/failures/*" in puts and "/models/" not in puts
