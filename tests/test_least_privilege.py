"""What each role may do, judged on the synthesized policies with the harness's IAM evaluation
(emulator/iam.py): least privilege as behaviour, not as template text."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Template

from emulator.iam import Check, evaluate
from emulator.pipeline_harness import Resolver
from tests import template_find as find
from tests.conftest import synth_stack

ACCOUNT, REGION = "123456789012", "us-east-1"
KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/11111111-2222-3333-4444-555555555555"


class _Names(dict):
    """Any logical id resolves to itself (Ref) or to a plain ARN of it (GetAtt Arn)."""

    def __init__(self, template: dict, arns: bool):
        super().__init__()
        self.template, self.arns = template, arns

    def __missing__(self, logical: str) -> str:
        kind = self.template["Resources"][logical]["Type"]
        if not self.arns:
            return logical
        return {
            "AWS::S3::Bucket": f"arn:aws:s3:::{logical}",
            "AWS::IAM::Role": f"arn:aws:iam::{ACCOUNT}:role/{logical}",
        }.get(kind, f"arn:aws:{kind.split('::')[1].lower()}:{REGION}:{ACCOUNT}:{logical}")


def _function_role(handler: str):
    return lambda resources: find.role_of(resources, find.function(resources, handler))


# Each role by what it is: who assumes it, or what runs with it.
ROLES = {
    "training job": lambda resources: find.role_described(resources, "SageMaker training job"),
    "hosting": lambda resources: find.role_described(resources, "SageMaker endpoint model"),
    "snapshot": _function_role("dataset_tasks.snapshot"),
    "validate": _function_role("dataset_tasks.validate"),
    "retrain": _function_role("dataset_tasks.prepare_retrain"),
    "package": _function_role("model_tasks.package"),
    "cleanup": _function_role("cleanup.handler"),
    "api handler": _function_role("handler.lambda_handler"),
    "api results": _function_role("results.lambda_handler"),
    "api dispatch": _function_role("dispatch.lambda_handler"),
    "image signer": lambda resources: find.role_assumed_by_role(resources, ROLES["api handler"](resources)),
    "deploy machine": lambda resources: find.role_of(resources, find.deploy_machine(resources)),
}


def policies_of(template: dict, who: str) -> list[dict]:
    resolve = Resolver(template, _Names(template, False), _Names(template, True), "DreamBoothPipeline")
    resources = template["Resources"]
    return [resolve(document) for document in find.policies_of_role(resources, ROLES[who](resources))]


@pytest.fixture(scope="module")
def template():
    return Template.from_stack(synth_stack()).to_json()


@pytest.fixture(scope="module")
def kms_template():
    return Template.from_stack(synth_stack({"bucketName": "photos-kms", "bucketKmsKeyArn": KEY})).to_json()


def _bucket(template: dict) -> str:
    (logical,) = [k for k, v in template["Resources"].items() if v["Type"] == "AWS::S3::Bucket"]
    return f"arn:aws:s3:::{logical}"


def test_sagemaker_roles_list_only_their_prefixes(template):
    bucket = _bucket(template)
    training, hosting = policies_of(template, "training job"), policies_of(template, "hosting")
    assert evaluate(training, Check("s3:ListBucket", bucket, {"s3:prefix": "datasets/_pipeline/doppler/1/"}))
    assert not evaluate(training, Check("s3:ListBucket", bucket, {"s3:prefix": "generated/"}))
    assert not evaluate(training, Check("s3:ListBucket", bucket))  # the whole bucket
    assert evaluate(hosting, Check("s3:ListBucket", bucket, {"s3:prefix": "models/doppler/1/output/"}))
    assert not evaluate(hosting, Check("s3:ListBucket", bucket, {"s3:prefix": "datasets/"}))


def test_the_training_role_lists_only_the_base_model_key_on_jumpstart(template):
    training = policies_of(template, "training job")
    jumpstart = "arn:aws:s3:::jumpstart-cache-prod-us-east-1"
    key = "stabilityai-training/train-model-txt2img-stabilityai-stable-diffusion-v2-1-base.tar.gz"
    assert evaluate(training, Check("s3:ListBucket", jumpstart, {"s3:prefix": key}))
    assert not evaluate(training, Check("s3:ListBucket", jumpstart, {"s3:prefix": "stabilityai-training/"}))


def test_the_api_function_reads_nothing_itself_and_its_signer_only_generated_images(template):
    bucket = _bucket(template)
    api, signer = policies_of(template, "api handler"), policies_of(template, "image signer")
    assert not evaluate(api, Check("s3:GetObject", f"{bucket}/generated/g1/0.jpg"))
    assert evaluate(signer, Check("s3:GetObject", f"{bucket}/generated/g1/0.jpg"))
    assert not evaluate(signer, Check("s3:GetObject", f"{bucket}/datasets/doppler/1.jpg"))
    assert not evaluate(signer, Check("s3:ListBucket", bucket, {"s3:prefix": "generated/"}))


def test_cleanup_and_deploy_touch_only_sagemaker_resources_of_this_stack(template):
    cleanup, deploy = policies_of(template, "cleanup"), policies_of(template, "deploy machine")
    ours = {"aws:ResourceTag/dreambooth-pipeline:stack": "DreamBoothPipeline"}
    model = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/doppler-20260101000000"
    config = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint-config/doppler-20260101000000"
    assert evaluate(cleanup, Check("sagemaker:DeleteModel", model, ours))
    assert not evaluate(cleanup, Check("sagemaker:DeleteModel", model))
    assert not evaluate(
        cleanup,
        Check("sagemaker:DeleteEndpointConfig", config, {"aws:ResourceTag/dreambooth-pipeline:stack": "OtherStack"}),
    )
    request_tag = {"aws:RequestTag/dreambooth-pipeline:stack": "DreamBoothPipeline"}
    assert evaluate(deploy, Check("sagemaker:CreateModel", model, request_tag))
    assert not evaluate(deploy, Check("sagemaker:CreateModel", model))
    assert evaluate(deploy, Check("sagemaker:UpdateEndpoint", config, ours))
    assert not evaluate(deploy, Check("sagemaker:UpdateEndpoint", config))


def test_state_machines_log_under_vendedlogs(template):
    resources = template["Resources"]
    groups = [
        resources[d["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]]["Properties"].get("LogGroupName")
        for m in find.of_type(resources, "AWS::StepFunctions::StateMachine").values()
        for d in m["Properties"]["LoggingConfiguration"]["Destinations"]
    ]
    assert sorted(groups) == [
        "/aws/vendedlogs/states/DreamBoothPipeline-deploy",
        "/aws/vendedlogs/states/DreamBoothPipeline-train",
    ]


@pytest.mark.parametrize(
    "role, reads, writes",
    [
        # hosting writes the asynchronous answers; the API handler stages photos, commits them and stores requests
        ("training job", True, True),
        ("hosting", True, True),
        # snapshot writes models/<dataset>/<version>/snapshot.json; packaging writes the model's code/ under models/
        ("snapshot", True, True),
        ("validate", True, True),
        ("retrain", True, False),
        ("package", True, True),
        ("image signer", True, False),
        ("api handler", True, True),
        ("api results", True, True),
        ("api dispatch", False, True),
    ],
)
def test_with_a_bucket_key_each_role_gets_exactly_its_kms_actions_through_s3(kms_template, role, reads, writes):
    policies = policies_of(kms_template, role)
    via_s3 = {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}
    assert evaluate(policies, Check("kms:Decrypt", KEY, via_s3)) is reads
    assert evaluate(policies, Check("kms:GenerateDataKey", KEY, via_s3)) is writes
    assert not evaluate(policies, Check("kms:Decrypt", KEY))  # directly, not through S3


def test_without_a_bucket_key_no_role_gets_kms_on_it(template):
    for role in ("training job", "api results"):
        assert not evaluate(
            policies_of(template, role), Check("kms:Decrypt", KEY, {"kms:ViaService": "s3.us-east-1.amazonaws.com"})
        )


def _all_documents(template: dict, role: str) -> list[dict]:
    """Every policy document that applies to `role`: attached AWS::IAM::Policy and ManagedPolicy
    resources and the role's own inline policies (the stack's derivation reads only the first two)."""
    resolve = Resolver(template, _Names(template, False), _Names(template, True), "DreamBoothPipeline")
    resources = template["Resources"]
    props = resources[role]["Properties"]
    attached = {a["Ref"] for a in props.get("ManagedPolicyArns", []) if isinstance(a, dict) and "Ref" in a}
    documents = [p["PolicyDocument"] for p in props.get("Policies", [])]
    documents += [
        r["Properties"]["PolicyDocument"]
        for logical, r in resources.items()
        if r["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")
        and ({"Ref": role} in r["Properties"].get("Roles", []) or logical in attached)
    ]
    return [resolve(d) for d in documents]


def test_with_a_bucket_key_every_role_that_reads_or_writes_objects_may_use_it_and_no_other(kms_template):
    # Whatever grants a role the bucket's objects (CDK bundles, prefix grants, hand-written statements,
    # policies added after the stack's derivation), it may use the key for exactly that, through S3.
    objects = "arn:aws:s3:::photos-kms/"
    via_s3 = {"kms:ViaService": f"s3.{REGION}.amazonaws.com"}
    users = 0
    for role in find.of_type(kms_template["Resources"], "AWS::IAM::Role"):
        documents = _all_documents(kms_template, role)
        granted = [
            r
            for d in documents
            for st in find.listed(d.get("Statement", []))
            if st["Effect"] == "Allow"
            for r in find.listed(st.get("Resource", []))
            if isinstance(r, str) and r.startswith(objects)
        ]
        probes = [r.replace("*", "x") for r in granted]
        reads = any(evaluate(documents, Check("s3:GetObject", probe)) for probe in probes)
        writes = any(evaluate(documents, Check("s3:PutObject", probe)) for probe in probes)
        users += reads or writes
        assert evaluate(documents, Check("kms:Decrypt", KEY, via_s3)) is reads, role
        assert evaluate(documents, Check("kms:GenerateDataKey", KEY, via_s3)) is writes, role
        other = KEY.replace("11111111", "22222222")
        assert not any(evaluate(documents, Check(a, other, via_s3)) for a in ("kms:Decrypt", "kms:GenerateDataKey"))
    assert users == 10  # the ten of the test above: a new reader or writer is added there too
