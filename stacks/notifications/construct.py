"""The notifications topic (training and deployment outcomes, alarms) and its customer-managed key."""

from __future__ import annotations

from typing import Optional

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from stacks.config import NotificationConfig


class Notifications:
    """Builds the topic and its key in `scope` (construct ids NotificationsKey, Notifications).

    Attributes: key, topic.
    """

    def __init__(self, scope: Construct, notifications: NotificationConfig) -> None:
        # A customer-managed key, not alias/aws/sns: the AWS-managed key's policy cannot be changed
        # and does not let CloudWatch alarms use it, so alarms could never publish to the topic.
        self.key = kms.Key(
            scope,
            "NotificationsKey",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
            pending_window=Duration.days(7),
            description="Encrypts the DreamBooth pipeline's notifications topic",
        )
        self.topic = sns.Topic(
            scope,
            "Notifications",
            display_name="DreamBooth pipeline",
            enforce_ssl=True,
            master_key=self.key,
        )
        if notifications.email:
            self.topic.add_subscription(subscriptions.EmailSubscription(notifications.email))

    def grant_key(self, role: Optional[iam.IRole]) -> None:
        """What a publisher needs on the topic's key (SNS encrypts with a data key made for it)."""
        assert role is not None
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["kms:GenerateDataKey", "kms:Decrypt"], resources=[self.key.key_arn])
        )

    def grant_publish(self, role: Optional[iam.IRole]) -> None:
        """sns:Publish on the topic and the two key actions (not grant_publish: it adds kms:GenerateDataKey*)."""
        assert role is not None
        role.add_to_principal_policy(iam.PolicyStatement(actions=["sns:Publish"], resources=[self.topic.topic_arn]))
        self.grant_key(role)
