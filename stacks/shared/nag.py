"""Acknowledging cdk-nag findings whose ids contain the stack's region or account.

cdk-nag prints a resource as the synthesized template shows it: a concrete region when the
stack has one (`cdk synth` with a configured region), `<AWS::Region>` when it is environment-
agnostic (tests). These helpers build the id the way cdk-nag will print it.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Acknowledgment, Stack, Token, Validations
from aws_cdk import aws_s3 as s3
from constructs import IConstruct


def region_text(scope: IConstruct) -> str:
    region = Stack.of(scope).region
    return "<AWS::Region>" if Token.is_unresolved(region) else region


def account_text(scope: IConstruct) -> str:
    account = Stack.of(scope).account
    return "<AWS::AccountId>" if Token.is_unresolved(account) else account


def arn_prefix(scope: IConstruct, service: str) -> str:
    """`arn:<AWS::Partition>:<service>:<region>:<account>:` as cdk-nag prints it."""
    partition = "<AWS::Partition>"
    stack = Stack.of(scope)
    if not Token.is_unresolved(stack.partition):
        partition = stack.partition
    return f"arn:{partition}:{service}:{region_text(scope)}:{account_text(scope)}:"


def nag_resource(scope: IConstruct, value: str) -> str:
    """`value` as cdk-nag writes it in a granular finding id (Ref -> <Id>, GetAtt -> <Id.Attr>)."""

    def render(part: Any) -> str:
        if isinstance(part, str):
            return part
        if "Ref" in part:
            return f"<{part['Ref']}>"
        if "Fn::GetAtt" in part:
            return f"<{'.'.join(part['Fn::GetAtt'])}>"
        if "Fn::Join" in part:
            separator, parts = part["Fn::Join"]
            return separator.join(render(p) for p in parts)
        raise ValueError(f"cannot render {part!r}")

    return render(Stack.of(scope).resolve(value))


def acknowledge(scope: IConstruct, reason: str, *finding_ids: str) -> None:
    Validations.of(scope).acknowledge(*(Acknowledgment(id=f, reason=reason) for f in finding_ids))


def acknowledge_prefix_grants(
    role: IConstruct, bucket: s3.IBucket, *prefixes: str, reads: bool = True, writes: bool = False
) -> None:
    """The findings that `bucket.grant_read(role, "<prefix>*")` (reads) / `grant_put` (writes) always raise.

    With reads=False and writes=False only the prefix wildcard itself (`grant_prefix_read`)."""
    findings = []
    if reads:
        findings += [
            "AwsSolutions-IAM5[Action::s3:GetBucket*]",
            "AwsSolutions-IAM5[Action::s3:GetObject*]",
            "AwsSolutions-IAM5[Action::s3:List*]",
        ]
    if writes:
        findings.append("AwsSolutions-IAM5[Action::s3:Abort*]")
    findings += [
        f"AwsSolutions-IAM5[Resource::{nag_resource(role, bucket.arn_for_objects(prefix + '*'))}]"
        for prefix in prefixes
    ]
    acknowledge(
        role,
        "Access limited to the named key prefixes of the data bucket (objects are named per dataset, "
        "model and generation at run time); the action groups are the ones CDK's grant_read/grant_put "
        "use (get, list, abort an unfinished multipart upload).",
        *findings,
    )
