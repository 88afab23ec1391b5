"""The account the harness deploys the synthesized stack into (moto's): ids shared by its modules."""

ACCOUNT = "123456789012"
REGION = "us-east-1"
BUCKET_NAME = "dreambooth-harness-data"
# A customer key of the account, for runs over a reused SSE-KMS bucket (`KMS_BUCKET_CONTEXT`).
BUCKET_KEY_ARN = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0b5c8d4e-1f2a-4b3c-9d8e-7f6a5b4c3d2e"
