"""Dispatcher function: on the endpoint's state changes and on a schedule, re-create a missing
endpoint of the live model, register the autoscaling of an InService endpoint that lost it, and
send the requests it could not queue (pending.py). Nothing of that once the stack is being deleted."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Tracer

from aws import Clients
from dreambooth_shared.contract import log_cold_start
from endpoint import EndpointWatcher
from pending import Dispatcher
from settings import Settings

logger = Logger()
log_cold_start(logger)
tracer = Tracer()

settings = Settings.from_environ(os.environ)
clients = Clients()
dispatcher = Dispatcher(settings, clients, EndpointWatcher(lambda: clients.sagemaker, settings.endpoint_name))


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event: dict, context: Any) -> dict:
    summary = dispatcher.run()
    logger.info(
        "pending generations",
        extra={"trigger": event.get("detail-type") if isinstance(event, dict) else None, **summary},
    )
    return summary
