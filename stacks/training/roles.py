"""Execution roles that SageMaker assumes: one for training jobs, one for the hosted model."""

from __future__ import annotations

from typing import Sequence

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from dreambooth_shared.contract import (
    DATASETS_PREFIX,
    INFERENCE_FAILURES_PREFIX,
    INFERENCE_OUTPUTS_PREFIX,
    INFERENCE_REQUESTS_PREFIX,
    MODELS_PREFIX,
)
from stacks.shared.nag import acknowledge, acknowledge_prefix_grants
from stacks.storage.construct import grant_prefix_read

# AWS's account that publishes the Deep Learning Containers used by JumpStart.
DLC_REGISTRY_ACCOUNT = "763104351884"


class SageMakerRoles(Construct):
    """Least-privilege roles for the JumpStart fine-tune and for the endpoint's model.

    Props:
      bucket: the data bucket.
      jumpstart_object_arns: the exact JumpStart S3 objects the training job reads
        (training script and base model), from the lock file.
      jumpstart_listing: (bucket ARN, key) of the base model channel, which SageMaker lists
        (S3Prefix) with the job's role before reading it.
      endpoint_name: the pipeline's endpoint, whose log group the hosting role writes to.

    Attributes:
      training_role: reads and lists only `datasets/*` and the JumpStart objects, writes only `models/*`.
      hosting_role: reads and lists only `models/*` (the trained artifact); reads `inference/requests/*`
        (asynchronous requests), writes `inference/outputs/*` and `inference/failures/*` (answers, failures).
    Both may pull the Deep Learning Container images and write their own logs and metrics.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket: s3.IBucket,
        jumpstart_object_arns: Sequence[str],
        jumpstart_listing: tuple[str, str],
        endpoint_name: str,
    ) -> None:
        super().__init__(scope, construct_id)
        principal = iam.ServicePrincipal("sagemaker.amazonaws.com")
        self.training_role = iam.Role(
            self, "Training", assumed_by=principal, description="SageMaker training job of the DreamBooth pipeline"
        )
        grant_prefix_read(bucket, self.training_role, DATASETS_PREFIX)
        bucket.grant_put(self.training_role, f"{MODELS_PREFIX}*")
        self.training_role.add_to_principal_policy(
            iam.PolicyStatement(actions=["s3:GetObject"], resources=list(jumpstart_object_arns))
        )
        listed_bucket, listed_key = jumpstart_listing
        self.training_role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[listed_bucket],
                conditions={"StringEquals": {"s3:prefix": [listed_key]}},
            )
        )
        self._container_basics(self.training_role, "TrainingJobs", "huggingface-pytorch-training")
        acknowledge_prefix_grants(self.training_role, bucket, DATASETS_PREFIX, MODELS_PREFIX, reads=False, writes=True)

        self.hosting_role = iam.Role(
            self, "Hosting", assumed_by=principal, description="SageMaker endpoint model of the DreamBooth pipeline"
        )
        grant_prefix_read(bucket, self.hosting_role, MODELS_PREFIX)
        # Asynchronous inference runs with this role: it reads the request objects and writes the
        # answers and failures (then notifies: stacks/serving/construct.py grants the two topics).
        grant_prefix_read(bucket, self.hosting_role, INFERENCE_REQUESTS_PREFIX, listing=False)
        bucket.grant_put(self.hosting_role, f"{INFERENCE_OUTPUTS_PREFIX}*")
        bucket.grant_put(self.hosting_role, f"{INFERENCE_FAILURES_PREFIX}*")
        # SageMaker writes an endpoint's container logs to /aws/sagemaker/Endpoints/<endpoint name>.
        self._container_basics(self.hosting_role, f"Endpoints/{endpoint_name}", "huggingface-pytorch-inference")
        acknowledge_prefix_grants(self.hosting_role, bucket, MODELS_PREFIX, INFERENCE_REQUESTS_PREFIX, reads=False)
        acknowledge_prefix_grants(
            self.hosting_role, bucket, INFERENCE_OUTPUTS_PREFIX, INFERENCE_FAILURES_PREFIX, reads=False, writes=True
        )

    def _container_basics(self, role: iam.Role, log_kind: str, repository: str) -> None:
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                resources=[f"arn:{Aws.PARTITION}:ecr:{Aws.REGION}:{DLC_REGISTRY_ACCOUNT}:repository/{repository}"],
            )
        )
        role.add_to_principal_policy(iam.PolicyStatement(actions=["ecr:GetAuthorizationToken"], resources=["*"]))
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[
                    f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:/aws/sagemaker/{log_kind}",
                    f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:/aws/sagemaker/{log_kind}:*",
                ],
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/*", "aws/sagemaker/*"]}},
            )
        )
        acknowledge(
            role,
            "ecr:GetAuthorizationToken and cloudwatch:PutMetricData support no resource-level "
            "permissions; metrics are limited to SageMaker's namespaces by a condition.",
            "AwsSolutions-IAM5[Resource::*]",
        )
        acknowledge(
            role,
            "SageMaker names a log stream per job or endpoint instance at run time, inside its fixed log group.",
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:"
            f"log-group:/aws/sagemaker/{log_kind}:*]",
        )
