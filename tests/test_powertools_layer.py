"""The tests run the Powertools release the deployed functions get from the pinned layer."""

from __future__ import annotations

import re

from aws_cdk.assertions import Template
from aws_lambda_powertools.shared.version import VERSION

from stacks.shared.powertools_layer import POWERTOOLS_LAYER_VERSION, POWERTOOLS_RELEASE
from tests.conftest import ROOT


def test_the_installed_powertools_is_the_release_the_layer_holds():
    assert VERSION == POWERTOOLS_RELEASE, (
        f"tests run Powertools {VERSION}, the functions get layer {POWERTOOLS_LAYER_VERSION} "
        f"recorded as {POWERTOOLS_RELEASE}: pin one to the other (stacks/shared/powertools_layer.py)"
    )


def test_requirements_pin_the_layer_release():
    # Pinned once, in whichever requirements file installs it (requirements-rehearsal.txt since the light install).
    pins = [
        pin
        for path in sorted(ROOT.glob("requirements*.txt"))
        for pin in re.findall(r"^aws-lambda-powertools(?:\[[^\]]*\])?==([\w.]+)", path.read_text(), flags=re.M)
    ]
    assert pins == [POWERTOOLS_RELEASE]


def test_every_function_of_the_stack_uses_the_one_pinned_layer(created_stack):
    functions = Template.from_stack(created_stack).find_resources("AWS::Lambda::Function")
    # The other layer a function has is the SDK's (tests/test_sdk_layer.py), a Ref to the stack's own.
    powertools = {
        str(layer)
        for props in (f["Properties"] for f in functions.values())
        for layer in props.get("Layers", [])
        if "Powertools" in str(layer)
    }
    assert powertools and all(
        f"AWSLambdaPowertoolsPythonV3-python313-x86_64:{POWERTOOLS_LAYER_VERSION}" in layer for layer in powertools
    )
