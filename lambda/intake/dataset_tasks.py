"""Two Step Functions tasks over one dataset: take its snapshot, then judge it.

Both return plain JSON for the state machine; a bad dataset is a normal result
(`valid: false` with the reasons), not an error, so the state machine can report it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Mapping

import boto3
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from boto3.dynamodb.types import TypeDeserializer

import s3_dataset
from dreambooth_shared import dataset_rules as rules
from dreambooth_shared.contract import PipelineEnv, log_cold_start

logger = Logger()
log_cold_start(logger)
tracer = Tracer()
s3 = boto3.client("s3")


@dataclass(frozen=True)
class Settings:
    """Environment set by the intake construct (DatasetTasks)."""

    bucket: str
    default_instance_prompt: str
    default_class_prompt: str
    default_hyperparameters: dict[str, str]
    training_instance_type: str
    training_script_uri: str
    limits: rules.Limits

    def fingerprint(self) -> str:
        """What besides the files decides what a training does: part of the snapshot's identity."""
        return json.dumps(
            [self.default_instance_prompt, self.default_class_prompt, self.default_hyperparameters], sort_keys=True
        )

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> "Settings":
        return cls(
            bucket=environ[PipelineEnv.BUCKET_NAME],
            default_instance_prompt=environ[PipelineEnv.DEFAULT_INSTANCE_PROMPT],
            default_class_prompt=environ[PipelineEnv.DEFAULT_CLASS_PROMPT],
            default_hyperparameters=json.loads(environ[PipelineEnv.DEFAULT_HYPERPARAMETERS]),
            training_instance_type=environ[PipelineEnv.TRAINING_INSTANCE_TYPE],
            training_script_uri=environ[PipelineEnv.TRAINING_SCRIPT_URI],
            limits=rules.Limits(
                min_images=int(environ[PipelineEnv.MIN_IMAGES]),
                max_images=int(environ[PipelineEnv.MAX_IMAGES]),
                max_image_bytes=int(environ[PipelineEnv.MAX_IMAGE_BYTES]),
            ),
        )


settings = Settings.from_environ()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def snapshot(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """{"dataset": name} -> the snapshot: hash, object count, model id, input and output URIs, and the
    key of its object list (stored in S3, out of the state)."""
    result = s3_dataset.store_manifest(
        s3,
        settings.bucket,
        s3_dataset.take_snapshot(s3, settings.bucket, event["dataset"], settings=settings.fingerprint()),
    )
    logger.info(
        "dataset snapshot",
        dataset=result["dataset"],
        snapshot_hash=result["snapshotHash"],
        object_count=result["objectCount"],
        model_id=result["modelId"],
        manifest_key=result["manifestKey"],
    )
    return result


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def validate(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """{"snapshot": <snapshot>} -> the verdict, with the prompts and hyperparameters training will use.

    The full list of reasons and warnings goes to the dataset report in S3; the answer (which
    becomes Step Functions state, a registry item and a notification) carries them shortened to
    SUMMARY_CHARS each, with the report's URI.
    """
    snapshot = s3_dataset.load_manifest(s3, settings.bucket, event["snapshot"])
    dataset = snapshot["dataset"]
    verdict = judge(snapshot)
    logger.info(
        "dataset judged",
        dataset=dataset,
        valid=verdict.valid,
        reason=summarize(verdict.reasons, "ok"),
        image_count=verdict.image_count,
        warning_count=len(verdict.warnings),
    )
    report_uri = s3_dataset.store_report(
        s3,
        settings.bucket,
        snapshot,
        {
            "dataset": dataset,
            "modelId": snapshot["modelId"],
            "snapshotHash": snapshot["snapshotHash"],
            "valid": verdict.valid,
            "reasons": verdict.reasons,
            "warnings": verdict.warnings,
            "images": verdict.image_names,
        },
    )
    training_input_uri = ""
    if verdict.valid:
        prompts = {"instance_prompt": verdict.instance_prompt}
        if verdict.class_prompt:
            prompts["class_prompt"] = verdict.class_prompt
        training_input_uri = s3_dataset.stage(s3, settings.bucket, snapshot, verdict.image_names, prompts)
    return {
        "trainingInputUri": training_input_uri,
        "valid": verdict.valid,
        "reason": summarize(verdict.reasons, "ok", report_uri),
        "warningCount": len(verdict.warnings),
        "warningText": summarize(verdict.warnings, "none", report_uri),
        "reportUri": report_uri,
        "imageCount": verdict.image_count,
        "instancePrompt": verdict.instance_prompt,
        "classPrompt": verdict.class_prompt,
        "hyperparameters": _training_hyperparameters(verdict),
        "hyperparametersItem": {name: {"S": value} for name, value in verdict.hyperparameters.items()},
    }


class RetrainRefused(Exception):
    """The model cannot be trained again from its staged snapshot (the message says why)."""


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def prepare_retrain(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """{"model": GetItem answer, "retrain": {"modelId", "attempt"}} -> {"snapshot", "validation"}."""
    result = retrain_inputs(event.get("model", {}).get("Item"), event["retrain"])
    logger.info(
        "retrain prepared",
        model_id=result["snapshot"]["modelId"],
        training_job=result["snapshot"]["trainingJobName"],
        image_count=result["validation"]["imageCount"],
    )
    return result


def retrain_inputs(item: Any, retrain: Mapping[str, Any]) -> dict[str, Any]:
    """The first run's snapshot and validation result, rebuilt from the registry and the staged copy."""
    model_id = retrain["modelId"]
    if not item:
        raise RetrainRefused(f"model {model_id} is not in the registry")
    model = {name: TypeDeserializer().deserialize(value) for name, value in item.items()}
    dataset = str(model["dataset"])
    version = model_id[len(dataset) + 1 :]
    staged = s3_dataset.staged_names(s3, settings.bucket, dataset, version)
    images = [name for name in staged if name != rules.DATASET_INFO_FILE]
    if rules.DATASET_INFO_FILE not in staged or not images:
        raise RetrainRefused(
            f"the staged copy of model {model_id}'s snapshot is gone from "
            f"{s3_dataset.staging_prefix(dataset, version)}: upload the dataset again"
        )
    hyperparameters = {name: str(value) for name, value in (model.get("hyperparameters") or {}).items()}
    verdict = rules.Verdict(valid=True, hyperparameters=hyperparameters, image_count=len(images))
    return {
        "snapshot": {
            "dataset": dataset,
            "snapshotHash": str(model.get("snapshotHash", "")),
            "version": version,
            "modelId": model_id,
            "trainingJobName": f"{model_id}-r{int(retrain['attempt'])}",
            "createdAt": str(model.get("createdAt", "")),
            "outputUri": f"s3://{settings.bucket}/models/{dataset}/{version}/",
        },
        "validation": {
            "trainingInputUri": f"s3://{settings.bucket}/{s3_dataset.staging_prefix(dataset, version)}",
            "valid": True,
            "reason": "ok",
            "warnings": [],
            "warningText": str(model.get("skippedFiles") or "none"),
            "imageCount": len(images),
            "instancePrompt": str(model.get("instancePrompt", "")),
            "classPrompt": str(model.get("classPrompt", "")),
            "hyperparameters": _training_hyperparameters(verdict),
            "hyperparametersItem": {name: {"S": value} for name, value in hyperparameters.items()},
        },
    }


def judge(snapshot: Mapping[str, Any]) -> rules.Verdict:
    if snapshot.get("truncated"):
        return rules.Verdict(valid=False, reasons=[f"more than {s3_dataset.MAX_OBJECTS} files in the dataset folder"])
    files, info = s3_dataset.load_files(s3, settings.bucket, dict(snapshot), settings.limits.max_image_bytes)
    return rules.evaluate(
        snapshot["dataset"],
        files,
        read_info=(lambda: info) if info is not None else None,
        default_instance_prompt=settings.default_instance_prompt,
        default_class_prompt=settings.default_class_prompt,
        default_hyperparameters=settings.default_hyperparameters,
        training_instance_type=settings.training_instance_type,
        limits=settings.limits,
    )


# Longest reason or warning text put in the state, the registry and a notification.
SUMMARY_CHARS = 1000


def summarize(items: list[str], empty: str, report_uri: str = "") -> str:
    """`items` joined with "; ", cut to SUMMARY_CHARS with a count of what was left out."""
    text = "; ".join(items) or empty
    if len(text) <= SUMMARY_CHARS:
        return text
    shown, used = [], 0
    for item in items:
        piece = item if len(item) <= SUMMARY_CHARS // 2 else item[: SUMMARY_CHARS // 2] + "..."
        if used + len(piece) > SUMMARY_CHARS - 200:
            break
        shown.append(piece)
        used += len(piece) + 2
    where = f" (all of them in {report_uri})" if report_uri else ""
    return "; ".join(shown) + f"; and {len(items) - len(shown)} more{where}"


# The JumpStart training script is wired in through these two hyperparameters.
SCRIPT_ENTRY_POINT = "transfer_learning.py"


def _training_hyperparameters(verdict: rules.Verdict) -> dict[str, str]:
    # The JumpStart script reads the prompts from dataset_info.json in the training channel
    # (written by `stage`); the tuning knobs arrive as hyperparameters.
    return {
        **verdict.hyperparameters,
        "sagemaker_program": SCRIPT_ENTRY_POINT,
        "sagemaker_submit_directory": settings.training_script_uri,
    }
