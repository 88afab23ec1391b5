"""Import a Lambda code directory the way the Lambda runtime does (its folder first on sys.path),
without letting its plain module names (handler, settings, ...) clash with other test modules."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Mapping

ROOT = Path(__file__).resolve().parents[1]
API_CODE = ROOT / "stacks" / "api" / "runtime"


def load(code_dir: Path, module: str, environ: Mapping[str, str]) -> ModuleType:
    """Import `module` from `code_dir` with `environ` applied; other modules keep their names."""
    import os

    names = {p.stem for p in code_dir.glob("*.py")}
    saved = {n: sys.modules.pop(n) for n in list(sys.modules) if n in names}
    saved_env = {k: os.environ.get(k) for k in environ}
    os.environ.update(environ)
    sys.path.insert(0, str(code_dir))
    try:
        loaded = importlib.import_module(module)
    finally:
        sys.path.remove(str(code_dir))
        for name in names:
            sys.modules.pop(name, None)
        sys.modules.update(saved)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return loaded


def modules_of(loaded: ModuleType) -> dict[str, ModuleType]:
    """The sibling modules a loaded handler imported, by plain name (e.g. 'spec', 'records')."""
    return {name: value for name, value in vars(loaded).items() if isinstance(value, ModuleType)}
