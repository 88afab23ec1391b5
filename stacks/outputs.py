"""Names of the stack's CloudFormation outputs: defined once for the stack (which fixes their logical
ids, stacks/stack.py) and the CLI (which reads them with DescribeStacks,
scripts/cli/stack_outputs.py). Plain constants, no CDK import: the CLI loads this without starting jsii.
The "Stack outputs" table of docs/deploying.md lists the same names (tests/cli/test_stack_outputs_template.py).
"""

BUCKET_NAME = "BucketName"
BUCKET_CREATED_BY_STACK = "BucketCreatedByStack"
API_URL = "ApiUrl"
API_KEY_ID = "ApiKeyId"  # apiAuth=apiKey only
INVOKE_POLICY_ARN = "InvokePolicyArn"  # apiAuth=iam only
DASHBOARD_NAME = "DashboardName"

ALL = (BUCKET_NAME, BUCKET_CREATED_BY_STACK, API_URL, API_KEY_ID, INVOKE_POLICY_ARN, DASHBOARD_NAME)
