"""A reused bucket keeps the notification configuration it already had.

Runs the notification handler exactly as CDK put it into the synthesized template (inline code of
the Custom::S3BucketNotifications provider) against moto's S3, with a CloudFormation-shaped
event. The CloudFormation response goes to a local HTTP server, as it would go to S3.
"""

from __future__ import annotations

import json
import threading
import types
from http.server import BaseHTTPRequestHandler, HTTPServer

import boto3
import pytest
from aws_cdk.assertions import Template
from moto import mock_aws

BUCKET = "existing-photos-bucket"
EXISTING = {
    "TopicConfigurations": [
        {
            "Id": "users-own-rule",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:photo-uploads",
            "Events": ["s3:ObjectCreated:*"],
            "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "camera/"}]}},
        }
    ]
}


@pytest.fixture(scope="module")
def handler_and_properties(imported_stack):
    template = Template.from_stack(imported_stack)
    (custom,) = template.find_resources("Custom::S3BucketNotifications").values()
    handler_id = custom["Properties"]["ServiceToken"]["Fn::GetAtt"][0]
    code = template.to_json()["Resources"][handler_id]["Properties"]["Code"]["ZipFile"]
    props = {k: v for k, v in custom["Properties"].items() if k != "ServiceToken"}
    # CloudFormation passes every scalar property to a custom resource as a string.
    props = json.loads(json.dumps(props).replace("false", '"false"').replace("true", '"true"'))
    return code, props


@pytest.fixture
def response_sink():
    received = []

    class Sink(BaseHTTPRequestHandler):
        def do_PUT(self):  # noqa: N802 (http.server's naming)
            received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Sink)
    # shutdown() waits for serve_forever's next poll: 0.5 s at its default.
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/response", received
    server.shutdown()


def run_handler(code, props, request_type, url):
    module = types.ModuleType("cdk_notifications_handler")
    exec(compile(code, "cdk_notifications_handler", "exec"), module.__dict__)  # the code CDK ships
    event = {
        "RequestType": request_type,
        "ResponseURL": url,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/DreamBoothPipeline/1",
        "RequestId": "req-1",
        "LogicalResourceId": "Notifications",
        "ResourceProperties": props,
    }
    if request_type == "Delete":
        event["PhysicalResourceId"] = "Notifications"
    module.handler(event, types.SimpleNamespace(log_stream_name="test"))


def upload_reaches_eventbridge(s3) -> bool:
    # moto does not echo EventBridgeConfiguration in GetBucketNotificationConfiguration, so check
    # its effect: an upload produces an "Object Created" event on the default bus.
    sqs = boto3.client("sqs", region_name="us-east-1")
    events = boto3.client("events", region_name="us-east-1")
    queue = sqs.create_queue(QueueName="s3-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="s3-events", EventPattern=json.dumps({"source": ["aws.s3"]}))
    events.put_targets(Rule="s3-events", Targets=[{"Id": "q", "Arn": arn}])
    s3.put_object(Bucket=BUCKET, Key="datasets/dog/1.jpg", Body=b"x")
    messages = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0).get("Messages", [])
    return any(json.loads(m["Body"]).get("detail-type") == "Object Created" for m in messages)


def test_existing_rules_survive_create_and_delete(handler_and_properties, response_sink):
    code, props = handler_and_properties
    url, received = response_sink
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_notification_configuration(Bucket=BUCKET, NotificationConfiguration=EXISTING)
        assert not upload_reaches_eventbridge(s3)  # the bucket did not send to EventBridge before

        # When the stack is deployed onto the existing bucket
        run_handler(code, props, "Create", url)
        after_create = s3.get_bucket_notification_configuration(Bucket=BUCKET)

        # Then the user's own rule is still there, and uploads now reach EventBridge
        assert received[-1]["Status"] == "SUCCESS", received[-1]
        assert upload_reaches_eventbridge(s3)
        assert [t["Id"] for t in after_create["TopicConfigurations"]] == ["users-own-rule"]
        assert after_create["TopicConfigurations"][0]["Filter"] == EXISTING["TopicConfigurations"][0]["Filter"]

        # And when the stack is destroyed the user's rule is still not touched
        run_handler(code, props, "Delete", url)
        after_delete = s3.get_bucket_notification_configuration(Bucket=BUCKET)
        assert received[-1]["Status"] == "SUCCESS"
        assert [t["Id"] for t in after_delete["TopicConfigurations"]] == ["users-own-rule"]
