"""The functions' code assets (stacks/shared/assets.py): lambda/<capability>/ with the shared package copied
in, by the project's own build; no symlink, no path edit. (The staged assets of a real synthesis are checked
in tests/test_sdk_layer.py: every function imports `dreambooth_shared` from its own asset.)"""

from __future__ import annotations

import ast
import json
import subprocess
import tomllib
from pathlib import Path

from stacks.shared import assets
from tests.conftest import ROOT


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_each_asset_is_its_capabilitys_folder_and_the_shared_package_without_bytecode(tmp_path, monkeypatch):
    # A source tree with bytecode in it, as a test run leaves it
    source = tmp_path / "repo"
    for capability in assets.CAPABILITIES:
        (source / "lambda" / capability / "__pycache__").mkdir(parents=True)
        (source / "lambda" / capability / "handler.py").write_text(f"# {capability}\n")
        (source / "lambda" / capability / "__pycache__" / "handler.cpython-311.pyc").write_bytes(b"\0")
    (source / "dreambooth_shared" / "__pycache__").mkdir(parents=True)
    (source / "dreambooth_shared" / "__init__.py").write_text("")
    (source / "dreambooth_shared" / "contract.py").write_text("X = 1\n")
    (source / "dreambooth_shared" / "stray.pyc").write_bytes(b"\0")
    monkeypatch.setattr(assets, "LAMBDA_DIR", source / "lambda")
    monkeypatch.setattr(assets, "SHARED_PACKAGE", source / "dreambooth_shared")
    for capability in assets.CAPABILITIES:
        out = tmp_path / "out" / capability
        out.mkdir(parents=True)
        assets.copy_function_code(capability, out)
        assert _files(out) == {
            "handler.py": f"# {capability}\n".encode(),
            "dreambooth_shared/__init__.py": b"",
            "dreambooth_shared/contract.py": b"X = 1\n",
        }


def test_every_capability_folder_is_an_asset_and_holds_no_package_marker():
    folders = {p.name for p in (ROOT / "lambda").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == set(assets.CAPABILITIES)
    for capability in assets.CAPABILITIES:
        # An asset's root is Lambda's /var/task, not a package; its modules are imported by plain names.
        assert not (assets.lambda_dir(capability) / "__init__.py").exists()
        assert not (assets.lambda_dir(capability) / assets.SHARED_PACKAGE.name).exists()


def test_no_tracked_symlink():
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-s"], capture_output=True, text=True, check=True)
    assert [line for line in listed.stdout.splitlines() if line.startswith("120000")] == []


def _edits_the_import_path(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "path"
            and isinstance(node.value, ast.Name)
            and node.value.id == "sys"
        ):
            return True
        if isinstance(node, ast.Attribute) and node.attr == "syspath_prepend":
            return True
    return False


def test_the_import_path_is_set_in_one_place_pytest_ini():
    # No module reads or edits sys.path: tests get theirs from pytest.ini's pythonpath, child interpreters
    # from PYTHONPATH, and tests/api/lambda_loader.py finds a function's folder with a finder of its own.
    tracked = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "*.py"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert [f for f in tracked if _edits_the_import_path(ast.parse((ROOT / f).read_text()))] == []


def test_watch_and_packaging_include_the_function_code_and_the_shared_package():
    watched = json.loads((ROOT / "cdk.json").read_text())["watch"]["include"]
    assert {"app.py", "stacks/**", "lambda/**", "dreambooth_shared/**"} <= set(watched)
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    assert "dreambooth_shared" in packages  # the `dreambooth` command imports it
