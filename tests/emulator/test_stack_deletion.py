"""`cdk destroy` on the emulator: the cleanup custom resource stops the dispatcher (its schedule and
endpoint rules disabled, the live pointer marked) before it deletes the endpoint, and nothing
creates the endpoint again meanwhile: not a dispatcher run already under way, not a generation
request, not a deployment."""

from __future__ import annotations

import json
from unittest import mock

from dreambooth_shared.contract import DEPLOY_LOCK_ID, LIVE_POINTER_ID, STACK_DELETING_ATTRIBUTE
from tests import template_find as find
from tests.emulator.test_autoscaling_paths import MORE_PHOTOS, harness, synthesized  # noqa: F401 (fixture)
from tests.emulator.test_harness_api import PHOTOS


def dispatch_rules(h) -> list[str]:
    """Logical ids of the rules whose target is the dispatcher."""
    return [
        logical
        for logical, rule in h.synthesized.resources("AWS::Events::Rule").items()
        if any(h.dispatch_function.logical_id in json.dumps(t["Arn"]) for t in rule["Properties"]["Targets"])
    ]


def test_deletion_disables_the_dispatcher_first_and_nothing_recreates_the_endpoint(synthesized):
    with harness(synthesized) as h:
        model_id = h.train_and_deploy("doppler", PHOTOS)
        rules = dispatch_rules(h)
        assert len(rules) == 2 and all(h.rule_enabled(r) for r in rules)
        # When CloudFormation deletes the stack's cleanup resource
        answer = h.delete_stack_cleanup()
        assert answer["Status"] == "SUCCESS", answer["Reason"]
        assert sorted(answer["Data"]["disabledRules"].split(",")) == sorted(rules)
        assert answer["Data"]["endpoints"] == h.endpoint_name
        # Then the dispatcher's schedule and endpoint rules are disabled: neither runs it any more
        assert not any(h.rule_enabled(r) for r in rules)
        assert h.run_schedule(h.dispatch_function) is None
        assert STACK_DELETING_ATTRIBUTE in h.live_pointer()
        deploys = len(h.deploy_runs())
        # And a dispatcher run that starts now neither heals nor registers anything
        summary = h.invoke(h.dispatch_function, {"detail-type": "Scheduled Event", "source": "aws.events"})
        assert summary["stackDeleting"] is True and summary["healing"] is False
        # And a generation request's heal starts a deployment that refuses to run
        h.api("POST", "/generations", {"prompt": "during the deletion", "seed": 1})
        h.wait_until_idle(60)
        runs = h.deploy_runs()[deploys:]
        assert runs and all(r.error == "StackBeingDeleted" for r in runs), [(r.name, r.error) for r in runs]
        assert all("CreateEndpoint" not in r.entered_states for r in runs)
        # So the endpoint stays deleted; the live model's registry entry is untouched
        assert h.client("sagemaker").list_endpoints()["Endpoints"] == []
        assert h.live_pointer()["liveModelId"] == model_id


def test_the_cleanup_may_disable_only_the_dispatchers_rules_and_runs_before_they_go(synthesized):
    template = synthesized.template
    (cleanup,) = synthesized.resources("Custom::DreamBoothSageMakerCleanup").values()
    rules = [
        name
        for name, rule in synthesized.resources("AWS::Events::Rule").items()
        if "Dispatch" in json.dumps(rule["Properties"]["Targets"])
    ]
    assert len(rules) == 2
    # CloudFormation deletes a resource before what it references (depends on): the cleanup runs
    # while the rules exist
    assert sorted(ref["Ref"] for ref in cleanup["Properties"]["DispatchRuleNames"]) == sorted(rules)
    statements = [
        s
        for policy in find.of_type(template["Resources"], "AWS::IAM::Policy").values()
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if "events:DisableRule" in json.dumps(s["Action"])
    ]
    (statement,) = statements
    assert statement["Action"] == "events:DisableRule"
    assert sorted(r["Fn::GetAtt"][0] for r in statement["Resource"]) == sorted(rules)
    assert all(r["Fn::GetAtt"][1] == "Arn" for r in statement["Resource"])


def test_a_dispatcher_run_under_way_when_the_stack_is_deleted_does_not_recreate_the_endpoint(synthesized):
    with harness(synthesized) as h:
        model_id = h.train_and_deploy("doppler", PHOTOS)
        h.run_schedule(h.dispatch_function)  # the dispatcher's code loaded, as on a warm Lambda
        dispatcher = h.dispatch_function.module.dispatcher
        read_pointer, answers = dispatcher._live_pointer, []

        def cleanup_right_after_the_read():
            pointer = read_pointer()  # no deletion mark yet
            answers.append(h.delete_stack_cleanup())
            return pointer

        # When CloudFormation deletes the stack between the run's read of the live pointer and its heal
        with mock.patch.object(dispatcher, "_live_pointer", cleanup_right_after_the_read):
            summary = h.invoke(h.dispatch_function, {"detail-type": "Scheduled Event", "source": "aws.events"})
        assert answers and answers[0]["Status"] == "SUCCESS", answers
        assert "stackDeleting" not in summary  # it did not see the mark
        h.wait_until_idle(60)
        # Then the deployment its heal started refuses to run, and the endpoint stays deleted
        assert summary["healing"] is True
        (run,) = [r for r in h.deploy_runs() if r.name.startswith("heal-")]
        assert run.error == "StackBeingDeleted" and "CreateEndpoint" not in run.entered_states
        assert h.client("sagemaker").list_endpoints()["Endpoints"] == []
        assert STACK_DELETING_ATTRIBUTE in h.live_pointer() and h.live_pointer()["liveModelId"] == model_id


def test_a_deployment_finishing_as_the_stack_is_deleted_keeps_the_deletion_mark(synthesized):
    with harness(synthesized) as h:
        h.train_and_deploy("doppler", PHOTOS)

        def cleanup_marks_the_pointer():
            # The cleanup's first write (stop_dispatcher); it stops the runs it finds only after
            h.client("dynamodb").update_item(
                TableName=h.registry_table,
                Key={"modelId": {"S": LIVE_POINTER_ID}},
                UpdateExpression="SET #deleting = :now",
                ExpressionAttributeNames={"#deleting": STACK_DELETING_ATTRIBUTE},
                ExpressionAttributeValues={":now": {"S": "2025-01-01T00:00:00+00:00"}},
            )

        # When the cleanup marks the live pointer while the next deployment is about to point it at its model
        h.when_entering("PointLiveModel", cleanup_marks_the_pointer)
        h.train_and_deploy("doppler", MORE_PHOTOS)
        deploy = h.deploy_runs()[-1]
        # Then the mark stays (no later heal re-creates the endpoint the cleanup deletes), and the run says why it ended
        assert STACK_DELETING_ATTRIBUTE in h.live_pointer()
        assert deploy.status == "FAILED" and deploy.error == "StackBeingDeleted", (deploy.error, deploy.cause)
        assert (
            h.client("dynamodb")
            .get_item(TableName=h.state_table, Key={"pk": {"S": DEPLOY_LOCK_ID}})
            .get("Item", {})
            .get("owner")
            is None
        )
