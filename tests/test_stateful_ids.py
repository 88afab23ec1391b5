"""Resources that hold data keep their logical ids, so an update of a deployed stack replaces none of them.

CloudFormation replaces a resource whose logical id changed: a new, empty table, bucket or queue, a
new key (what the old one encrypted can no longer be read once it is deleted), a topic without its
confirmed e-mail subscription, log groups without their history, state machines without their
execution history (the registry records execution ARNs), and a new API id and API key that every
caller holds. A construct renamed or moved in the tree changes these ids: the list below says which
ids a deployed stack has: change an id only knowing that a deployed stack loses what it held.
"""

from __future__ import annotations

HOLDS_DATA = (
    "AWS::S3::Bucket",
    "AWS::DynamoDB::Table",
    "AWS::KMS::Key",
    "AWS::SNS::Topic",
    "AWS::SQS::Queue",
    "AWS::Logs::LogGroup",
    "AWS::StepFunctions::StateMachine",
    "AWS::ApiGateway::RestApi",
    "AWS::ApiGateway::ApiKey",
)

CREATED_BUCKET = {
    "DataBucketE6B0FAA8": "AWS::S3::Bucket",
    "ApiGenerations894F5237": "AWS::DynamoDB::Table",
    "PipelineRegistryModels8DBF54B7": "AWS::DynamoDB::Table",
    "PipelineRegistryPipelineState1C349475": "AWS::DynamoDB::Table",
    "PipelineNotificationsKey6889989F": "AWS::KMS::Key",
    "PipelineInferenceFailed2A8AFEB5": "AWS::SNS::Topic",
    "PipelineInferenceSucceededEF870D5C": "AWS::SNS::Topic",
    "PipelineNotifications6D4DD3FC": "AWS::SNS::Topic",
    "ApiFailedNoticesE4A14B76": "AWS::SQS::Queue",
    "ApiAccessLogs50B185DB": "AWS::Logs::LogGroup",
    "ApiDispatchLogsB301161B": "AWS::Logs::LogGroup",
    "ApiHandlerLogsC9EFE062": "AWS::Logs::LogGroup",
    "ApiResultsLogs9B68FDB4": "AWS::Logs::LogGroup",
    "BucketNotificationsHandler050a0587b7544547bf325f094a3db834ResourceLogs1C22566A": "AWS::Logs::LogGroup",
    "PipelineCleanupLogs2409617B": "AWS::Logs::LogGroup",
    "PipelineDeployStateMachineLogs00F5D0BC": "AWS::Logs::LogGroup",
    "PipelineEndpointAutoscalingLogs2CE4E425": "AWS::Logs::LogGroup",
    "PipelineEndpointStateChangeLogs80A8888D": "AWS::Logs::LogGroup",
    "PipelineEndpointWaitParkLogsF10268F4": "AWS::Logs::LogGroup",
    "PipelineExplainFailureLogs5C19423A": "AWS::Logs::LogGroup",
    "PipelinePackageModelLogsF519101D": "AWS::Logs::LogGroup",
    "PipelinePrepareRetrainLogsBE58C509": "AWS::Logs::LogGroup",
    "PipelineRunFailuresLogs749E3E44": "AWS::Logs::LogGroup",
    "PipelineSnapshotLogs8E6ACF9D": "AWS::Logs::LogGroup",
    "PipelineTrainingStateMachineLogs93A6A882": "AWS::Logs::LogGroup",
    "PipelineUploadListenerLogs6417876D": "AWS::Logs::LogGroup",
    "PipelineValidateLogs4840CE46": "AWS::Logs::LogGroup",
    "PipelineDeployStateMachineC43276DA": "AWS::StepFunctions::StateMachine",
    "PipelineTrainingStateMachine4C7718B4": "AWS::StepFunctions::StateMachine",
    "ApiCD79AAA0": "AWS::ApiGateway::RestApi",
    "ApiApiKey88125E37": "AWS::ApiGateway::ApiKey",
}
"""The default stack's resources of those types (bucket created by the stack): logical id -> type."""


def holding_data(stack) -> dict[str, str]:
    from aws_cdk.assertions import Template

    resources = Template.from_stack(stack).to_json()["Resources"]
    return {logical: r["Type"] for logical, r in resources.items() if r["Type"] in HOLDS_DATA}


def test_the_default_stack_keeps_the_logical_ids_of_what_holds_data(created_stack):
    assert holding_data(created_stack) == CREATED_BUCKET


def test_the_stack_over_a_reused_bucket_keeps_them_too(imported_stack):
    # The reused bucket is not the stack's: it is referenced by name, never in the template.
    expected = {logical: kind for logical, kind in CREATED_BUCKET.items() if kind != "AWS::S3::Bucket"}
    assert holding_data(imported_stack) == expected
