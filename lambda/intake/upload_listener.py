"""EventBridge "Object Created" under datasets/ -> debounce the dataset's training."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

import debounce
from dreambooth_shared import dataset_rules as rules
from dreambooth_shared.contract import STAGING_PREFIX, PipelineEnv, log_cold_start

logger = Logger()
log_cold_start(logger)
tracer = Tracer()
dynamodb = boto3.client("dynamodb")
sfn = boto3.client("stepfunctions")
sns = boto3.client("sns")


@dataclass(frozen=True)
class Settings:
    state_table: str
    state_machine_arn: str
    topic_arn: str
    quiet_window_s: int

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> "Settings":
        return cls(
            state_table=environ[PipelineEnv.STATE_TABLE_NAME],
            state_machine_arn=environ[PipelineEnv.TRAINING_STATE_MACHINE_ARN],
            topic_arn=environ[PipelineEnv.TOPIC_ARN],
            quiet_window_s=int(environ[PipelineEnv.QUIET_WINDOW_S]),
        )


settings = Settings.from_environ()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@event_source(data_class=EventBridgeEvent)
def handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
    return on_upload(event.detail["object"]["key"], datetime.now(timezone.utc))


def on_upload(event_key: str, now: datetime) -> dict[str, Any]:
    key = rules.key_from_event(event_key)  # the key as the user wrote it, whichever form the event has
    dataset = rules.dataset_name_from_key(key)
    if dataset is None or key.startswith(STAGING_PREFIX):
        logger.debug("not a dataset file", key=key)
        return {"action": "ignored", "key": key}
    if rules.is_folder_placeholder(key):
        # A console's "Create folder" (datasets/dog/raw/): no file, so no run.
        logger.debug("folder placeholder", key=key)
        return {"action": "ignored", "key": key}
    problem = rules.dataset_name_problem(dataset)
    if problem:
        logger.warning("upload to a folder that cannot be a dataset", key=key, detail=problem)
        if debounce.first_report_of_invalid_name(dynamodb, settings.state_table, dataset, now):
            sns.publish(
                TopicArn=settings.topic_arn,
                Subject="DreamBooth: dataset folder name not accepted",
                Message=(
                    f"Files were uploaded to {key.rsplit('/', 1)[0]}/ but no training will start: {problem}. "
                    "Nothing was deleted."
                ),
            )
        return {"action": "rejected", "dataset": dataset, "reason": problem}
    generation = debounce.record_upload(dynamodb, settings.state_table, dataset, now, settings.quiet_window_s)
    action = debounce.start_debounce(
        dynamodb, sfn, settings.state_table, settings.state_machine_arn, dataset, generation
    )
    logger.info("upload recorded", dataset=dataset, key=key, generation=generation, action=action)
    return {"action": action, "dataset": dataset, "generation": generation}
