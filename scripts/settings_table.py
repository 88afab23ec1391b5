"""Write the configuration tables of docs/ (configuration.md: every setting) from the settings registry.

    .venv/bin/python -m scripts.settings_table          rewrite the tables in place
    .venv/bin/python -m scripts.settings_table --check  exit 1 when a table differs from the registry

Each table sits between `<!-- settings-table: <section> [<section> ...] -->` and
`<!-- /settings-table -->`; its rows are the settings of those sections of `stacks.config.SETTINGS`
(key, default, allowed values, meaning), so a default or range is written once, in stacks/config.py.
tests/test_settings_docs.py fails when a table is out of date.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Optional, Sequence

from stacks.config import SETTINGS, Setting

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = ("docs/configuration.md", "docs/api.md", "docs/pipeline.md")
BLOCK = re.compile(
    r"(<!-- settings-table: (?P<sections>[a-z ]+) -->\n)(?P<table>.*?)(<!-- /settings-table -->)", re.DOTALL
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def row(spec: Setting) -> str:
    allowed = spec.allowed + (f"; {spec.note}" if spec.note else "")
    return f"| `{spec.key}` | {_cell(spec.default_text)} | {_cell(allowed)} | {_cell(spec.description)} |"


def table(sections: Sequence[str]) -> str:
    unknown = [name for name in sections if name not in SETTINGS]
    if unknown:
        raise KeyError(f"no settings section {', '.join(unknown)} (sections: {', '.join(SETTINGS)})")
    lines = ["| key | default | allowed | meaning |", "| --- | --- | --- | --- |"]
    lines += [row(spec) for name in sections for spec in SETTINGS[name]]
    return "\n".join(lines) + "\n"


def rewrite(text: str) -> str:
    """`text` with every marked table regenerated."""
    return BLOCK.sub(lambda m: m.group(1) + table(m.group("sections").split()) + m.group(4), text)


def blocks(text: str) -> list[list[str]]:
    """The sections of each marked table in `text`."""
    return [m.group("sections").split() for m in BLOCK.finditer(text)]


def main(argv: Optional[Sequence[str]] = None, root: Path = ROOT) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a table is out of date")
    args = parser.parse_args(argv)
    stale = []
    for name in DOCUMENTS:
        path = root / name
        text = path.read_text()
        new = rewrite(text)
        if new != text:
            stale.append(name)
            if not args.check:
                path.write_text(new)
    if args.check and stale:
        print(f"Out of date: {', '.join(stale)}; run .venv/bin/python -m scripts.settings_table", file=sys.stderr)
        return 1
    print(f"{'Out of date' if args.check else 'Rewrote'}: {', '.join(stale)}" if stale else "Tables up to date.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
