"""The HTTPS front door: API Gateway REST API + Lambda over the live SageMaker endpoint.

Routes, request models and validation all come from the committed OpenAPI document
(lambda/api/openapi.json): every documented path becomes an API Gateway method, and every request
body schema becomes an API Gateway model verbatim (JSON Schema draft 4), the same schema the Lambda
validates against. The web page's three static files, marked `security: []` in the document, are
the only methods served without a key or signature. Generations go to the asynchronous SageMaker
endpoint (InvokeEndpointAsync with a request object in the bucket), so no request depends on the
model answering within API Gateway's 29 s or InvokeEndpoint's 60 s; a result function turns
SageMaker's SNS notices into images and finished records, and a dispatcher sends what the
endpoint could not queue yet (and has a deleted endpoint re-created). Answers carry image URLs,
never image bytes (far below Lambda's 6 MB and API Gateway's 10 MB).
"""

from __future__ import annotations

import json
from typing import Any, Optional

from aws_cdk import Acknowledgment, ArnFormat, Aws, CfnOutput, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from dreambooth_shared.contract import (
    API_GATEWAY_LIMIT_S,
    API_SERVICE,
    DATASETS_PREFIX,
    GENERATED_PREFIX,
    INFERENCE_OUTPUTS_PREFIX,
    INFERENCE_REQUESTS_PREFIX,
    RESULTS_SERVICE,
    UPLOADS_PREFIX,
    ApiEnv,
)
from stacks.config import INSTANCE_START_MINUTES, ApiConfig, ServingConfig
from stacks.shared import arns
from stacks.shared.assets import lambda_dir
from stacks.shared.functions import PipelineFunctions
from stacks.shared.logs import retention
from stacks.shared.nag import acknowledge, acknowledge_prefix_grants, arn_prefix, nag_resource
from stacks.storage.construct import grant_prefix_read

OPENAPI_PATH = lambda_dir("api") / "openapi.json"

# Powertools for AWS Lambda comes from AWS's public layer (no bundling); same pin as the pipeline.

STAGE_NAME = "v1"
CORS_ALLOW_HEADERS = ["content-type", "x-api-key", "authorization", "x-amz-date", "x-amz-security-token"]
GENERATIONS_KEY = "generationId"
GENERATIONS_TTL_ATTRIBUTE = "expiresAt"
GENERATED_KEYS = GENERATED_PREFIX + "*"
# Sparse index of generations the endpoint could not queue yet (lambda/api/pending.py).
PENDING_INDEX = "pending"
PENDING_INDEX_KEYS = ("pendingShard", "pendingSince")
# The dispatcher also runs this often, for a state-change event that never came.
DISPATCH_INTERVAL = Duration.minutes(5)
API_FUNCTION_MARGIN_S = 3
# In a gateway response: use API Gateway's own message for the error.
CONTEXT_MESSAGE = "$context.error.message"


def load_openapi() -> dict[str, Any]:
    return json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))


def api_gateway_model_schema(openapi: dict[str, Any], name: str) -> dict[str, Any]:
    """A request schema of the OpenAPI document as an API Gateway model (JSON Schema draft 4).

    The request schemas keep to keywords draft 4 and OpenAPI 3.0 share, so the model is the
    schema itself plus the dialect and a title: nothing is rewritten, nothing can drift.
    """
    return {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "title": name,
        **openapi["components"]["schemas"][name],
    }


def is_public(operation: dict[str, Any]) -> bool:
    """An operation the document marks `security: []`: the web page's files, open to anyone."""
    return operation.get("security") == []


def max_images(openapi: dict[str, Any]) -> int:
    return openapi["components"]["schemas"]["GenerationRequest"]["properties"]["num_images"]["maximum"]


class InferenceApi(Construct):
    """Authenticated text-to-image REST API over the live model.

    Props:
      bucket: the data bucket; images are written under generated/<id>/ and served through
        presigned URLs. The API and dispatcher write request objects under inference/requests/, the
        result function reads inference/outputs/ and writes generated/, the API reads generated/.
      registry_table: the training pipeline's model registry (partition key modelId); read only.
      deploy_state_machine: the pipeline's deployment (input {"modelId": id}); PUT /models/live
        starts it, nothing else.
      endpoint_name: the SageMaker endpoint serving the live model (created at run time by the
        pipeline, never by CloudFormation).
      training_state_machine: the pipeline's training; POST /models/{id}/retrain starts it, nothing else.
      config: `ApiConfig` (auth mode, usage plan limits, max wait, TTL, URL lifetime; see
        stacks/config.py for defaults).
      serving: `ServingConfig` (request TTL, invocation timeout, idle time for the messages).
      success_topic / error_topic: where SageMaker's asynchronous inference notices arrive (the
        endpoint config names them); the result function subscribes to both.
      log_retention_days: retention of the functions' and the access log's groups (default 30).
      judge_environment: how the pipeline judges datasets (the variables dataset_rules.JudgeSettings
        reads); the API's dataset commit (POST /datasets/{name}/commit) judges staged photos with the
        same. Default: none (the training pipeline's `judge_environment` is what the stack passes).
      scaling_function: the pipeline's function that registers the endpoint's autoscaling; the
        dispatcher's periodic check invokes it for an InService endpoint that lost its registration.
        Default: none (no repair).

    Attributes:
      api: the RestApi; url: its base URL (stage v1); page_origin: the web page's origin
        (https://<api id>.execute-api.<region>.<suffix>), for the bucket's CORS rule.
      api_function, results_function, dispatch_function: the Lambda functions (API; notices;
        pending requests and endpoint re-creation, on the endpoint's state changes and a schedule).
      dispatch_rules: the two EventBridge rules that run the dispatcher.
      generations_table: generation records, expiring by TTL on `expiresAt`; index `pending`.
      api_key: the key of the usage plan (apiKey mode), else None.
      usage_plan: the usage plan (apiKey mode), else None.
      invoke_policy: a managed policy granting execute-api:Invoke (iam mode), else None.
      access_logs: the stage's access log group.
      failed_notices: queue receiving result notices SNS could not deliver to the result function, or
        that it failed on after Lambda's retries.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        bucket: s3.IBucket,
        registry_table: dynamodb.ITable,
        deploy_state_machine: sfn.IStateMachine,
        training_state_machine: sfn.IStateMachine,
        endpoint_name: str,
        config: ApiConfig,
        serving: ServingConfig,
        success_topic: sns.ITopic,
        error_topic: sns.ITopic,
        log_retention_days: int = 30,
        judge_environment: Optional[dict[str, str]] = None,
        scaling_function: Optional[lambda_.IFunction] = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        self._log_retention = retention(log_retention_days)
        self._openapi = load_openapi()
        names = ApiEnv

        self.generations_table = dynamodb.Table(
            self,
            "Generations",
            partition_key=dynamodb.Attribute(name=GENERATIONS_KEY, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute=GENERATIONS_TTL_ATTRIBUTE,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            # Records expire within days and the images stay in the bucket: nothing to keep.
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.generations_table.add_global_secondary_index(
            index_name=PENDING_INDEX,
            partition_key=dynamodb.Attribute(name=PENDING_INDEX_KEYS[0], type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=PENDING_INDEX_KEYS[1], type=dynamodb.AttributeType.STRING),
        )

        # Its functions run lambda/api/ (with openapi.json and web/, which the function serves) and
        # dreambooth_shared/, with the Powertools layer and the stack's one SDK layer (shared with the pipeline).
        self._functions = PipelineFunctions(self, log_retention=self._log_retention)
        endpoint_arn = arns.endpoint_arn(self, endpoint_name)
        common_env = {
            names.GENERATIONS_TABLE: self.generations_table.table_name,
            names.REGISTRY_TABLE: registry_table.table_name,
            names.BUCKET_NAME: bucket.bucket_name,
            names.ENDPOINT_NAME: endpoint_name,
            # Every function's settings require these (lambda/api/settings.py has no defaults of its own).
            names.MAX_WAIT_S: str(config.max_wait_s),
            names.GENERATION_TTL_DAYS: str(config.generation_ttl_days),
            names.IMAGE_URL_EXPIRY_S: str(config.image_url_expiry_s),
            names.API_AUTH: config.auth,
        }

        async_env = {
            names.REQUEST_PREFIX: INFERENCE_REQUESTS_PREFIX,
            names.REQUEST_TTL_S: str(serving.request_ttl_minutes * 60),
            names.INVOCATION_TIMEOUT_S: str(serving.invocation_timeout_s),
            names.INSTANCE_START_MINUTES: str(INSTANCE_START_MINUTES),
            names.IDLE_MINUTES: str(serving.idle_minutes),
            names.PENDING_INDEX: PENDING_INDEX,
            names.DEPLOY_STATE_MACHINE_ARN: deploy_state_machine.state_machine_arn,
        }
        self.api_function = self._functions.function(
            "Handler",
            "api",
            "handler.lambda_handler",
            description="Text-to-image API: validates, records, sends and reports generations.",
            timeout_s=min(config.max_wait_s + API_FUNCTION_MARGIN_S, API_GATEWAY_LIMIT_S - 1),
            memory_mb=512,
            service=API_SERVICE,
            environment={
                **common_env,
                **async_env,
                names.TRAINING_STATE_MACHINE_ARN: training_state_machine.state_machine_arn,
                names.CORS_ALLOW_ORIGIN: config.cors_allow_origin or "",
                **(judge_environment or {}),
            },
        )
        self.failed_notices = sqs.Queue(
            self,
            "FailedNotices",
            enforce_ssl=True,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            retention_period=Duration.days(14),
        )
        Validations.of(self.failed_notices).acknowledge(
            Acknowledgment(
                id="AwsSolutions-SQS3",
                reason="This queue is the dead-letter queue of the result function and of its SNS subscriptions; "
                "a dead-letter queue of its own would only move the same messages again.",
            )
        )
        self.results_function = self._functions.function(
            "Results",
            "api",
            "results.lambda_handler",
            description="Turns SageMaker's asynchronous inference notices into images and finished generations.",
            timeout_s=60,
            service=RESULTS_SERVICE,
            environment={**common_env, **async_env},
            dead_letter_queue=self.failed_notices,  # SNS invokes it asynchronously: Lambda retries twice, then here
        )
        for topic in (success_topic, error_topic):
            topic.add_subscription(
                subscriptions.LambdaSubscription(self.results_function, dead_letter_queue=self.failed_notices)
            )
        self.dispatch_function = self._functions.function(
            "Dispatch",
            "api",
            "dispatch.lambda_handler",
            description="Re-creates a deleted endpoint of the live model and sends generations it could not queue.",
            timeout_s=120,
            service="generation-dispatch",
            environment={
                **common_env,
                **async_env,
                **({names.SCALING_FUNCTION_NAME: scaling_function.function_name} if scaling_function else {}),
            },
        )
        if scaling_function is not None:
            self._grant_scaling_repair(scaling_function, endpoint_name)
        self.dispatch_rules = [
            events.Rule(
                self,
                "EndpointChanged",
                description="The endpoint's state changes: send pending generations",
                event_pattern=events.EventPattern(
                    source=["aws.sagemaker"],
                    detail_type=["SageMaker Endpoint State Change"],
                    detail={"EndpointName": [endpoint_name]},
                ),
            ),
            events.Rule(
                self,
                "DispatchSchedule",
                description="Periodic check: re-create a deleted endpoint, send pending generations",
                schedule=events.Schedule.rate(DISPATCH_INTERVAL),
            ),
        ]
        for rule in self.dispatch_rules:
            rule.add_target(targets.LambdaFunction(self.dispatch_function, retry_attempts=2))

        self._grant(bucket, registry_table, deploy_state_machine, endpoint_arn)
        training_state_machine.grant_start_execution(self.api_function)  # POST /models/{id}/retrain
        self.image_signer = self._image_signer(bucket)
        self.access_logs = logs.LogGroup(
            self, "AccessLogs", retention=self._log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        self.api = self._rest_api()
        self.url = self.api.url
        self.page_origin = f"https://{self.api.rest_api_id}.execute-api.{Aws.REGION}.{Aws.URL_SUFFIX}"
        self.api_key: Optional[apigw.IApiKey] = None
        self.usage_plan: Optional[apigw.UsagePlan] = None
        self.invoke_policy: Optional[iam.ManagedPolicy] = None
        if config.auth == "apiKey":
            self._usage_plan()
        else:
            self.invoke_policy = iam.ManagedPolicy(
                self,
                "InvokePolicy",
                description="Attach to the users or roles that may call the DreamBooth API (apiAuth=iam).",
                statements=[
                    iam.PolicyStatement(actions=["execute-api:Invoke"], resources=[self.api.arn_for_execute_api()])
                ],
            )
            Validations.of(self.invoke_policy).acknowledge(
                Acknowledgment(
                    id=f"AwsSolutions-IAM5[Resource::{nag_resource(self, self.api.arn_for_execute_api())}]",
                    reason=(
                        "Grants calling every route and method of this one API (its id is in the ARN); "
                        "that is exactly what a user of the API needs in IAM auth mode."
                    ),
                )
            )

        CfnOutput(self, "Url", value=self.api.url, description="Base URL of the text-to-image API.")
        if self.api_key is not None:
            CfnOutput(
                self,
                "ApiKeyId",
                value=self.api_key.key_id,
                description="Read the key with: aws apigateway get-api-key --include-value --api-key <this id>",
            )
        if self.invoke_policy is not None:
            CfnOutput(
                self,
                "InvokePolicyArn",
                value=self.invoke_policy.managed_policy_arn,
                description="Attach to callers of the API (IAM auth mode).",
            )

    def _image_signer(self, bucket: s3.IBucket) -> iam.Role:
        """The role whose sessions sign image URLs: the API function assumes it for an hour, so a
        URL lasts as long as the API says (its own credentials have no stated lifetime). It reads
        generated/ only and lists nothing."""
        api = self.api_function
        assert api.role is not None
        signer = iam.Role(
            self,
            "ImageSigner",
            assumed_by=iam.ArnPrincipal(api.role.role_arn),
            max_session_duration=Duration.hours(1),
            description="Signs the API's presigned image URLs (reads generated/ only)",
        )
        grant_prefix_read(bucket, signer, GENERATED_PREFIX, listing=False)
        acknowledge_prefix_grants(signer, bucket, GENERATED_PREFIX, reads=False)
        signer.grant_assume_role(api.role)
        api.add_environment(ApiEnv.IMAGE_SIGNER_ROLE_ARN, signer.role_arn)
        return signer

    def _grant(
        self,
        bucket: s3.IBucket,
        registry_table: dynamodb.ITable,
        deploy_state_machine: sfn.IStateMachine,
        endpoint_arn: str,
    ) -> None:
        api, results, dispatch = self.api_function, self.results_function, self.dispatch_function
        index_arn = f"{self.generations_table.table_arn}/index/{PENDING_INDEX}"
        self.generations_table.grant(api, "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem")
        self.generations_table.grant(results, "dynamodb:UpdateItem")
        self.generations_table.grant(dispatch, "dynamodb:UpdateItem")
        dispatch.add_to_role_policy(iam.PolicyStatement(actions=["dynamodb:Query"], resources=[index_arn]))
        for role in (api.role, results.role, dispatch.role):
            Validations.of(role).acknowledge(
                Acknowledgment(
                    id=f"AwsSolutions-IAM5[Resource::<{Stack.of(self).get_logical_id(self.generations_table.node.default_child)}"
                    ".Arn>/index/*]",
                    reason=f"CDK's Table.grant adds the table's indexes; it has one ({PENDING_INDEX}, pending generations).",
                )
            )
        # UpdateItem: the retrain claim on a failed model (POST /models/{id}/retrain).
        registry_table.grant(api, "dynamodb:GetItem", "dynamodb:Scan", "dynamodb:UpdateItem")
        registry_table.grant(dispatch, "dynamodb:GetItem")
        grant_prefix_read(bucket, results, INFERENCE_OUTPUTS_PREFIX, listing=False)
        bucket.grant_put(results, GENERATED_KEYS)
        for sender in (api, dispatch):
            bucket.grant_put(sender, f"{INFERENCE_REQUESTS_PREFIX}*")
            deploy_state_machine.grant_start_execution(sender)
            deploy_state_machine.grant(sender, "states:ListExecutions")
            sender.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["sagemaker:DescribeEndpoint", "sagemaker:InvokeEndpointAsync"], resources=[endpoint_arn]
                )
            )
        results.add_to_role_policy(
            iam.PolicyStatement(actions=["sagemaker:DescribeEndpoint"], resources=[endpoint_arn])
        )
        self._grant_dataset_uploads(bucket)
        # CDK's grant_read / grant_put bundles, on their prefixes only.
        acknowledge_prefix_grants(api.role, bucket, INFERENCE_REQUESTS_PREFIX, reads=False, writes=True)
        acknowledge_prefix_grants(dispatch.role, bucket, INFERENCE_REQUESTS_PREFIX, reads=False, writes=True)
        acknowledge_prefix_grants(results.role, bucket, INFERENCE_OUTPUTS_PREFIX, reads=False)
        acknowledge_prefix_grants(results.role, bucket, GENERATED_PREFIX, reads=False, writes=True)

    def _grant_scaling_repair(self, scaling_function: lambda_.IFunction, endpoint_name: str) -> None:
        """The dispatcher looks whether the endpoint's variant is a scalable target with its policies
        and their alarms (autoscaling.missing_parts) and, if any is missing, invokes the scaling
        function (that one function, not its versions: grant_invoke adds `:*`)."""
        dispatch = self.dispatch_function
        dispatch.add_to_role_policy(
            iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[scaling_function.function_arn])
        )
        dispatch.add_to_role_policy(
            iam.PolicyStatement(
                actions=[
                    "application-autoscaling:DescribeScalableTargets",
                    "application-autoscaling:DescribeScalingPolicies",
                ],
                resources=["*"],
            )
        )
        # The step policies' alarms, `<endpoint>-scale-out-from-zero` and `-scale-in-when-idle`.
        dispatch.add_to_role_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:DescribeAlarms"],
                resources=[
                    Stack.of(self).format_arn(
                        service="cloudwatch",
                        resource="alarm",
                        resource_name=f"{endpoint_name}-*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            )
        )
        acknowledge(
            dispatch.role,
            "The endpoint's two step-policy alarms, named `<endpoint>-<policy>` by the scaling function: only read.",
            f"AwsSolutions-IAM5[Resource::{arn_prefix(self, 'cloudwatch')}alarm:{endpoint_name}-*]",
        )
        Validations.of(dispatch.role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="On *: application-autoscaling:DescribeScalableTargets, DescribeScalingPolicies (Application "
                "Auto Scaling has no resource-level permissions for them); xray:PutTraceSegments, "
                "xray:PutTelemetryRecords (X-Ray tracing supports no resource-level permissions).",
            )
        )

    def _grant_dataset_uploads(self, bucket: s3.IBucket) -> None:
        """Training from the web page (lambda/api/datasets.py), and nothing more: the presigned POSTs to
        uploads/ are signed with the API function's role (s3:PutObject there); the commit lists the
        staged photos and whether datasets/<name>/ is taken (s3:ListBucket held to those prefixes),
        reads the photos' first bytes and copies them (s3:GetObject under uploads/, s3:PutObject under
        datasets/, dataset_info.json included), and deletes this upload's staging objects
        (s3:DeleteObject under uploads/ only). Nothing under datasets/ is read or deleted."""
        api = self.api_function
        grant_prefix_read(bucket, api, UPLOADS_PREFIX)
        api.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{DATASETS_PREFIX}*"]}},
            )
        )
        api.add_to_role_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"],
                resources=[bucket.arn_for_objects(f"{UPLOADS_PREFIX}*"), bucket.arn_for_objects(f"{DATASETS_PREFIX}*")],
            )
        )
        api.add_to_role_policy(
            iam.PolicyStatement(actions=["s3:DeleteObject"], resources=[bucket.arn_for_objects(f"{UPLOADS_PREFIX}*")])
        )
        acknowledge(
            api.role,
            "Objects are named per dataset and upload at run time: access is limited to the "
            "staging prefix uploads/ (put, read, delete) and to datasets/ (put only, conditional "
            "writes that never overwrite).",
            *(
                f"AwsSolutions-IAM5[Resource::{nag_resource(api.role, bucket.arn_for_objects(p + '*'))}]"
                for p in (UPLOADS_PREFIX, DATASETS_PREFIX)
            ),
        )

    def _rest_api(self) -> apigw.RestApi:
        config = self.config
        api = apigw.RestApi(
            self,
            "Api",
            description="DreamBooth Pipeline text-to-image API (routes from lambda/api/openapi.json).",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            cloud_watch_role=False,
            api_key_source_type=apigw.ApiKeySourceType.HEADER,
            deploy_options=apigw.StageOptions(
                stage_name=STAGE_NAME,
                tracing_enabled=True,
                metrics_enabled=True,
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
                # Stage-wide ceiling in both auth modes; the usage plan adds per-key limits and quota.
                throttling_rate_limit=config.rate_limit_rps,
                throttling_burst_limit=config.burst_limit,
            ),
            # Preflight answers for the web page; the routes themselves still need the key/signature.
            default_cors_preflight_options=apigw.CorsOptions(
                allow_origins=[config.cors_allow_origin],
                allow_methods=sorted({verb.upper() for ops in self._openapi["paths"].values() for verb in ops}),
                allow_headers=CORS_ALLOW_HEADERS,
                max_age=Duration.minutes(10),
            )
            if config.cors_allow_origin
            else None,
        )
        validator = apigw.RequestValidator(
            self, "Validator", rest_api=api, validate_request_body=True, validate_request_parameters=True
        )
        integration = apigw.LambdaIntegration(self.api_function, proxy=True, allow_test_invoke=False)
        models: dict[str, apigw.IModel] = {}
        for path, operations in self._openapi["paths"].items():
            resource = api.root.resource_for_path(path)
            for verb, operation in operations.items():
                request_models = None
                body_ref = (
                    operation.get("requestBody", {})
                    .get("content", {})
                    .get("application/json", {})
                    .get("schema", {})
                    .get("$ref")
                )
                if body_ref:
                    name = body_ref.rsplit("/", 1)[-1]
                    if name not in models:
                        models[name] = self._model(api, name)
                    request_models = {"application/json": models[name]}
                parameters = {f"method.request.path.{p['name']}": True for p in self._parameters(operation)}
                public = is_public(operation)
                method = resource.add_method(
                    verb.upper(),
                    integration,
                    operation_name=operation["operationId"],
                    api_key_required=config.auth == "apiKey" and not public,
                    authorization_type=(
                        apigw.AuthorizationType.IAM
                        if config.auth == "iam" and not public
                        else apigw.AuthorizationType.NONE
                    ),
                    request_validator=validator,
                    request_models=request_models,
                    request_parameters=parameters or None,
                )
                if public:
                    self._acknowledge_public_method(method, verb, path)
        self._gateway_responses(api, config.cors_allow_origin)
        self._acknowledge_api(api)
        # RestApi adds an output of its own (logical id ApiEndpoint<hash>) holding the same URL as our
        # `Url` (stack output ApiUrl): removed so that the stack has stable, documented output names only.
        api.node.try_remove_child("Endpoint")
        return api

    @staticmethod
    def _acknowledge_public_method(method: apigw.Method, verb: str, path: str) -> None:
        reason = (
            f"{verb.upper()} {path} serves the web page's static files (lambda/api/web), which hold no "
            "secret and read no data: the user types the API key into the page, and every data route the "
            "page calls still requires the key (or SigV4). The stage throttle still applies."
        )
        Validations.of(method).acknowledge(
            Acknowledgment(id="AwsSolutions-APIG4", reason=reason),
            Acknowledgment(id="AwsSolutions-COG4", reason=reason),
        )

    def _parameters(self, operation: dict[str, Any]) -> list[dict[str, Any]]:
        refs = operation.get("parameters", [])
        components = self._openapi["components"]["parameters"]
        resolved = [components[p["$ref"].rsplit("/", 1)[-1]] if "$ref" in p else p for p in refs]
        return [p for p in resolved if p.get("in") == "path"]

    def _model(self, api: apigw.RestApi, name: str) -> apigw.IModel:
        # L1 on purpose: the schema goes into the template exactly as the document has it.
        model = apigw.CfnModel(
            self,
            f"{name}Model",
            rest_api_id=api.rest_api_id,
            content_type="application/json",
            name=name,
            description=f"components.schemas.{name} of lambda/api/openapi.json",
            schema=api_gateway_model_schema(self._openapi, name),
        )
        return apigw.Model.from_model_name(self, f"{name}ModelRef", model.ref)

    @staticmethod
    def _gateway_responses(api: apigw.RestApi, cors_origin: Optional[str]) -> None:
        """API Gateway's own refusals, as JSON in the same shape as the Lambda's errors."""

        def body(code: str, message: str) -> dict[str, str]:
            # $context.error.messageString is API Gateway's message already quoted as a JSON string.
            text = "$context.error.messageString" if message == CONTEXT_MESSAGE else json.dumps(message)
            return {
                "application/json": (
                    f'{{"error":{{"code":"{code}","message":{text},"request_id":"$context.requestId"}}}}'
                )
            }

        responses = (
            (
                apigw.ResponseType.BAD_REQUEST_BODY,
                "400",
                "BadRequest",
                "invalid request body: $context.error.validationErrorString",
            ),
            (
                apigw.ResponseType.BAD_REQUEST_PARAMETERS,
                "400",
                "BadRequest",
                "invalid request parameters: $context.error.validationErrorString",
            ),
            (apigw.ResponseType.INVALID_API_KEY, "403", "Forbidden", "missing or invalid API key (x-api-key header)"),
            (
                apigw.ResponseType.MISSING_AUTHENTICATION_TOKEN,
                "403",
                "Forbidden",
                "missing credentials (x-api-key header or SigV4 signature), or no such route",
            ),
            (apigw.ResponseType.ACCESS_DENIED, "403", "Forbidden", CONTEXT_MESSAGE),
            (apigw.ResponseType.INVALID_SIGNATURE, "403", "Forbidden", CONTEXT_MESSAGE),
            (apigw.ResponseType.EXPIRED_TOKEN, "403", "Forbidden", CONTEXT_MESSAGE),
            (apigw.ResponseType.THROTTLED, "429", "TooManyRequests", "rate or burst limit exceeded; slow down"),
            (apigw.ResponseType.QUOTA_EXCEEDED, "429", "TooManyRequests", "daily quota of this API key used up"),
            (apigw.ResponseType.REQUEST_TOO_LARGE, "413", "PayloadTooLarge", "request body too large"),
            (
                apigw.ResponseType.INTEGRATION_TIMEOUT,
                "504",
                "GatewayTimeout",
                "the API did not answer in time; a started generation continues: poll GET /generations/{id}",
            ),
            (apigw.ResponseType.DEFAULT_4_XX, None, "ClientError", CONTEXT_MESSAGE),
            (apigw.ResponseType.DEFAULT_5_XX, None, "ServerError", "internal error; quote the request id"),
        )
        for response_type, status, code, message in responses:
            api.add_gateway_response(
                f"{code}{response_type.response_type}",
                type=response_type,
                status_code=status,
                templates=body(code, message),
                # So that a browser page can read API Gateway's own refusals (403, 429, ...) too.
                response_headers={"Access-Control-Allow-Origin": f"'{cors_origin}'"} if cors_origin else None,
            )

    def _usage_plan(self) -> None:
        config = self.config
        self.api_key = self.api.add_api_key("ApiKey", description="Key of the DreamBooth API usage plan.")
        self.usage_plan = self.api.add_usage_plan(
            "UsagePlan",
            description="Rate, burst and daily quota of the DreamBooth API.",
            throttle=apigw.ThrottleSettings(rate_limit=config.rate_limit_rps, burst_limit=config.burst_limit),
            quota=apigw.QuotaSettings(limit=config.daily_quota, period=apigw.Period.DAY),
            api_stages=[apigw.UsagePlanPerApiStage(api=self.api, stage=self.api.deployment_stage)],
        )
        self.usage_plan.add_api_key(self.api_key)

    def _acknowledge_api(self, api: apigw.RestApi) -> None:
        acknowledgments = [
            (
                "AwsSolutions-APIG3",
                "No WAF web ACL by default: it costs a fixed monthly fee per ACL, and this API already has per-key "
                "throttling and a daily quota. Associate a web ACL with the v1 stage if the API is exposed widely.",
            ),
            (
                "AwsSolutions-APIG6",
                "Execution logging needs the account-wide API Gateway CloudWatch role, which this stack must not "
                "overwrite; every request is recorded in the stage's JSON access log and traced in X-Ray instead.",
            ),
        ]
        acknowledgments.append(
            (
                "AwsSolutions-COG4",
                "No Cognito user pool: callers are scripts, a CLI and a page holding the API key, or IAM principals "
                "signing with SigV4 (apiAuth=iam); there are no end-user sign-ins to manage.",
            )
        )
        if self.config.auth == "apiKey":
            acknowledgments.append(
                (
                    "AwsSolutions-APIG4",
                    "Callers authenticate with the usage plan's API key (api_key_required on every method but the "
                    "web page's three static files, acknowledged on those methods); "
                    "set apiAuth=iam to require SigV4-signed IAM callers instead.",
                )
            )
        for rule, reason in acknowledgments:
            Validations.of(api).acknowledge(Acknowledgment(id=rule, reason=reason))
