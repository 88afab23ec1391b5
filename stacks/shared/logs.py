"""Log retention: the CDK value for a number of days, and log groups for the functions CDK adds itself.

Every unit that creates a function or a state machine gives its log group the configured retention
(MonitoringConfig.log_retention_days); the stack calls `manage_function_logs` last.
"""

from __future__ import annotations

from aws_cdk import CfnResource, RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

_RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    2192: logs.RetentionDays.SIX_YEARS,
    2557: logs.RetentionDays.SEVEN_YEARS,
    2922: logs.RetentionDays.EIGHT_YEARS,
    3288: logs.RetentionDays.NINE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


def retention(days: int) -> logs.RetentionDays:
    """The CDK enum for a retention in days (MonitoringConfig has already checked the value)."""
    return _RETENTION[days]


def manage_function_logs(scope: Construct, days: int) -> list[logs.LogGroup]:
    """Give every Lambda function under `scope` that has no log group of its own one with retention.

    CDK's own functions (the S3 notifications handler) would otherwise log to an implicit
    /aws/lambda/<name> group kept forever. The function's LoggingConfig points at the new group,
    so CloudFormation creates the group before the function can run.
    """
    created = []
    for construct in scope.node.find_all():
        if isinstance(construct, lambda_.CfnFunction):
            if construct.logging_config is not None:
                continue
        # CDK writes some of its own handlers as plain CfnResources, never with a LoggingConfig.
        elif not (isinstance(construct, CfnResource) and construct.cfn_resource_type == "AWS::Lambda::Function"):
            continue
        group = logs.LogGroup(
            construct.node.scope,
            f"{construct.node.id}Logs",
            retention=retention(days),
            removal_policy=RemovalPolicy.DESTROY,
        )
        construct.add_property_override("LoggingConfig.LogGroup", group.log_group_name)
        created.append(group)
    return created
