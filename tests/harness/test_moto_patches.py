"""The harness's patches hold wherever moto looks the patched names up (tests/harness/moto_patches.py)."""

from __future__ import annotations

from tests.harness import PipelineHarness
from tests.harness.pipeline_harness import FAST_CONTEXT


def test_the_sagemaker_sync_service_is_the_harness_s_wherever_moto_looks_it_up():
    # moto's state_task_factory binds state_task_service_for at its import: a process that imported
    # it before any harness (an xdist worker that ran a plain-moto test first) kept moto's own
    # SageMaker service, and every pipeline run then ended in States.Runtime at createTrainingJob.sync.
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_factory
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_factory as factory,
    )

    with PipelineHarness(context=FAST_CONTEXT):
        for lookup in (factory.state_task_service_for, state_task_factory.state_task_service_for):
            assert type(lookup("sagemaker")).__name__ == "SageMakerSyncService"
