"""The package's layers, checked from the source (as harlequin does): what may import what.

    cli  ->  app  ->  (engine through a Protocol, loaded on a worker thread)
    cli  ->  engine  ->  models  ->  options, errors
    cli, app  ->  remote  ->  (engine's protocol and events only; torch-free)

Every import counts, function-local ones included; imports under `if TYPE_CHECKING:` do not,
since they never run (they exist for the type checker, which handles cycles itself).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "tui_gen"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, package: str) -> Iterator[tuple[str, int]]:
    """(imported name, line) for every import that can run, resolved to absolute names."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from (x for child in node.orelse for x in _imports(child, package))
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            for alias in node.names:
                # `from pkg import mod` imports the module pkg.mod, not just pkg
                sub = f"{module}.{alias.name}"
                yield (sub if sub in MODULES else module), node.lineno
        yield from _imports(node, package)


def _edges() -> dict[str, set[tuple[str, int]]]:
    edges: dict[str, set[tuple[str, int]]] = {}
    for name, path in MODULES.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges[name] = set(_imports(ast.parse(path.read_text()), package))
    return edges


EDGES = _edges()


def _internal(name: str) -> str | None:
    """The tui_gen module an imported name refers to (None for third-party names)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def test_the_graph_sees_every_module() -> None:
    assert {"tui_gen.cli.dispatch", "tui_gen.engine.generator", "tui_gen.app.app"} <= set(MODULES)
    assert ("tui_gen.errors", 8) in {(m, 8) for m, _ in EDGES["tui_gen.options"]}


def test_no_import_cycles() -> None:
    graph = {
        m: {t for name, _ in targets if (t := _internal(name)) and t != m}
        for m, targets in EDGES.items()
    }
    # a package's __init__ that re-exports a child is not a cycle with that child
    for m in graph:
        graph[m] = {t for t in graph[m] if not m.startswith(t + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                return [*stack[stack.index(t) :], t]
            if t not in state and (cycle := visit(t)):
                return cycle
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (cycle := visit(m)):
            pytest.fail("import cycle: " + " -> ".join(cycle))


def _violations(layer: str, forbidden: tuple[str, ...]) -> list[str]:
    out = []
    for m, targets in EDGES.items():
        if m == layer or m.startswith(layer + "."):
            for name, line in targets:
                if any(name == f or name.startswith(f + ".") for f in forbidden):
                    out.append(f"{MODULES[m].relative_to(ROOT)}:{line} imports {name}")
    return sorted(out)


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        ("tui_gen.engine", ("tui_gen.app", "tui_gen.cli", "tui_gen.server", "textual")),
        ("tui_gen.models", ("tui_gen.engine", "tui_gen.app", "tui_gen.cli", "textual")),
        # the server talks to the engine (its Scheduler), never to the app or the CLI
        ("tui_gen.server", ("tui_gen.app", "tui_gen.cli", "textual")),
        ("tui_gen.app", ("torch", "tui_gen.cli", "tui_gen.models", "tui_gen.engine.native")),
        ("tui_gen.options", ("torch", "textual", "tui_gen.engine", "tui_gen.app")),
        # what the app (and a remote backend) may import of the engine: torch-free
        ("tui_gen.engine.protocol", ("torch", "tui_gen.models", "tui_gen.engine.generator")),
        # the remote backend: torch-free, below the app and the CLI, beside the local engine
        (
            "tui_gen.remote",
            (
                "torch",
                "textual",
                "tui_gen.app",
                "tui_gen.cli",
                "tui_gen.models",
                "tui_gen.server",
                "tui_gen.engine.generator",
                "tui_gen.engine.native",
                "tui_gen.engine.loading",
            ),
        ),
        ("tui_gen.errors", ("torch", "textual", "tui_gen")),
        ("tui_gen", ("dev", "tests")),
    ],
)
def test_layer_never_imports(layer: str, forbidden: tuple[str, ...]) -> None:
    assert _violations(layer, forbidden) == []


def test_the_checks_can_fail() -> None:
    """The rules above would catch a violation (the engine does import torch)."""
    assert _violations("tui_gen.engine", ("torch",))
    assert _violations("tui_gen.cli", ("tui_gen.app",))


@pytest.mark.parametrize(
    ("module", "absent"),
    [
        ("tui_gen.cli", ("torch", "textual")),  # --help and flag errors are instant
        ("tui_gen.app.app", ("torch",)),  # the app paints before torch loads
        ("tui_gen.options", ("torch", "textual")),
        ("tui_gen.engine.protocol", ("torch", "textual")),
        ("tui_gen.remote.backend", ("torch", "textual")),  # a remote model needs no torch
    ],
)
def test_importing_does_not_pull_in(module: str, absent: tuple[str, ...]) -> None:
    code = f"import sys, {module}; print(','.join(m for m in {absent!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == ""
