"""The scripts' boto3 session honours AWS_REGION, as the README, the CDK CLI and newer AWS SDKs do."""

from scripts.aws_session import user_session


def test_aws_region_alone_sets_the_region(monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert user_session().region_name == "eu-west-1"


def test_aws_default_region_wins_when_both_are_set(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert user_session().region_name == "us-west-2"
