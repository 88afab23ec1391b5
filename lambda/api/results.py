"""Result function: SageMaker's asynchronous inference notices, delivered by SNS (success and error topics)."""

from __future__ import annotations

import os
import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from aws import Clients
from dreambooth_shared.contract import METRIC_GENERATIONS_FAILED, METRIC_GENERATIONS_SUCCEEDED, log_cold_start
from endpoint import EndpointWatcher
from inference import Notice, Results
from records import FAILED, SUCCEEDED
from settings import Settings

# A generation's outcome -> the metric it counts in (the dashboard charts these names).
OUTCOME_METRICS = {SUCCEEDED: METRIC_GENERATIONS_SUCCEEDED, FAILED: METRIC_GENERATIONS_FAILED}

logger = Logger()
log_cold_start(logger)
tracer = Tracer()
metrics = Metrics()

settings = Settings.from_environ(os.environ)
clients = Clients()
endpoint = EndpointWatcher(lambda: clients.sagemaker, settings.endpoint_name)
results = Results(settings, clients, served_model=endpoint.serving_config, clock=time.time)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: Any) -> dict:
    outcomes = []
    for record in event.get("Records", []) if isinstance(event, dict) else []:
        notice = Notice.parse((record.get("Sns") or {}).get("Message"))
        if notice is None:
            logger.warning(
                "not a notice for one of our generations", extra={"topic": record.get("Sns", {}).get("TopicArn")}
            )
            outcomes.append("ignored")
            continue
        outcome = results.handle(notice)
        logger.info(
            "inference result",
            extra={
                "generation_id": notice.generation_id,
                "image": notice.index,
                "succeeded": notice.succeeded,
                "outcome": outcome,
            },
        )
        if outcome in OUTCOME_METRICS:
            metrics.add_metric(name=OUTCOME_METRICS[outcome], unit=MetricUnit.Count, value=1)
        outcomes.append(outcome)
    return {"outcomes": outcomes}
