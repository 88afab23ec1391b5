"""The functions in AWS run the AWS SDK the tests run: the pinned boto3 bundled as a layer.

What runs in AWS: each function's code (its asset: lambda/<capability>/ and the shared package) with
/opt/python before the python3.13 runtime's own packages on sys.path, /opt/python being the layers'
`python/` folders. So the test imports boto3 and the shared package the way a handler does there (a fresh
interpreter, nothing else on the path than a function's staged asset and the staged layer) and asserts
what it finds.
"""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from emulator.synthesis import synth
from stacks.shared.assets import lambda_dir
from stacks.shared.sdk_layer import REQUIREMENTS, pinned
from tests.conftest import ROOT
from tests.template_find import of_type

LAMBDA_UNZIPPED_LIMIT_BYTES = 250 * 1024 * 1024  # function and all its layers, unzipped
LAMBDA_LAYER_PYTHON_DIR = "python"  # a layer's folder Lambda puts on sys.path (/opt/python), as AWS documents it


def _staged(outdir: Path, stack_name: str, object_key: str) -> Path:
    manifest = json.loads((outdir / f"{stack_name}.assets.json").read_text())
    for asset in manifest["files"].values():
        if any(dest["objectKey"] == object_key for dest in asset["destinations"].values()):
            return outdir / asset["source"]["path"]
    raise KeyError(object_key)


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _project_modules() -> set[bytes]:
    """The contents of every module in the project's Lambda runtime folders."""
    return {path.read_bytes() for folder in glob.glob(str(lambda_dir("*"))) for path in Path(folder).glob("*.py")}


def _runs_project_code(outdir: Path, stack_name: str, properties: dict) -> bool:
    key = properties.get("Code", {}).get("S3Key")
    if not isinstance(key, str) or "." not in properties.get("Handler", ""):
        return False  # inline code (CDK's own handlers)
    module = _staged(outdir, stack_name, key) / (properties["Handler"].rsplit(".", 1)[0].replace(".", "/") + ".py")
    return module.is_file() and module.read_bytes() in _project_modules()


@pytest.fixture(scope="module")
def synthesized(created_stack):
    synthesis = synth()
    template = json.loads(synthesis.template_file.read_text())
    resources = template["Resources"]
    ((layer_id, layer),) = of_type(resources, "AWS::Lambda::LayerVersion").items()
    layer_dir = _staged(synthesis.outdir, synthesis.stack.stack_name, layer["Properties"]["Content"]["S3Key"])
    # The project's functions, by their code and handler alone (whatever layers they list): the code is
    # a staged asset and the handler's module is one of the project's runtime modules, byte for byte.
    functions = {
        k: v
        for k, v in of_type(resources, "AWS::Lambda::Function").items()
        if _runs_project_code(synthesis.outdir, synthesis.stack.stack_name, v["Properties"])
    }
    return {
        "layer_id": layer_id,
        "layer": layer,
        "layer_dir": layer_dir,
        "functions": functions,
        "outdir": synthesis.outdir,
        "stack_name": synthesis.stack.stack_name,
    }


def test_the_layer_pins_the_boto3_of_requirements_txt():
    (boto3_pin,) = re.findall(r"^boto3==([\w.]+)", (ROOT / "requirements.txt").read_text(), flags=re.M)
    assert pinned()["boto3"] == boto3_pin, "requirements-lambda.txt and requirements.txt pin different boto3 releases"


def test_the_tests_run_the_sdk_the_layer_holds():
    installed = {name: metadata.version(name) for name in pinned()}
    assert installed == pinned(), (
        f"the tests run {installed}, the functions get {pinned()} ({REQUIREMENTS.name}): pin one to the other"
    )


def test_every_project_function_lists_the_sdk_layer(synthesized):
    # Planted defect caught: a project function built without the factory's layers (none at all): the
    # old selection (functions listing the Powertools layer) left it out and this test passed.
    assert len(synthesized["functions"]) >= 10
    layer_ref = {"Ref": synthesized["layer_id"]}
    for logical, function in synthesized["functions"].items():
        layers = function["Properties"]["Layers"]
        # Any order: Powertools' layer holds no SDK (Powertools relies on the runtime's, its docs say).
        assert layer_ref in layers, f"{logical} runs without the SDK layer (on the runtime's own boto3)"
        assert function["Properties"]["Runtime"] in synthesized["layer"]["Properties"]["CompatibleRuntimes"]


def test_the_layer_asset_is_named_by_its_pins(synthesized, imported_stack):
    # Same requirements-lambda.txt -> same asset hash (CDK's, of layer_hash()) -> no new upload, whatever
    # else differs between two syntheses.
    other = json.loads(synth({"bucketName": "existing-photos-bucket"}).template_file.read_text())["Resources"]
    (other_layer,) = of_type(other, "AWS::Lambda::LayerVersion").values()
    assert other_layer["Properties"]["Content"] == synthesized["layer"]["Properties"]["Content"]
    files = [p.relative_to(synthesized["layer_dir"]).as_posix() for p in synthesized["layer_dir"].rglob("*")]
    assert not [f for f in files if f.endswith(".pyc") or f.startswith(f"{LAMBDA_LAYER_PYTHON_DIR}/bin")], (
        "bytecode or console scripts (machine-dependent) in the layer"
    )


def test_handlers_import_the_pinned_sdk_from_the_layer(synthesized):
    layer_python = synthesized["layer_dir"] / LAMBDA_LAYER_PYTHON_DIR
    probe = (
        "import json, sys, boto3, botocore, botocore.session\n"
        "import dreambooth_shared.autoscaling, dreambooth_shared.contract, dreambooth_shared.dataset_rules\n"
        "s3 = botocore.session.get_session().get_service_model('s3')\n"
        "print(json.dumps({'boto3': boto3.__version__, 'botocore': botocore.__version__,\n"
        "  'boto3_file': boto3.__file__, 'botocore_file': botocore.__file__,\n"
        "  'shared_file': dreambooth_shared.__file__,\n"
        "  'copy_if_none_match': 'IfNoneMatch' in s3.operation_model('CopyObject').input_shape.members}))\n"
    )
    checked = set()
    for logical, function in synthesized["functions"].items():
        code_dir = _staged(synthesized["outdir"], synthesized["stack_name"], function["Properties"]["Code"]["S3Key"])
        if code_dir in checked:
            continue
        checked.add(code_dir)
        # Lambda's order: the function's code, then /opt/python, and nothing of this machine: -S -s no
        # site-packages, -P not the working directory, an environment of PYTHONPATH only.
        run = subprocess.run(
            [sys.executable, "-S", "-s", "-P", "-c", probe],
            capture_output=True,
            text=True,
            env={"PYTHONPATH": os.pathsep.join([str(code_dir), str(layer_python)])},
        )
        assert run.returncode == 0, f"{logical}'s code cannot import the SDK from the layer: {run.stderr[-600:]}"
        found = json.loads(run.stdout)
        assert Path(found["boto3_file"]).is_relative_to(layer_python), (
            f"{logical} imports boto3 from {found['boto3_file']}"
        )
        assert Path(found["botocore_file"]).is_relative_to(layer_python)
        assert Path(found["shared_file"]).is_relative_to(code_dir), f"{logical} has no dreambooth_shared of its own"
        assert (found["boto3"], found["botocore"]) == (pinned()["boto3"], pinned()["botocore"])
        # The browser dataset commit's conditional copy exists in the SDK the functions get.
        assert found["copy_if_none_match"]
        assert _size(code_dir) + _size(synthesized["layer_dir"]) < LAMBDA_UNZIPPED_LIMIT_BYTES
    assert len(checked) >= 4  # one asset per capability
