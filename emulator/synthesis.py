"""One synthesis of the real app per context variant per test run.

A full synth (cdk-nag included, as `cdk synth` runs it) takes 10-40 s on the 2-core machine, and
many test files need the same variant (the default stack, the harness's quick settings, a taken-over
bucket). `synth(context, environ)` builds and synthesizes each distinct variant once per process,
into a temporary cloud assembly, and hands the same app, stack and assembly to every caller:
`tests.conftest.synth_stack` (CDK assertions: `Template.from_stack` reuses the app's synthesis) and
`emulator.synthesize` (the emulator runs read the template and the staged Lambda assets).

The key is the whole context (cdk.json's plus the test's, values as given: `30` and `"30"` are
different variants) and the environment; callers must treat what they get as read-only.
cdk-nag stays registered on every variant (`build_app` registers it): an unacknowledged finding
still fails the synthesis of any variant, wherever it is first used.
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

ROOT = Path(__file__).resolve().parent.parent

_LOCK = threading.Lock()
_CACHE: dict[str, "Synthesis"] = {}
_BASE: list[Path] = []


@dataclass(frozen=True)
class Synthesis:
    app: Any  # aws_cdk.App, synthesized
    stack: Any  # the DreamBoothStack
    outdir: Path  # its cloud assembly

    @property
    def template_file(self) -> Path:
        return self.outdir / f"{self.stack.stack_name}.template.json"


def cdk_json_context() -> dict[str, Any]:
    return json.loads((ROOT / "cdk.json").read_text())["context"]


def _base_dir() -> Path:
    if not _BASE:
        _BASE.append(Path(tempfile.mkdtemp(prefix="dreambooth-synth-")))
        atexit.register(shutil.rmtree, _BASE[0], ignore_errors=True)
    return _BASE[0]


def synth(context: Optional[Mapping[str, Any]] = None, environ: Optional[Mapping[str, str]] = None) -> Synthesis:
    """The app with cdk.json's context plus `context`, synthesized once per distinct variant."""
    from stacks.application import build_app

    full = {**cdk_json_context(), **(context or {})}
    env = dict(environ or {})
    key = json.dumps([full, env], sort_keys=True, default=repr)
    with _LOCK:
        if key not in _CACHE:
            outdir = Path(tempfile.mkdtemp(prefix="assembly-", dir=_base_dir()))
            app, stack = build_app(full, environ=env, outdir=str(outdir))
            app.synth()  # raises if cdk-nag reports an unacknowledged finding
            _CACHE[key] = Synthesis(app=app, stack=stack, outdir=outdir)
        return _CACHE[key]


def synth_count() -> int:
    """How many distinct variants this process has synthesized (for the session summary)."""
    return len(_CACHE)
