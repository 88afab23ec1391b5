"""The model registry (one item per model version) and the pipeline's own bookkeeping table."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

# Shared by the training and deploy workflows when their states write registry items.
S = tasks.DynamoAttributeValue.from_string
DISCARD = sfn.JsonPath.DISCARD
NOW = "$$.State.EnteredTime"


def str_at(path: str) -> tasks.DynamoAttributeValue:
    """A string attribute taken from the state at `path`."""
    return S(sfn.JsonPath.string_at(path))


class ModelRegistry(Construct):
    """Two on-demand DynamoDB tables with point-in-time recovery.

    Attributes:
      table: the model registry, partition key `modelId` (S), no sort key.
      state_table: pipeline bookkeeping (debounce windows, claimed snapshots, deployment lock),
        partition key `pk` (S). Kept apart so that readers of the registry see only models.

    Props:
      removal_policy: what `cdk destroy` does with both tables. Default DESTROY: model artifacts
        stay in the bucket, the registry describes a stack that no longer exists.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, removal_policy: RemovalPolicy = RemovalPolicy.DESTROY
    ) -> None:
        super().__init__(scope, construct_id)
        common = dict(
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=removal_policy,
        )
        self.table = dynamodb.Table(
            self,
            "Models",
            partition_key=dynamodb.Attribute(name="modelId", type=dynamodb.AttributeType.STRING),
            **common,
        )
        self.state_table = dynamodb.Table(
            self,
            "PipelineState",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            **common,
        )
