"""Training: a validated dataset snapshot -> a trained, packaged model handed to the deploy workflow.

The training state machine (workflow.py: quiet window, snapshot, validation, the JumpStart
fine-tune with `createTrainingJob.sync`, packaging, then the deploy state machine) and the two
functions only it runs: ExplainFailure (lambda/training/training_failure.py: a failed job in one line,
retryable or not) and PackageModel (lambda/training/model_package.py: JumpStart's inference code into the
model's output when it lacks it). The roles the jobs and the endpoint run with are in roles.py;
the pinned JumpStart values in jumpstart_lock.py (stacks/training/jumpstart.lock.json).
"""

from __future__ import annotations

from aws_cdk import Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn

from dreambooth_shared.contract import METRICS_NAMESPACE, MODELS_PREFIX, PACKAGING_TIMEOUT_S, PipelineEnv
from stacks.config import TrainingConfig
from stacks.notifications.construct import Notifications
from stacks.shared import sfn_budget
from stacks.shared.functions import PipelineFunctions
from stacks.shared.nag import acknowledge, acknowledge_prefix_grants, arn_prefix
from stacks.training.jumpstart_lock import JumpStartArtifacts, JumpStartLock
from stacks.training.roles import SageMakerRoles
from stacks.training.workflow import QUIET_WINDOW_LOOPS, TrainingWorkflow


class TrainingTasks:
    """The functions only the training workflow runs (construct ids ExplainFailure, PackageModel).

    Attributes: explain_function, package_function.
    """

    def __init__(self, functions: PipelineFunctions, *, bucket: s3.IBucket, artifacts: JumpStartArtifacts) -> None:
        self.explain_function = functions.function(
            "ExplainFailure",
            "training",
            "training_failure.handler",
            {},
            timeout_s=30,
            description="Turns a training failure into one line and says whether a retrain can help",
        )
        # After training: model.tar.gz unpacked to <output>/model/, JumpStart's inference code into its
        # code/ when the output lacks it. The whole model streams through (SD 2.1: a few GB): Lambda's
        # longest timeout, and the memory that gives it more network and CPU for gunzip.
        self.package_function = functions.function(
            "PackageModel",
            "training",
            "model_tasks.package",
            {PipelineEnv.INFERENCE_SCRIPT_URI: artifacts.inference_script_uri},
            timeout_s=PACKAGING_TIMEOUT_S,
            memory_mb=1769,
            description="Unpacks a trained model's output and adds JumpStart's inference code to it",
        )
        bucket.grant_read(self.package_function, f"{MODELS_PREFIX}*")
        bucket.grant_put(self.package_function, f"{MODELS_PREFIX}*")
        self.package_function.add_to_role_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=[artifacts.inference_script_arn])
        )
        acknowledge_prefix_grants(self.package_function.role, bucket, MODELS_PREFIX, writes=True)


class Training:
    """The training state machine (construct ids Training for the workflow, TrainingStateMachine).

    Props: the registry and state tables, the notifications, the dataset functions (intake) and the
    training tasks it runs, the SageMaker roles and JumpStart values, and the deploy state machine's
    name (started with `startExecution.sync`).
    Attributes: training_state_machine, training_name.
    """

    def __init__(
        self,
        functions: PipelineFunctions,
        *,
        registry_table: dynamodb.ITable,
        state_table: dynamodb.ITable,
        notifications: Notifications,
        dataset_functions: tuple[lambda_.IFunction, lambda_.IFunction, lambda_.IFunction],
        tasks: TrainingTasks,
        roles: SageMakerRoles,
        artifacts: JumpStartArtifacts,
        lock: JumpStartLock,
        training: TrainingConfig,
        training_name: str,
        deploy_name: str,
    ) -> None:
        scope = functions.scope
        stack = Stack.of(scope)
        self.training_name = training_name
        snapshot_function, validate_function, retrain_function = dataset_functions
        workflow = TrainingWorkflow(
            scope,
            "Training",
            registry_table=registry_table,
            state_table=state_table,
            topic=notifications.topic,
            snapshot_function=snapshot_function,
            validate_function=validate_function,
            retrain_function=retrain_function,
            explain_function=tasks.explain_function,
            package_function=tasks.package_function,
            training_role=roles.training_role,
            training_image=artifacts.training_image,
            base_model_uri=artifacts.base_model_uri,
            metric_definitions=lock.metric_definitions,
            instance_type=training.instance_type,
            max_runtime_s=training.max_runtime_minutes * 60,
            spot_max_wait_s=training.spot_max_wait_minutes * 60 if training.spot else None,
            metrics_namespace=METRICS_NAMESPACE,
            quiet_window_s=training.quiet_window_s,
            # Imported by name so that the grant reads `execution:<name>*` rather than a split ARN.
            deploy_state_machine=sfn.StateMachine.from_state_machine_name(scope, "DeployByName", deploy_name),
        )
        check_history_budget(workflow)
        self.training_state_machine = functions.state_machine(
            "TrainingStateMachine", workflow.definition, training_name
        )
        workflow.grant_training(self.training_state_machine.role)
        acknowledge(
            self.training_state_machine.role,
            "Training jobs are named per model version at run time.",
            f"AwsSolutions-IAM5[Resource::{arn_prefix(scope, 'sagemaker')}training-job/*]",
        )
        acknowledge(
            self.training_state_machine.role,
            "The deploy state machine's executions are named per model at run time (startExecution.sync "
            "describes and stops them).",
            f"AwsSolutions-IAM5[Resource::{arn_prefix(scope, 'states')}execution:{deploy_name}*]",
        )
        acknowledge(
            self.training_state_machine.role,
            "CDK's LambdaInvoke task grants the function and its versions (`<arn>:*`).",
            *(
                f"AwsSolutions-IAM5[Resource::<{stack.get_logical_id(fn.node.default_child)}.Arn>:*]"
                for fn in (
                    snapshot_function,
                    validate_function,
                    retrain_function,
                    tasks.explain_function,
                    tasks.package_function,
                )
            ),
        )


def check_history_budget(workflow: TrainingWorkflow) -> int:
    """Refuse a training machine whose longest run would pass 25,000 history events: every state
    once, the debounce loop at its most turns (one per extension of the quiet window). The training
    job's `.sync` polls and the deployment's own execution write nothing into this history."""
    graph = sfn_budget.graph_of(workflow.definition)
    events = sfn_budget.total_events(graph, workflow.loops)
    if sfn_budget.fits(events):
        return events
    ((_, turns),) = [loop for loop in workflow.loops if loop[0] is QUIET_WINDOW_LOOPS]
    turn = sfn_budget.longest_turn(graph, QUIET_WINDOW_LOOPS)
    room = sfn_budget.HISTORY_EVENT_LIMIT - sfn_budget.HISTORY_EVENT_RESERVE - (events - turn * turns)
    raise ValueError(
        f"MAX_QUIET_WINDOW_EXTENSIONS={turns} (stacks/training/workflow.py): a training run whose uploads keep "
        f"extending the quiet window may go round the debounce loop {turns} times, {turn} history events each, "
        f"writing up to {events} Step Functions history events; an execution may write "
        f"{sfn_budget.HISTORY_EVENT_LIMIT} (less {sfn_budget.HISTORY_EVENT_RESERVE} kept for retries). Use "
        f"MAX_QUIET_WINDOW_EXTENSIONS of at most {max(0, room // turn)}"
    )
