"""The README and docs/ say only what exists: each `make` target, `dreambooth` command and `python -m`
module they name, each relative link and its anchor; and the README fits on a page (at most 250 lines).

Commands are read from code (inline `code` and fenced blocks), links from the prose; each check is a
function of the text, so the planted defects below show it fails.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from scripts.cli import commands
from tests.conftest import ROOT

README_MAX_LINES = 250
DOCUMENTS = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^```.*?^```", re.M | re.S)
INLINE = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)|<img [^>]*src=\"([^\"]+)\"")
# Global options that may come before the command (`dreambooth --profile work status`).
CLI_OPTIONS_WITH_VALUE = {"--profile", "--region", "--stack", "-c", "--context"}


def code(text: str) -> list[str]:
    """The text's code: each fenced block, each inline code span (outside fences)."""
    blocks = FENCE.findall(text)
    return blocks + INLINE.findall(FENCE.sub("", text))


def make_targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text()
    phony = re.search(r"^\.PHONY:(.*)$", makefile, re.M).group(1).split()
    rules = re.findall(r"^([A-Za-z][\w-]*)\s*:(?!=)", makefile, re.M)
    return set(phony) | set(rules)


def cli_commands() -> set[str]:
    (sub,) = [a for a in commands.parser()._actions if a.__class__.__name__ == "_SubParsersAction"]
    return set(sub.choices)


def unknown_make_targets(text: str, targets: set[str]) -> list[str]:
    named = [m.group(1) for snippet in code(text) for m in re.finditer(r"\bmake ([a-z][\w-]*)(?![\w<-])", snippet)]
    return sorted(set(named) - targets)


def unknown_cli_commands(text: str, known: set[str]) -> list[str]:
    unknown = set()
    for snippet in code(text):
        for m in re.finditer(r"\bdreambooth((?: +\S+)*)", snippet):
            words = m.group(1).split()
            while words and words[0].startswith("-"):
                words = words[2:] if words[0] in CLI_OPTIONS_WITH_VALUE else words[1:]
            if words and re.fullmatch(r"[a-z][a-z-]*", words[0]) and words[0] not in known:
                unknown.add(words[0])
    return sorted(unknown)


def missing_modules(text: str) -> list[str]:
    named = {m.group(1) for snippet in code(text) for m in re.finditer(r"\bpython -m ([\w.]+)", snippet)}
    return sorted(name for name in named if importlib.util.find_spec(name) is None)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#{1,6} (.+)$", FENCE.sub("", text), re.M):
        base = slug(heading)
        out.add(base if base not in seen else f"{base}-{seen[base]}")
        seen[base] = seen.get(base, 0) + 1
    return out


def broken_links(document: Path, text: str) -> list[str]:
    broken = []
    for m in LINK.finditer(FENCE.sub("", text)):
        target = m.group(1) or m.group(2)
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (document.parent / path).resolve() if path else document
        if not file.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file.read_text()):
            broken.append(f"{target} (no such heading)")
    return broken


# ---- the real documents ------------------------------------------------------------------------


def test_the_readme_fits_on_a_page():
    lines = (ROOT / "README.md").read_text().count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move detail into docs/"


def test_the_readme_links_every_page_of_docs():
    readme = (ROOT / "README.md").read_text()
    assert [d for d in DOCUMENTS[1:] if f"]({d})" not in readme and f"]({d}#" not in readme] == []


@pytest.mark.parametrize("document", DOCUMENTS)
def test_each_make_target_named_exists(document):
    assert unknown_make_targets((ROOT / document).read_text(), make_targets()) == []


@pytest.mark.parametrize("document", DOCUMENTS)
def test_each_dreambooth_command_named_exists(document):
    assert unknown_cli_commands((ROOT / document).read_text(), cli_commands()) == []


@pytest.mark.parametrize("document", DOCUMENTS)
def test_each_python_module_named_exists(document):
    assert missing_modules((ROOT / document).read_text()) == []


@pytest.mark.parametrize("document", [*DOCUMENTS, "emulator/README.md"])
def test_each_relative_link_points_at_a_file_and_heading(document):
    assert broken_links(ROOT / document, (ROOT / document).read_text()) == []


def test_the_checks_see_what_the_readme_names():
    readme = (ROOT / "README.md").read_text()
    named = " ".join(code(readme))
    assert "make deploy" in named and "make test" in named and "make acceptance" in named
    assert {"deploy", "test", "acceptance", "destroy"} <= make_targets()
    assert {"upload", "generate", "preflight", "web"} <= cli_commands()


# ---- planted defects ----------------------------------------------------------------------------


def test_an_unknown_make_target_fails():
    text = "Run `make deploy`, then:\n\n```bash\nmake deploi ARGS=--help\nmake test-<tier>\n```\n"
    assert unknown_make_targets(text, make_targets()) == ["deploi"]


def test_an_unknown_dreambooth_command_fails():
    text = "`.venv/bin/dreambooth --profile work statuss` and `dreambooth --json models`"
    assert unknown_cli_commands(text, cli_commands()) == ["statuss"]


def test_a_missing_python_module_fails():
    assert missing_modules("`.venv/bin/python -m scripts.rehearse` or `python -m scripts.rehearsel`") == [
        "scripts.rehearsel"
    ]


def test_a_broken_link_or_anchor_fails(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A page\n\n## The first run: `make acceptance`\n")
    readme = tmp_path / "README.md"
    text = (
        "[ok](docs/a.md) [ok](docs/a.md#the-first-run-make-acceptance) [gone](docs/b.md) "
        "[no heading](docs/a.md#nowhere) [web](https://example.com) [here](#top)\n\n# Top\n"
        "```\n[in code](not/checked.md)\n```\n"
    )
    readme.write_text(text)
    assert broken_links(readme, text) == ["docs/b.md (no such file)", "docs/a.md#nowhere (no such heading)"]


def test_a_readme_too_long_fails(tmp_path, monkeypatch):
    monkeypatch.setattr("tests.test_docs.ROOT", tmp_path)
    (tmp_path / "README.md").write_text("line\n" * (README_MAX_LINES + 1))
    with pytest.raises(AssertionError, match="251 lines"):
        test_the_readme_fits_on_a_page()
