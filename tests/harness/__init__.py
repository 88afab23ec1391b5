"""Offline rehearsal of the stack: the synthesized pipeline and API on moto (see pipeline_harness)."""

from dreambooth_shared.contract import LIVE_POINTER_ID
from tests.api.adapter import Answer
from tests.harness.pipeline_harness import AsyncInvocation, PipelineHarness, Run, synthesize
from tests.harness.sagemaker_sim import SageMakerSimulator, placeholder_jpeg

__all__ = ["LIVE_POINTER_ID", "Answer", "AsyncInvocation", "PipelineHarness", "Run", "SageMakerSimulator",
           "placeholder_jpeg", "synthesize"]
