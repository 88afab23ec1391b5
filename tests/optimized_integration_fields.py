"""Every field the state machines send through an optimized Step Functions integration, and who vouches for it.

An optimized integration (`arn:aws:states:::<service>:<action>`, no `aws-sdk:`) checks its
Parameters against a schema of its own when the state machine is created, and refuses a field it
does not know ("SCHEMA_VALIDATION_FAILED: The field ... is not supported by Step Functions"), even
one the service's API has had for years. A field goes here only with a source: a page of AWS's
documentation that lists it for Step Functions, an AWS statement that Step Functions accepts it, or
a CDK L2 task class that emits it (CDK's classes are deployed in large numbers: a field they send
that Step Functions refused would be a known, reported bug). Where nothing vouches for a field, the
task uses the `aws-sdk:` integration instead (its parameters go to the API unchanged; SageMaker's
CreateModel with ModelDataSource) or the field is avoided (OutputDataConfig CompressionType of
`createTrainingJob.sync`: the packaging step unpacks the default model.tar.gz instead).

Patterns: `<integration>:<path>`, the path's parts joined by dots, `[]` after a list, a JSONPath
field (`X.$`) as `X`; `*` is one part whose name is data (an attribute name, a map key), `**` any
parts below (a payload whose content is the caller's). tests/test_optimized_integration_fields.py
holds the synthesized templates to this list.
"""

from __future__ import annotations

_DDB = "https://docs.aws.amazon.com/step-functions/latest/dg/connect-ddb.html"
_SNS = "https://docs.aws.amazon.com/step-functions/latest/dg/connect-sns.html"
_LAMBDA = "https://docs.aws.amazon.com/step-functions/latest/dg/connect-lambda.html"
_SFN = "https://docs.aws.amazon.com/step-functions/latest/dg/connect-stepfunctions.html"
_ATTRIBUTE_VALUE = "CDK L2 DynamoAttributeValue emits it (DynamoDB's AttributeValue type)"
_SPOT = (
    "AWS (Step Functions team, 2021-09-11) in aws/aws-step-functions-data-science-sdk-python issue #42: "
    "'The EnableManagedSpotTraining parameter is now supported in CreateTrainingJob'"
)
_TRAINING = "CDK L2 SageMakerCreateTrainingJob emits it"

ALLOWED: dict[str, str] = {
    # DynamoDB: the Step Functions guide lists each API's supported parameters; CDK's tasks emit these.
    "dynamodb:getItem:TableName": f"{_DDB} (GetItem: TableName); CDK L2 DynamoGetItem emits it",
    "dynamodb:getItem:Key.*.S": f"{_DDB} (GetItem: Key); {_ATTRIBUTE_VALUE}",
    "dynamodb:getItem:ConsistentRead": f"{_DDB} (GetItem: ConsistentRead); CDK L2 DynamoGetItem emits it",
    "dynamodb:putItem:TableName": f"{_DDB} (PutItem: TableName); CDK L2 DynamoPutItem emits it",
    "dynamodb:putItem:Item.*.S": f"{_DDB} (PutItem: Item); {_ATTRIBUTE_VALUE}",
    "dynamodb:putItem:ConditionExpression": f"{_DDB} (PutItem: ConditionExpression); CDK L2 DynamoPutItem emits it",
    "dynamodb:updateItem:TableName": f"{_DDB} (UpdateItem); CDK L2 DynamoUpdateItem emits it",
    "dynamodb:updateItem:Key.*.S": f"{_DDB} (UpdateItem); {_ATTRIBUTE_VALUE}",
    "dynamodb:updateItem:UpdateExpression": f"{_DDB} (UpdateItem); CDK L2 DynamoUpdateItem emits it",
    "dynamodb:updateItem:ConditionExpression": f"{_DDB} (UpdateItem); CDK L2 DynamoUpdateItem emits it",
    "dynamodb:updateItem:ExpressionAttributeNames.*": f"{_DDB} (UpdateItem); CDK L2 DynamoUpdateItem emits it",
    "dynamodb:updateItem:ExpressionAttributeValues.*.S": f"{_DDB} (UpdateItem); {_ATTRIBUTE_VALUE}",
    "dynamodb:updateItem:ExpressionAttributeValues.*.N": f"{_DDB} (UpdateItem); {_ATTRIBUTE_VALUE}",
    "dynamodb:updateItem:ExpressionAttributeValues.*.BOOL": f"{_DDB} (UpdateItem); {_ATTRIBUTE_VALUE}",
    "dynamodb:updateItem:ExpressionAttributeValues.*.M": f"{_DDB} (UpdateItem); {_ATTRIBUTE_VALUE} (map_from_json_path)",
    # SNS, Lambda, Step Functions: the guide's supported parameters; CDK's tasks emit them.
    "sns:publish:TopicArn": f"{_SNS} (Publish: TopicArn); CDK L2 SnsPublish emits it",
    "sns:publish:Message": f"{_SNS} (Publish: Message); CDK L2 SnsPublish emits it",
    "sns:publish:Subject": f"{_SNS} (Publish: Subject); CDK L2 SnsPublish emits it",
    "lambda:invoke:FunctionName": f"{_LAMBDA} (Invoke: FunctionName); CDK L2 LambdaInvoke emits it",
    "lambda:invoke:Payload.**": f"{_LAMBDA} (Invoke: Payload, the function's event); CDK L2 LambdaInvoke emits it",
    "lambda:invoke.waitForTaskToken:FunctionName": f"{_LAMBDA}; CDK L2 LambdaInvoke (WAIT_FOR_TASK_TOKEN) emits it",
    "lambda:invoke.waitForTaskToken:Payload.**": f"{_LAMBDA}; CDK L2 LambdaInvoke (WAIT_FOR_TASK_TOKEN) emits it",
    "states:startExecution.sync:2:StateMachineArn": f"{_SFN}; CDK L2 StepFunctionsStartExecution emits it",
    "states:startExecution.sync:2:Name": f"{_SFN}; CDK L2 StepFunctionsStartExecution emits it",
    "states:startExecution.sync:2:Input.**": f"{_SFN} (Input, the child's input); CDK L2 StepFunctionsStartExecution "
    "emits it (with AWS_STEP_FUNCTIONS_STARTED_BY_EXECUTION_ID)",
    # SageMaker endpoints.
    "sagemaker:createEndpoint:EndpointName": "CDK L2 SageMakerCreateEndpoint emits it",
    "sagemaker:createEndpoint:EndpointConfigName": "CDK L2 SageMakerCreateEndpoint emits it",
    "sagemaker:updateEndpoint:EndpointName": "CDK L2 SageMakerUpdateEndpoint emits it",
    "sagemaker:updateEndpoint:EndpointConfigName": "CDK L2 SageMakerUpdateEndpoint emits it",
    # SageMaker training (.sync has no aws-sdk form for SageMaker jobs): what CDK's task emits, and spot.
    "sagemaker:createTrainingJob.sync:TrainingJobName": _TRAINING,
    "sagemaker:createTrainingJob.sync:RoleArn": _TRAINING,
    "sagemaker:createTrainingJob.sync:AlgorithmSpecification.TrainingImage": _TRAINING,
    "sagemaker:createTrainingJob.sync:AlgorithmSpecification.TrainingInputMode": _TRAINING,
    "sagemaker:createTrainingJob.sync:AlgorithmSpecification.MetricDefinitions[].Name": _TRAINING,
    "sagemaker:createTrainingJob.sync:AlgorithmSpecification.MetricDefinitions[].Regex": _TRAINING,
    "sagemaker:createTrainingJob.sync:HyperParameters": f"{_TRAINING} (a map; here a JSONPath)",
    "sagemaker:createTrainingJob.sync:InputDataConfig[].ChannelName": _TRAINING,
    "sagemaker:createTrainingJob.sync:InputDataConfig[].ContentType": _TRAINING,
    "sagemaker:createTrainingJob.sync:InputDataConfig[].DataSource.S3DataSource.S3Uri": _TRAINING,
    "sagemaker:createTrainingJob.sync:InputDataConfig[].DataSource.S3DataSource.S3DataType": _TRAINING,
    "sagemaker:createTrainingJob.sync:InputDataConfig[].DataSource.S3DataSource.S3DataDistributionType": _TRAINING,
    "sagemaker:createTrainingJob.sync:OutputDataConfig.S3OutputPath": _TRAINING,
    "sagemaker:createTrainingJob.sync:OutputDataConfig.KmsKeyId": f"{_TRAINING} (encryption_key)",
    "sagemaker:createTrainingJob.sync:ResourceConfig.InstanceCount": _TRAINING,
    "sagemaker:createTrainingJob.sync:ResourceConfig.InstanceType": _TRAINING,
    "sagemaker:createTrainingJob.sync:ResourceConfig.VolumeSizeInGB": _TRAINING,
    "sagemaker:createTrainingJob.sync:StoppingCondition.MaxRuntimeInSeconds": _TRAINING,
    "sagemaker:createTrainingJob.sync:Tags[].Key": f"{_TRAINING} (renderTags)",
    "sagemaker:createTrainingJob.sync:Tags[].Value": f"{_TRAINING} (renderTags)",
    "sagemaker:createTrainingJob.sync:EnableManagedSpotTraining": _SPOT,
    "sagemaker:createTrainingJob.sync:StoppingCondition.MaxWaitTimeInSeconds": (
        f"{_SPOT}; managed spot training is not usable without it (SageMaker requires it with "
        "EnableManagedSpotTraining), so the support stated covers it. Inferred, not stated field by field: "
        "the first deploy (CreateStateMachine) is what confirms it"
    ),
}
