"""Offline rehearsal of the stack: the synthesized pipeline and API on moto (see pipeline_harness)."""

from dreambooth_shared.contract import LIVE_POINTER_ID
from emulator.api_gateway import Answer
from emulator.pipeline_harness import AsyncInvocation, PipelineHarness, Run, synthesize
from emulator.sagemaker_sim import SageMakerSimulator, placeholder_jpeg

__all__ = [
    "LIVE_POINTER_ID",
    "Answer",
    "AsyncInvocation",
    "PipelineHarness",
    "Run",
    "SageMakerSimulator",
    "placeholder_jpeg",
    "synthesize",
]
