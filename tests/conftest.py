"""Shared fixtures. Tests never reach AWS: credentials are fake and every AWS call goes to moto."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Mapping, Optional
from unittest import mock

import botocore.loaders
import pytest

ROOT = Path(__file__).resolve().parent.parent

# Set before any boto3 client exists: a stray real call fails on these instead of using a profile.
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_SESSION_TOKEN="testing",
    AWS_DEFAULT_REGION="us-east-1",
    AWS_REGION="us-east-1",
    AWS_EC2_METADATA_DISABLED="true",
    JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20",
)
os.environ.pop("AWS_PROFILE", None)


# botocore parses each service's JSON model once per session (its loader's cache), and tests make
# many sessions (mock_aws starts each test without a default session, the CLI makes its own, moto
# one per backend): every session of the run reads through one loader per data path instead.
class _SearchPaths(list):
    """boto3 adds its data path to its session's loader; on a shared loader, once is enough."""

    def append(self, path: str) -> None:
        if path not in self:
            super().append(path)


@functools.lru_cache(maxsize=None)
def _loader(search_path_string: Optional[str] = None) -> botocore.loaders.Loader:
    loader = botocore.loaders.create_loader(search_path_string)
    loader._search_paths = _SearchPaths(loader.search_paths)
    return loader


@pytest.fixture(scope="session", autouse=True)
def models_parsed_once():
    """Every botocore session created meanwhile shares the loader of its data path (the same files)."""
    with mock.patch("botocore.session.create_loader", _loader):
        yield


@pytest.fixture(scope="session", autouse=True)
def moto_response_names_looked_up_once():
    """moto's serializer looks up each member's attribute names once per response, not per object
    (emulator/moto_patches.py, `patch_response_keys`), and a nameless StartExecution gets a
    UUID as in AWS (`patch_execution_names`) and StopExecution answers once the execution is ABORTED
    (`patch_stop_execution`); the harness enters both on its own too."""
    from contextlib import ExitStack

    from emulator.moto_patches import patch_execution_names, patch_response_keys, patch_stop_execution

    with ExitStack() as stack:
        patch_response_keys(stack)
        patch_execution_names(stack)
        patch_stop_execution(stack)
        yield


def synth_stack(context: Optional[Mapping[str, Any]] = None, environ: Optional[Mapping[str, str]] = None):
    """The real app with extra context (cdk.json's context applies too); returns the stack.

    Synthesized once per distinct context per test run (emulator/synthesis.py), so the stack is
    shared: `Template.from_stack` on it reuses that synthesis. Treat it as read-only.
    """
    from emulator.synthesis import synth

    return synth(context, environ).stack


@pytest.fixture(scope="session")
def created_stack():
    return synth_stack()


@pytest.fixture(scope="session")
def imported_stack():
    return synth_stack({"bucketName": "existing-photos-bucket"})


# ---------------------------------------------------------------------------------------------
# Tiers: every test gets one marker, so that `pytest -m <tier>` runs one tier alone (docs/testing.md).
#   unit      plain modules and handlers, on moto where they call AWS (no synthesis)
#   construct CDK assertions on a synthesized template (emulator/synthesis.py: one synth per variant)
#   emulator  the synthesized stack run on moto (emulator/: state machines, Lambdas, API)
#   gates     cdk-nag, cfn-lint and checkov over every deployable variant (tests/test_gates.py)
#   browser   the web page in Chromium (tests/web)
# A test marked with a tier by hand keeps it.
# ---------------------------------------------------------------------------------------------

TIERS = ("unit", "construct", "emulator", "gates", "browser")
# Names a test module imports when it runs the synthesized stack on moto, or synthesizes it.
_EMULATOR_NAMES = {"PipelineHarness", "pipeline_harness", "synthesize", "acceptance", "rehearse"}
_CONSTRUCT_NAMES = {"synth_stack", "Template", "build_app", "build", "ApiTestStack"}
_CONSTRUCT_FIXTURES = {"created_stack", "imported_stack"}


def tier_of(item: pytest.Item) -> str:
    path = Path(item.path).resolve().relative_to(ROOT / "tests")
    names = set(vars(item.module)) if getattr(item, "module", None) is not None else set()
    fixtures = set(getattr(item, "fixturenames", ()))
    if path.parts[0] == "web":
        return "browser"
    if path.name == "test_gates.py":
        return "gates"
    if "synthesized" in fixtures or names & _EMULATOR_NAMES:
        return "emulator"
    if fixtures & _CONSTRUCT_FIXTURES or names & _CONSTRUCT_NAMES:
        return "construct"
    return "unit"


# The order test files start in: the slow tiers first. On two workers (`make test`: xdist hands out
# whole files, in the collection's order with `--no-loadscope-reorder`) a long file that starts last
# leaves the other worker idle until it ends; a file of quick unit tests fills the gaps instead.
_START_ORDER = ("gates", "emulator", "browser", "construct", "unit")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank: dict[Path, int] = {}
    first: dict[Path, int] = {}
    for index, item in enumerate(items):
        if not any(item.get_closest_marker(tier) for tier in TIERS):
            item.add_marker(tier_of(item))
        tier = next(t for t in TIERS if item.get_closest_marker(t))
        rank[item.path] = min(rank.get(item.path, len(_START_ORDER)), _START_ORDER.index(tier))
        first.setdefault(item.path, index)
    items.sort(key=lambda item: (rank[item.path], first[item.path]))  # stable: each file's tests stay in order


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    from emulator.synthesis import synth_count

    if synth_count():
        terminalreporter.write_line(
            f"synthesized {synth_count()} context variant(s) of the app, once each (emulator/synthesis.py)"
        )
