"""The image signer's session (lambda/api/aws.py): reused until shortly before it could no
longer cover a URL's lifetime, and no URL signed to outlive the credentials that signed it."""

from __future__ import annotations

from datetime import datetime, timezone
from urllib.parse import parse_qs, urlparse

import pytest

from emulator.lambda_runtime import API_CODE, load

ROLE = "arn:aws:iam::123456789012:role/ImageSigner"
T0 = 1_800_000_000.0


@pytest.fixture(scope="module")
def aws():
    return load(API_CODE, "aws", {})


class FakeSts:
    """STS on the handler's clock: each session ends DurationSeconds after it was assumed."""

    def __init__(self, clock):
        self.clock, self.sessions = clock, []

    def assume_role(self, RoleArn, RoleSessionName, DurationSeconds):
        key = f"ASIASESSION{len(self.sessions):09d}"
        expiration = datetime.fromtimestamp(self.clock() + DurationSeconds, tz=timezone.utc)
        self.sessions.append((key, expiration.timestamp()))
        return {
            "Credentials": {
                "AccessKeyId": key,
                "SecretAccessKey": "secret",
                "SessionToken": "token",
                "Expiration": expiration,
            }
        }


def clients_at(aws, now: list[float]):
    import boto3

    sts = FakeSts(lambda: now[0])
    factory = lambda service, **kwargs: sts if service == "sts" else boto3.client(service, **kwargs)  # noqa: E731
    return aws.Clients(factory=factory, clock=lambda: now[0]), sts


def sign(clients, lifetime_s: int, now: float) -> tuple[str, float]:
    """One URL as the API signs it: (its access key, the moment it stops working on the handler's clock)."""
    signer, expires_in = clients.signing_s3(ROLE, lifetime_s)
    url = signer.generate_presigned_url(
        "get_object", Params={"Bucket": "b", "Key": "generated/g/0.jpg"}, ExpiresIn=expires_in
    )
    query = parse_qs(urlparse(url).query)
    assert int(query["X-Amz-Expires"][0]) == expires_in
    return query["X-Amz-Credential"][0].split("/")[0], now + expires_in


@pytest.mark.parametrize("lifetime_s, reuse_s", [(3600, 290), (1800, 1970), (60, 3536)])
def test_one_session_signs_every_url_until_shortly_before_it_could_not_cover_one(aws, lifetime_s, reuse_s):
    # reuse_s: how long one session serves: until its end less SIGNER_MARGIN_S is less than the lifetime
    # less signer_slack_s(lifetime) away (3590 - (lifetime - slack)).
    assert reuse_s == aws.SIGNER_SESSION_S - aws.SIGNER_MARGIN_S - (lifetime_s - aws.signer_slack_s(lifetime_s))
    now = [T0]
    clients, sts = clients_at(aws, now)
    signed = []
    # Given many URLs signed over the session's reusable time (every 10 s, the last at its edge)...
    for moment in [*range(0, reuse_s, 10), reuse_s]:
        now[0] = T0 + moment
        signed.append(sign(clients, lifetime_s, now[0]))
    # ...one AssumeRole signed them all
    assert len(sts.sessions) == 1
    # When one more comes past that edge, a new session is assumed
    now[0] = T0 + reuse_s + 1
    signed.append(sign(clients, lifetime_s, now[0]))
    assert len(sts.sessions) == 2
    # Then every URL ends before the credentials that signed it, and lives at least 90% of the lifetime
    # (and at most SIGNER_SLACK_MAX_S less)
    ends = dict(sts.sessions)
    for (key, url_end), moment in zip(signed, [*range(0, reuse_s, 10), reuse_s, reuse_s + 1]):
        assert url_end <= ends[key] - aws.SIGNER_MARGIN_S
        lived = url_end - (T0 + moment)
        assert lifetime_s - aws.signer_slack_s(lifetime_s) <= lived <= lifetime_s


def test_without_a_signer_role_the_function_s_own_client_signs_for_the_whole_lifetime(aws):
    now = [T0]
    clients, sts = clients_at(aws, now)
    signer, expires_in = clients.signing_s3("", 3600)
    assert signer is clients.s3_browser and expires_in == 3600 and sts.sessions == []
