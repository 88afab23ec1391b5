"""Browser URLs for the data bucket (lambda/api/aws.py): its regional virtual host, or
path-style for a name with dots (a reused bucket), which S3's wildcard certificate
*.s3.<region>.amazonaws.com does not cover; the page's CSP allows exactly those URLs."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from emulator.lambda_runtime import API_CODE, load

REGION = "eu-west-1"


@pytest.fixture(scope="module")
def runtime():
    aws = load(API_CODE, "aws", {})
    web = load(API_CODE, "web", {})
    return aws, web


class Sts:
    def assume_role(self, **_):
        return {
            "Credentials": {
                "AccessKeyId": "ASIASIGNER",
                "SecretAccessKey": "s",
                "SessionToken": "t",
                "Expiration": datetime.now(timezone.utc) + timedelta(hours=1),
            }
        }


def urls(aws, bucket: str) -> list[str]:
    """Every URL the API makes for a browser: an image link, its download link (signer session), a photo upload."""
    import boto3

    clients = aws.Clients(
        factory=lambda service, **kw: Sts() if service == "sts" else boto3.client(service, **kw),
        region=REGION,
        bucket=bucket,
    )
    signer, expires_in = clients.signing_s3("arn:aws:iam::123456789012:role/ImageSigner", 3600)
    image = signer.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "generated/g/0.jpg"}, ExpiresIn=expires_in
    )
    download = signer.generate_presigned_url(
        "get_object",
        ExpiresIn=expires_in,
        Params={
            "Bucket": bucket,
            "Key": "generated/g/0.jpg",
            "ResponseContentDisposition": 'attachment; filename="a.jpg"',
        },
    )
    upload = clients.s3_browser.generate_presigned_post(Bucket=bucket, Key="uploads/dog/t/0.jpg", ExpiresIn=60)["url"]
    return [image, download, upload]


def test_a_dotted_bucket_gets_path_style_urls_on_the_regional_host(runtime):
    # Planted defect caught: a virtual host for dotted names (e.g. an SDK that keeps "virtual" for them)
    aws, web = runtime
    image, download, upload = urls(aws, "photos.example.com")
    assert image.startswith(f"https://s3.{REGION}.amazonaws.com/photos.example.com/generated/g/0.jpg?")
    assert download.startswith(f"https://s3.{REGION}.amazonaws.com/photos.example.com/generated/g/0.jpg?")
    assert upload == f"https://s3.{REGION}.amazonaws.com/photos.example.com"
    # And the page may reach exactly the bucket's path there (the POST URL itself and what is under it)
    policy = dict(
        part.split(" ", 1)
        for part in web.content_security_policy(aws.bucket_sources("photos.example.com", REGION)).split("; ")
    )
    assert policy["connect-src"] == (
        f"'self' https://s3.{REGION}.amazonaws.com/photos.example.com "
        f"https://s3.{REGION}.amazonaws.com/photos.example.com/"
    )


def test_an_undotted_bucket_keeps_its_regional_virtual_host(runtime):
    aws, web = runtime
    image, download, upload = urls(aws, "photos-example")
    assert image.startswith(f"https://photos-example.s3.{REGION}.amazonaws.com/generated/g/0.jpg?")
    assert download.startswith(f"https://photos-example.s3.{REGION}.amazonaws.com/generated/g/0.jpg?")
    assert upload == f"https://photos-example.s3.{REGION}.amazonaws.com/"
    assert aws.bucket_sources("photos-example", REGION) == f"https://photos-example.s3.{REGION}.amazonaws.com"
