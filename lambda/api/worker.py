"""Worker function: invoked asynchronously by the API function with {"generationId": "<id>"}."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from aws import Clients
from inference import Worker
from settings import Settings

logger = Logger()
tracer = Tracer()
metrics = Metrics()

settings = Settings.from_environ(os.environ)
worker = Worker(settings, Clients())


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: Any) -> dict:
    generation_id = event.get("generationId") if isinstance(event, dict) else None
    if not isinstance(generation_id, str) or not generation_id:
        logger.error("event without generationId", extra={"event_keys": sorted(event) if isinstance(event, dict) else None})
        return {"status": "skipped"}
    logger.append_keys(generation_id=generation_id)
    status = worker.run(generation_id)
    metrics.add_metric(name=f"Generations{status.capitalize()}", unit=MetricUnit.Count, value=1)
    logger.info("generation finished", extra={"status": status})
    return {"generationId": generation_id, "status": status}
