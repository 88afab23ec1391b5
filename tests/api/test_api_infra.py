"""InferenceApi as synthesized: key requirement, throttling, request validation, access logging,
tracing, the result and dispatcher functions, least-privilege grants, and the cdk-nag / cfn-lint / checkov gates."""

from __future__ import annotations

import json
import re

import pytest
from aws_cdk.assertions import Capture, Match, Template

from dreambooth_shared.contract import ApiEnv
from emulator.lambda_runtime import API_CODE, load
from stacks.api.construct import (
    API_GATEWAY_LIMIT_S,
    OPENAPI_PATH,
    api_gateway_model_schema,
    is_public,
    load_openapi,
)
from stacks.config import INSTANCE_START_MINUTES, ApiConfig, ServingConfig
from tests import template_find as find
from tests.api.stack_fixture import ENDPOINT_NAME, build

# Non-default limits, so that the assertions prove the template follows the configuration.
KEY_CONFIG = ApiConfig(rate_limit_rps=7, burst_limit=3, daily_quota=123, max_wait_s=15)
IAM_CONFIG = ApiConfig(auth="iam", rate_limit_rps=9, burst_limit=4)
OPENAPI = load_openapi()
OPERATIONS = [(path, verb.upper()) for path, ops in OPENAPI["paths"].items() for verb in ops]


@pytest.fixture(scope="module")
def key_template() -> Template:
    _, stack = build(KEY_CONFIG)
    return Template.from_stack(stack)


@pytest.fixture(scope="module")
def iam_template() -> Template:
    _, stack = build(IAM_CONFIG, existing_bucket="existing-photos-bucket")
    return Template.from_stack(stack)


def api_methods(template: Template) -> dict:
    return {
        k: v
        for k, v in template.find_resources("AWS::ApiGateway::Method").items()
        if v["Properties"]["HttpMethod"] != "OPTIONS"
    }


def function_with_handler(template: Template, handler: str) -> dict:
    resources = template.to_json()["Resources"]
    return resources[find.function(resources, handler)]["Properties"]


def test_every_documented_operation_is_a_method_and_nothing_else(key_template):
    methods = api_methods(key_template)
    assert sorted(m["Properties"]["OperationName"] for m in methods.values()) == sorted(
        op["operationId"] for ops in OPENAPI["paths"].values() for op in ops.values()
    )
    assert len(methods) == len(OPERATIONS) == 13


WEB_OPERATIONS = {"getWebPage", "getWebScript", "getWebStyle"}


def test_the_openapi_document_marks_exactly_the_web_page_public():
    public = {op["operationId"] for ops in OPENAPI["paths"].values() for op in ops.values() if is_public(op)}
    assert public == WEB_OPERATIONS
    assert OPENAPI["security"] == [{"apiKey": []}]  # everything else inherits the key requirement


def test_api_key_is_required_on_every_method_but_the_web_page(key_template):
    methods = api_methods(key_template).values()
    for method in methods:
        public = method["Properties"]["OperationName"] in WEB_OPERATIONS
        assert method["Properties"]["ApiKeyRequired"] is (not public)
        assert method["Properties"]["AuthorizationType"] == "NONE"
    open_methods = {m["Properties"]["OperationName"] for m in methods if not m["Properties"]["ApiKeyRequired"]}
    assert open_methods == WEB_OPERATIONS


def test_usage_plan_carries_rate_burst_and_daily_quota_from_config_and_holds_the_key(key_template):
    plan = Capture()
    key_template.has_resource_properties(
        "AWS::ApiGateway::UsagePlan",
        {
            "Throttle": {"RateLimit": 7, "BurstLimit": 3},
            "Quota": {"Limit": 123, "Period": "DAY"},
            "ApiStages": [Match.object_like({"ApiId": Match.any_value(), "Stage": Match.any_value()})],
        },
    )
    key_template.resource_count_is("AWS::ApiGateway::ApiKey", 1)
    key_template.has_resource_properties(
        "AWS::ApiGateway::UsagePlanKey",
        {"KeyType": "API_KEY", "UsagePlanId": {"Ref": plan}, "KeyId": {"Ref": Match.string_like_regexp("ApiApiKey")}},
    )
    assert plan.as_string() in key_template.find_resources("AWS::ApiGateway::UsagePlan")


def test_stage_throttles_and_throttled_requests_get_429(key_template):
    key_template.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {
            "MethodSettings": Match.array_with(
                [
                    Match.object_like(
                        {"HttpMethod": "*", "ResourcePath": "/*", "ThrottlingRateLimit": 7, "ThrottlingBurstLimit": 3}
                    )
                ]
            ),
        },
    )
    for response_type in ("THROTTLED", "QUOTA_EXCEEDED"):
        key_template.has_resource_properties(
            "AWS::ApiGateway::GatewayResponse", {"ResponseType": response_type, "StatusCode": "429"}
        )


def test_iam_mode_signs_requests_instead_of_keys(iam_template):
    for method in api_methods(iam_template).values():
        public = method["Properties"]["OperationName"] in WEB_OPERATIONS
        assert method["Properties"]["AuthorizationType"] == ("NONE" if public else "AWS_IAM")
        assert method["Properties"].get("ApiKeyRequired") in (None, False)
    # The page learns the mode (it cannot sign requests, and says so).
    variables = function_with_handler(iam_template, "handler.lambda_handler")["Environment"]["Variables"]
    assert variables["API_AUTH"] == "iam"
    iam_template.resource_count_is("AWS::ApiGateway::UsagePlan", 0)
    iam_template.resource_count_is("AWS::ApiGateway::ApiKey", 0)
    iam_template.has_resource_properties(
        "AWS::IAM::ManagedPolicy",
        {"PolicyDocument": {"Statement": [Match.object_like({"Action": "execute-api:Invoke", "Effect": "Allow"})]}},
    )
    iam_template.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {
            "MethodSettings": Match.array_with(
                [Match.object_like({"ThrottlingRateLimit": 9, "ThrottlingBurstLimit": 4})]
            )
        },
    )


def test_request_bodies_are_validated_against_models_equal_to_the_openapi_schemas(key_template):
    validators = key_template.find_resources(
        "AWS::ApiGateway::RequestValidator",
        {"Properties": {"ValidateRequestBody": True, "ValidateRequestParameters": True}},
    )
    assert len(validators) == 1
    (validator_id,) = validators
    models = key_template.find_resources("AWS::ApiGateway::Model")
    by_name = {m["Properties"]["Name"]: (logical_id, m["Properties"]) for logical_id, m in models.items()}
    assert set(by_name) == {"GenerationRequest", "SwitchLiveRequest", "DatasetUploadRequest", "DatasetCommitRequest"}
    for name, (_, props) in by_name.items():
        # The model is the document's schema, keyword for keyword.
        assert props["Schema"] == api_gateway_model_schema(OPENAPI, name)
        schema = dict(props["Schema"])
        assert schema.pop("$schema") == "http://json-schema.org/draft-04/schema#" and schema.pop("title") == name
        assert schema == OPENAPI["components"]["schemas"][name]
    bodies = {
        "createGeneration": "GenerationRequest",
        "switchLiveModel": "SwitchLiveRequest",
        "startDatasetUpload": "DatasetUploadRequest",
        "commitDatasetUpload": "DatasetCommitRequest",
    }
    for method in api_methods(key_template).values():
        props = method["Properties"]
        assert props["RequestValidatorId"] == {"Ref": validator_id}
        if props["OperationName"] in bodies:
            model_id = by_name[bodies[props["OperationName"]]][0]
            assert props["RequestModels"] == {"application/json": {"Ref": model_id}}
        else:
            assert "RequestModels" not in props


def test_path_ids_are_required_parameters(key_template):
    for method in api_methods(key_template).values():
        if method["Properties"]["OperationName"] in ("getGeneration", "getModel"):
            assert method["Properties"]["RequestParameters"] == {"method.request.path.id": True}
        if method["Properties"]["OperationName"] == "commitDatasetUpload":
            assert method["Properties"]["RequestParameters"] == {"method.request.path.name": True}


def test_api_gateway_refusals_are_json_with_the_right_status(key_template):
    expected = {
        "BAD_REQUEST_BODY": "400",
        "BAD_REQUEST_PARAMETERS": "400",
        "INVALID_API_KEY": "403",
        "MISSING_AUTHENTICATION_TOKEN": "403",
        "ACCESS_DENIED": "403",
        "THROTTLED": "429",
        "QUOTA_EXCEEDED": "429",
        "INTEGRATION_TIMEOUT": "504",
    }
    responses = {
        r["Properties"]["ResponseType"]: r["Properties"]
        for r in key_template.find_resources("AWS::ApiGateway::GatewayResponse").values()
    }
    assert {t: responses[t].get("StatusCode") for t in expected} == expected
    assert (
        "$context.error.validationErrorString" in responses["BAD_REQUEST_BODY"]["ResponseTemplates"]["application/json"]
    )
    for response in responses.values():
        template = response["ResponseTemplates"]["application/json"]
        # Once API Gateway fills the variables in, every body is JSON in the Lambda's error shape.
        filled = template.replace("$context.error.messageString", '"quoted message"')
        filled = re.sub(r"\$context\.[A-Za-z.]+", "x", filled)
        assert set(json.loads(filled)["error"]) == {"code", "message", "request_id"}


def test_access_logging_and_tracing_are_on(key_template):
    log_group = Capture()
    key_template.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {
            "StageName": "v1",
            "TracingEnabled": True,
            "AccessLogSetting": {
                "DestinationArn": {"Fn::Join": ["", Match.array_with([{"Ref": log_group}])]},
                "Format": Match.string_like_regexp(r"\$context\.requestId.*\$context\.status"),
            },
        },
    )
    assert key_template.to_json()["Resources"][log_group.as_string()]["Type"] == "AWS::Logs::LogGroup"
    for handler in ("handler.lambda_handler", "results.lambda_handler", "dispatch.lambda_handler"):
        assert function_with_handler(key_template, handler)["TracingConfig"] == {"Mode": "Active"}


def test_functions_use_python_313_powertools_layer_and_plain_assets(key_template):
    for handler in ("handler.lambda_handler", "results.lambda_handler", "dispatch.lambda_handler"):
        props = function_with_handler(key_template, handler)
        assert props["Runtime"] == "python3.13"
        (layer,) = [layer for layer in props["Layers"] if "Ref" not in layer]  # the other: the SDK's own layer
        assert "017000801446:layer:AWSLambdaPowertoolsPythonV3-python313-x86_64:" in json.dumps(layer)
        assert set(props["Code"]) == {"S3Bucket", "S3Key"}  # an asset zip, no container image


def test_api_function_answers_before_api_gateway_gives_up(key_template):
    props = function_with_handler(key_template, "handler.lambda_handler")
    assert KEY_CONFIG.max_wait_s < props["Timeout"] < API_GATEWAY_LIMIT_S
    assert props["Environment"]["Variables"]["MAX_WAIT_SECONDS"] == "15"


def test_result_function_is_subscribed_to_both_notice_topics_with_a_dead_letter_queue(key_template):
    subscriptions = key_template.find_resources("AWS::SNS::Subscription")
    assert len(subscriptions) == 2
    resources = key_template.to_json()["Resources"]
    for subscription in subscriptions.values():
        props = subscription["Properties"]
        assert props["Protocol"] == "lambda"
        (function,) = [
            k
            for k in resources
            if resources[k]["Type"] == "AWS::Lambda::Function" and k == props["Endpoint"]["Fn::GetAtt"][0]
        ]
        assert resources[function]["Properties"]["Handler"] == "results.lambda_handler"
        queue = props["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
        assert resources[queue]["Type"] == "AWS::SQS::Queue"


def test_the_dispatcher_runs_on_endpoint_state_changes_and_on_a_schedule(key_template):
    rules = key_template.find_resources("AWS::Events::Rule")
    patterns = [r["Properties"]["EventPattern"] for r in rules.values() if "EventPattern" in r["Properties"]]
    assert {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Endpoint State Change"],
        "detail": {"EndpointName": [ENDPOINT_NAME]},
    } in patterns
    assert [
        r["Properties"]["ScheduleExpression"] for r in rules.values() if "ScheduleExpression" in r["Properties"]
    ] == ["rate(5 minutes)"]
    dispatch = function_with_handler(key_template, "dispatch.lambda_handler")
    resources = key_template.to_json()["Resources"]
    targets = {t["Arn"]["Fn::GetAtt"][0] for r in rules.values() for t in r["Properties"]["Targets"]}
    (target,) = targets
    assert resources[target]["Properties"] == dispatch


def test_generations_table_expires_records_by_ttl_and_indexes_pending_ones(key_template):
    key_template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [{"AttributeName": "generationId", "KeyType": "HASH"}],
            "TimeToLiveSpecification": {"AttributeName": "expiresAt", "Enabled": True},
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "BillingMode": "PAY_PER_REQUEST",
            "GlobalSecondaryIndexes": [
                {
                    "IndexName": "pending",
                    "Projection": {"ProjectionType": "ALL"},
                    "KeySchema": [
                        {"AttributeName": "pendingShard", "KeyType": "HASH"},
                        {"AttributeName": "pendingSince", "KeyType": "RANGE"},
                    ],
                }
            ],
        },
    )


def policy_statements(template: Template, handler: str) -> list[dict]:
    """The statements of the role the function with `handler` runs with."""
    resources = template.to_json()["Resources"]
    return find.statements_of_role(resources, find.role_of(resources, find.function(resources, handler)))


def actions_of(statements: list[dict]) -> set[str]:
    return {action for s in statements for action in find.listed(s["Action"])}


def test_only_the_api_and_dispatcher_may_send_to_the_endpoint_and_only_to_that_endpoint(key_template):
    api = policy_statements(key_template, "handler.lambda_handler")
    dispatch = policy_statements(key_template, "dispatch.lambda_handler")
    results = policy_statements(key_template, "results.lambda_handler")
    for sender in (api, dispatch):
        (invoke,) = [s for s in sender if "sagemaker:InvokeEndpointAsync" in s["Action"]]
        assert find.text(invoke["Resource"]).endswith(f":endpoint/{ENDPOINT_NAME.lower()}")
        assert {"sagemaker:DescribeEndpoint", "states:StartExecution", "states:ListExecutions"} <= actions_of(sender)
    assert not any(a.startswith("sagemaker:Invoke") for a in actions_of(results))
    assert "sagemaker:InvokeEndpoint" not in actions_of(api + dispatch + results)
    assert "dynamodb:PutItem" in actions_of(api) and "dynamodb:PutItem" not in actions_of(results + dispatch)
    assert not any(a.startswith("dynamodb:Delete") for a in actions_of(api + results + dispatch))
    assert "s3:DeleteObject*" not in actions_of(results + dispatch)
    # The API deletes only its own staging objects under uploads/ (tests/api/test_api_datasets.py)
    (delete,) = [s for s in api if "s3:DeleteObject" in find.listed(s["Action"])]
    assert json.dumps(delete["Resource"]).endswith('/uploads/*"]]}')


def test_environment_names_match_what_the_handlers_read(key_template):
    # The construct names the variables from dreambooth_shared/contract.py (ApiEnv); the handlers' settings parse them.
    settings = load(API_CODE, "settings", {})
    for handler in ("handler.lambda_handler", "results.lambda_handler", "dispatch.lambda_handler"):
        variables = function_with_handler(key_template, handler)["Environment"]["Variables"]
        plain = {k: v if isinstance(v, str) else "resolved-at-deploy" for k, v in variables.items()}
        settings.Settings.from_environ(plain)  # raises on a missing or malformed variable
    names = ApiEnv
    api_vars = function_with_handler(key_template, "handler.lambda_handler")["Environment"]["Variables"]
    # The dispatcher's own (set when the stack passes the scaling function: tests/emulator/test_autoscaling_paths.py)
    dispatcher_only = {names.SCALING_FUNCTION_NAME}
    assert {getattr(names, n) for n in dir(names) if n.isupper()} - dispatcher_only <= set(api_vars)


def test_every_function_takes_its_settings_from_the_config_and_has_no_defaults_of_its_own(key_template):
    # The values come from the settings registry (stacks/config.py) through the construct only:
    # lambda/api/settings.py refuses to start without them instead of assuming a default.
    settings = load(API_CODE, "settings", {})
    names = ApiEnv
    serving = ServingConfig()
    for handler in ("handler.lambda_handler", "results.lambda_handler", "dispatch.lambda_handler"):
        variables = function_with_handler(key_template, handler)["Environment"]["Variables"]
        plain = {k: v if isinstance(v, str) else "resolved-at-deploy" for k, v in variables.items()}
        parsed = settings.Settings.from_environ(plain)
        assert (parsed.max_wait_s, parsed.generation_ttl_days, parsed.image_url_expiry_s, parsed.api_auth) == (
            KEY_CONFIG.max_wait_s,
            KEY_CONFIG.generation_ttl_days,
            KEY_CONFIG.image_url_expiry_s,
            KEY_CONFIG.auth,
        )
        assert (
            parsed.idle_minutes,
            parsed.request_ttl_s,
            parsed.invocation_timeout_s,
            parsed.instance_start_minutes,
        ) == (
            serving.idle_minutes,
            serving.request_ttl_minutes * 60,
            serving.invocation_timeout_s,
            INSTANCE_START_MINUTES,
        )
    for name in (
        names.MAX_WAIT_S,
        names.GENERATION_TTL_DAYS,
        names.IMAGE_URL_EXPIRY_S,
        names.API_AUTH,
        names.IDLE_MINUTES,
        names.REQUEST_TTL_S,
        names.INVOCATION_TIMEOUT_S,
        names.INSTANCE_START_MINUTES,
    ):
        with pytest.raises(settings.SettingsError, match=f"{name} is not set"):
            settings.Settings.from_environ({k: v for k, v in plain.items() if k != name})


def test_openapi_document_is_valid_openapi_3():
    from openapi_spec_validator import validate

    validate(json.loads(OPENAPI_PATH.read_text()))


# The cdk-nag / cfn-lint / checkov gates run over the whole stack in tests/test_gates.py, in both
# auth modes and with a created and an imported bucket.


def test_browsers_get_cors_preflight_and_cors_headers_on_refusals():
    _, stack = build(ApiConfig(cors_allow_origin="https://studio.example.com"))
    template = Template.from_stack(stack)
    options = [
        m
        for m in template.find_resources("AWS::ApiGateway::Method").values()
        if m["Properties"]["HttpMethod"] == "OPTIONS"
    ]
    assert options and all(m["Properties"]["Integration"]["Type"] == "MOCK" for m in options)
    assert "'https://studio.example.com'" in json.dumps(options)
    for response in template.find_resources("AWS::ApiGateway::GatewayResponse").values():
        assert response["Properties"]["ResponseParameters"] == {
            "gatewayresponse.header.Access-Control-Allow-Origin": "'https://studio.example.com'"
        }
    handler = function_with_handler(template, "handler.lambda_handler")
    assert handler["Environment"]["Variables"]["CORS_ALLOW_ORIGIN"] == "https://studio.example.com"


def test_without_cors_there_is_no_preflight(key_template):
    _, stack = build(ApiConfig(cors_allow_origin=None))
    template = Template.from_stack(stack)
    assert not [
        m
        for m in template.find_resources("AWS::ApiGateway::Method").values()
        if m["Properties"]["HttpMethod"] == "OPTIONS"
    ]


def test_the_api_reads_the_registry_and_writes_only_the_retrain_claim(key_template):
    api = policy_statements(key_template, "handler.lambda_handler")
    registry = [s for s in api if "Registry" in json.dumps(s["Resource"])]
    # UpdateItem: POST /models/{id}/retrain's conditional claim (tests/api/test_api_input_classes.py)
    assert actions_of(registry) == {"dynamodb:GetItem", "dynamodb:Scan", "dynamodb:UpdateItem"}
    variables = function_with_handler(key_template, "handler.lambda_handler")["Environment"]["Variables"]
    serving = ServingConfig()
    assert (
        variables["IDLE_MINUTES"],
        variables["ASYNC_REQUEST_TTL_SECONDS"],
        variables["ASYNC_INVOCATION_TIMEOUT_SECONDS"],
    ) == (str(serving.idle_minutes), str(serving.request_ttl_minutes * 60), str(serving.invocation_timeout_s))
