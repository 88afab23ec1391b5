"""The account the harness deploys the synthesized stack into (moto's): ids shared by its modules."""

ACCOUNT = "123456789012"
REGION = "us-east-1"
BUCKET_NAME = "dreambooth-harness-data"
