"""The package's layers point down only, and its modules import no cycle.

Read from the source (``ast``), not by importing: every ``import`` of a package module, at any
depth of a module (a function-level import counts: it is an arrow too), except those under
``if TYPE_CHECKING:``. The layers are DESIGN.md's: errors -> normalize -> hooks -> registry ->
triggers / policy / state -> lifecycle -> recovery -> operators.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "airflow_compute_provider"
ROOT = Path(__file__).resolve().parents[2] / PACKAGE

#: folder (or module) -> what it must never import
FORBIDDEN = {
    "errors": (
        "normalize",
        "hooks",
        "registry",
        "triggers",
        "policy",
        "state",
        "lifecycle",
        "recovery",
        "operators",
    ),
    "normalize": ("hooks", "registry", "triggers", "policy", "state", "lifecycle", "recovery", "operators"),
    "hooks": ("registry", "triggers", "lifecycle", "recovery", "operators"),
    "registry": ("lifecycle", "recovery", "operators"),
    "policy": ("hooks", "registry", "triggers", "state", "lifecycle", "recovery", "operators"),
    "state": ("hooks", "registry", "triggers", "policy", "lifecycle", "recovery", "operators"),
    "lifecycle": ("recovery", "operators"),
    "recovery": ("operators",),
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in ROOT.rglob("*.py")}


def _resolve(name: str) -> str | None:
    """The package module ``name`` is, or the package it is an attribute of."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


class _Imports(ast.NodeVisitor):
    def __init__(self) -> None:
        self.found: set[str] = set()

    def visit_If(self, node: ast.If) -> None:
        if "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module is None or node.level:
            return
        for alias in node.names:
            self._add(f"{node.module}.{alias.name}")

    def _add(self, name: str) -> None:
        if name.partition(".")[0] == PACKAGE:
            resolved = _resolve(name)
            if resolved is not None:
                self.found.add(resolved)


def _imports(module: str) -> set[str]:
    visitor = _Imports()
    visitor.visit(ast.parse(MODULES[module].read_text()))
    return visitor.found - {module}


GRAPH = {module: _imports(module) for module in MODULES}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_layer_imports_one_above_it(layer: str) -> None:
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if _layer(module) == layer
        for target in targets
        if _layer(target) in FORBIDDEN[layer]
    )
    assert not wrong, wrong


def test_the_package_imports_no_cycle() -> None:
    # Tarjan's strongly connected components over the module graph: any component of two or
    # more modules is a cycle (a package's __init__ importing its own modules is not an edge
    # back, so packages that re-export are fine).
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH[node]:
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
                cycles.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    assert not cycles, cycles
