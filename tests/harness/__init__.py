"""Offline rehearsal of the pipeline: the synthesized state machines on moto (see pipeline_harness)."""

from stacks.constructs.model_registry import LIVE_POINTER_ID
from tests.harness.pipeline_harness import PipelineHarness, Run, synthesize
from tests.harness.sagemaker_sim import SageMakerSimulator

__all__ = ["LIVE_POINTER_ID", "PipelineHarness", "Run", "SageMakerSimulator", "synthesize"]
