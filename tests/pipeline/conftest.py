"""Pipeline tests import the Lambda code as the runtime does, by plain module names: the pipeline's function
folders (lambda/<capability>/, their module names do not clash) are on the import path (pytest.ini's pythonpath)."""

from __future__ import annotations

import io

import pytest

from tests.conftest import ROOT

PIPELINE_CAPABILITIES = ("intake", "training", "serving", "monitoring", "cleanup")
LAMBDA_DIRS = [ROOT / "lambda" / capability for capability in PIPELINE_CAPABILITIES]


def png_bytes(width: int = 512, height: int = 512, color=(200, 30, 30)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, "PNG")
    return buffer.getvalue()


def jpeg_bytes(width: int = 512, height: int = 512, *, exif_padding: int = 0, progressive: bool = False) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    image = Image.new("RGB", (width, height), (30, 120, 200))
    extra = {}
    if exif_padding:
        exif = Image.Exif()
        exif[0x010E] = "x" * exif_padding  # ImageDescription: pushes the frame header far back
        extra["exif"] = exif.tobytes()
    image.save(buffer, "JPEG", progressive=progressive, **extra)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def synthesized():
    """The app synthesized once per test module with the harness's quick settings."""
    from emulator.pipeline_harness import FAST_CONTEXT, synthesize

    return synthesize(FAST_CONTEXT)


def dog_photos() -> dict[str, bytes]:
    return {f"dog{i}.jpg": jpeg_bytes(512 + i, 512) for i in range(3)}


def pipeline_harness(synthesized, **simulator):
    """A PipelineHarness over `synthesized`, SageMaker simulated with `simulator`'s settings."""
    from emulator import PipelineHarness, SageMakerSimulator

    return PipelineHarness(synthesized=synthesized, simulator=SageMakerSimulator(**simulator))
