"""Import a function's code folder the way the Lambda runtime does (the folder is where its top-level imports
are found first), without letting its plain module names (handler, settings, ...) clash with other test modules.

The folder's top-level modules and packages (a staged asset's `dreambooth_shared/` included) are imported
afresh from the folder, and taken out of sys.modules again afterwards: the loaded module keeps its own copies.
The folder is found first by a finder placed ahead of the others for the import only (sys.path is left as
it is).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Mapping, Optional

ROOT = Path(__file__).resolve().parents[1]
API_CODE = ROOT / "lambda" / "api"


def top_level_names(code_dir: Path) -> set[str]:
    """What `import <name>` finds in `code_dir`: its modules and its packages."""
    return {p.stem for p in code_dir.glob("*.py")} | {
        p.name for p in code_dir.iterdir() if (p / "__init__.py").is_file()
    }


class _FolderFirst(importlib.abc.MetaPathFinder):
    """Finds the folder's top-level names in the folder (their submodules follow their package's path)."""

    def __init__(self, code_dir: Path, names: set[str]) -> None:
        self.code_dir, self.names = str(code_dir), names

    def find_spec(
        self, fullname: str, path: Optional[object] = None, target: Optional[ModuleType] = None
    ) -> Optional[importlib.machinery.ModuleSpec]:
        if path is None and fullname in self.names:
            return importlib.machinery.PathFinder.find_spec(fullname, [self.code_dir])
        return None


def load(code_dir: Path, module: str, environ: Mapping[str, str]) -> ModuleType:
    """Import `module` from `code_dir` with `environ` applied; other modules keep their names."""
    names = top_level_names(code_dir)

    def of_folder(name: str) -> bool:
        return name.partition(".")[0] in names

    saved = {n: sys.modules.pop(n) for n in list(sys.modules) if of_folder(n)}
    saved_env = {k: os.environ.get(k) for k in environ}
    os.environ.update(environ)
    finder = _FolderFirst(code_dir, names)
    sys.meta_path.insert(0, finder)
    try:
        loaded = importlib.import_module(module)
    finally:
        sys.meta_path.remove(finder)
        for name in [n for n in sys.modules if of_folder(n)]:
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
