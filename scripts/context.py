"""What `make deploy`, the `dreambooth` command and the acceptance flow share: the repository root,
the app's context as the CDK CLI merges it, whether AWS credentials are configured, and the deploy's
own options (not passed on to cdk), which the account checks name in their fixes.

Imports nothing of scripts/, so scripts/deploy.py, scripts/cli/ and scripts/acceptance.py can all
import it without importing each other.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parent.parent
NO_REHEARSAL = "--no-rehearsal"
SKIP_PREFLIGHT = "--skip-preflight"
SETUP_ACCOUNT = "--setup-account"
"""Lets `make deploy` create and set API Gateway's CloudWatch Logs role when none is set."""


def context_from(args: Sequence[str], root: Path = ROOT) -> dict[str, Any]:
    """cdk.json's context, then cdk.context.json, then `-c key=value` arguments (as the CLI merges them)."""
    context: dict[str, Any] = {}
    for name in ("cdk.json", "cdk.context.json"):
        path = root / name
        if path.exists():
            data = json.loads(path.read_text())
            context.update(data.get("context", {}) if name == "cdk.json" else data)
    for flag, value in zip(args, list(args[1:]) + [""]):
        if flag in ("-c", "--context") and "=" in value:
            key, _, text = value.partition("=")
            context[key] = text
    return context


def has_credentials(session: Any) -> bool:
    """Whether credentials are configured at all. Configured but broken ones (a failing
    credential_process, an SSO token to renew) raise: that is an access problem, not "offline"."""
    return session.get_credentials() is not None
