"""The house as drawn from the imports: no circle, nothing runs back up into tests/, and monitoring
only watches (issue 19, item 4).

Read with `ast` from the source, so nothing is imported and no CDK app is built. Every import
statement counts, wherever it sits (module top, inside a function, under TYPE_CHECKING): a
deferred import that closes a circle is still a circle in the design. `from X import Y` is an
edge to the module X.Y when Y is a module, else to X. The parent packages Python runs on the
way to a module (their __init__.py) are not edges of their own: a package's __init__ importing
its parts would otherwise close a circle with every part.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator

from tests.conftest import ROOT

# The product's Python code; the shared package of issue 19's item 1 is read too once it exists.
PRODUCT = ("stacks", "scripts", "emulator", "dreambooth_shared")
MONITORING = "stacks.monitoring"
# The stack and its composer of the pipeline's units: they build Monitoring (the dashboard, the
# alarms) and the report of runs that ended uncaught from what they watch.
COMPOSERS = {"stacks.stack", "stacks.pipeline"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, Path]:
    found = {}
    for top in PRODUCT:
        for path in sorted((ROOT / top).rglob("*.py")):
            if "__pycache__" not in path.parts and not path.is_symlink():
                found[_module_name(path)] = path
    return found


SOURCES = _sources()


def _imports(module: str, path: Path) -> Iterator[str]:
    """Every module name `module` imports (resolved against its package for relative imports)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                child = f"{base}.{alias.name}"
                yield child if child in SOURCES else base


def _graph() -> dict[str, set[str]]:
    """Module -> the product modules it imports."""
    return {
        module: {name for name in _imports(module, path) if name in SOURCES and name != module}
        for module, path in SOURCES.items()
    }


def _unit(module: str) -> str:
    """The unit a module belongs to: its first two name parts (stacks.training, scripts.cli, scripts.deploy)."""
    return ".".join(module.split(".")[:2])


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle per strongly connected component of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_imports_are_read():
    graph = _graph()
    assert "scripts.cli.preflight" in graph["scripts.deploy"]  # `from scripts.cli import preflight`: the module
    assert "stacks.monitoring.construct" in graph["stacks.stack"]
    assert "emulator.iam" in graph["emulator.pipeline_harness"]
    assert "emulator.iam" in graph["emulator.moto_patches"]  # imported inside a function


def test_no_import_circle_between_modules():
    assert _cycles(_graph()) == []


def test_no_import_circle_between_units():
    units: dict[str, set[str]] = {}
    for module, targets in _graph().items():
        units.setdefault(_unit(module), set()).update(_unit(t) for t in targets if _unit(t) != _unit(module))
    assert _cycles(units) == []


def test_product_code_never_imports_tests():
    offenders = sorted(
        f"{module} imports {name}"
        for module, path in SOURCES.items()
        for name in _imports(module, path)
        if name == "tests" or name.startswith("tests.")
    )
    assert offenders == []


def test_nothing_but_the_stack_imports_monitoring():
    offenders = sorted(
        f"{module} imports {target}"
        for module, targets in _graph().items()
        for target in targets
        if (target == MONITORING or target.startswith(MONITORING + "."))
        and not (module == MONITORING or module.startswith(MONITORING + ".") or module in COMPOSERS)
    )
    assert offenders == []


def test_the_guard_sees_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
