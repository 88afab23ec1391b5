"""The `dreambooth` command (installed into .venv/bin by the set-up; also `python -m scripts.cli`).

commands.py parses the command line and runs each command; the other modules are its parts:
preflight (checks before a deploy), stack_outputs (finds the deployed stack's bucket, API URL and
key), api_client (calls the HTTPS API with the key or SigV4), dataset_upload (checks a folder with
the pipeline's own rules and uploads it), follow (follows a training until its model is live),
generation (asks for images and saves them), progress (the upload's progress bar).
"""

from __future__ import annotations

from typing import Any

__all__ = ["main"]


def __getattr__(name: str) -> Any:
    """`main` (pyproject's `dreambooth`), loaded on first use: importing one part (e.g. preflight, from
    scripts/deploy.py) loads only that part, not the whole command."""
    if name == "main":
        from scripts.cli.commands import main

        return main
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
