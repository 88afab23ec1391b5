"""The report of pipeline runs that ended uncaught.

An execution that ends uncaught (States.DataLimitExceeded, States.Runtime, the history limit, a
timeout) gets its model marked failed and a notification (lambda/monitoring/run_failures.py), from the
Step Functions status-change event.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_stepfunctions as sfn

from dreambooth_shared.contract import STATUS_DEPLOYING, STATUS_FAILED, STATUS_TRAINING, STATUS_VALIDATING, PipelineEnv
from stacks.notifications.construct import Notifications
from stacks.shared.functions import PipelineFunctions


class RunFailureReport:
    """The report function (construct id RunFailures) and its rule (RunEndedUncaught).

    Attributes: function, rule.
    """

    def __init__(
        self,
        functions: PipelineFunctions,
        *,
        registry_table: dynamodb.ITable,
        notifications: Notifications,
        training_state_machine: sfn.StateMachine,
        deploy_state_machine: sfn.StateMachine,
    ) -> None:
        machines = (training_state_machine, deploy_state_machine)
        self.function = function = functions.function(
            "RunFailures",
            "monitoring",
            "run_failure_tasks.handler",
            {
                PipelineEnv.REGISTRY_TABLE_NAME: registry_table.table_name,
                PipelineEnv.TOPIC_ARN: notifications.topic.topic_arn,
                PipelineEnv.TRAINING_STATE_MACHINE_ARN: training_state_machine.state_machine_arn,
                PipelineEnv.DEPLOY_STATE_MACHINE_ARN: deploy_state_machine.state_machine_arn,
                PipelineEnv.TRAINING_STATUSES: f"{STATUS_VALIDATING},{STATUS_TRAINING}",
                PipelineEnv.DEPLOY_STATUSES: STATUS_DEPLOYING,
                PipelineEnv.FAILED_STATUS: STATUS_FAILED,
            },
            timeout_s=60,
            description="Reports pipeline executions that ended without recording why",
        )
        registry_table.grant(function, "dynamodb:GetItem", "dynamodb:Scan", "dynamodb:UpdateItem")
        notifications.grant_publish(function.role)
        self.rule = rule = events.Rule(
            functions.scope,
            "RunEndedUncaught",
            description="Pipeline executions that failed or timed out",
            event_pattern=events.EventPattern(
                source=["aws.states"],
                detail_type=["Step Functions Execution Status Change"],
                detail={"status": ["FAILED", "TIMED_OUT"], "stateMachineArn": [m.state_machine_arn for m in machines]},
            ),
        )
        rule.add_target(targets.LambdaFunction(function, retry_attempts=8, max_event_age=Duration.hours(2)))
