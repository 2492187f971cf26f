"""The import graph of the package: imports run one way, with no cycle, and all at the top of files.

Layers, from the top: the CLI (the ``explorer.cli`` package), the app (``explorer.app``), the
launch/options layer (``explorer.launch``, ``explorer.options``), the core (everything else). A
module may import its own layer and the layers below it, never above. The graph is read
from the source (every ``import``, at any depth), so an import hidden inside a function counts.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import explorer

PACKAGE = Path(explorer.__file__).parent
# Imports that stay inside a function on purpose: the app is an optional extra, so `explorer serve`
# imports Panel only when it serves; every other command works without it.
# A grid's description names the Objective type only for type checkers: the scorers import torch,
# and `explorer pick` (which reads a grid's results) must not.
# `explorer pick` runs without the other sub-commands, which load torch (explorer.cli.main).
DEFERRED = {
    ("explorer.cli.serve", "explorer.app"),
    ("explorer.frontier.grid", "explorer.objectives"),
    ("explorer.cli", "explorer.cli.pick"),
    ("explorer.cli", "explorer.cli.commands"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def in_package(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def layer(module: str) -> int:
    if in_package(module, "explorer.cli"):
        return 3
    if in_package(module, "explorer.app"):
        return 2
    if module in ("explorer.launch", "explorer.options"):
        return 1
    return 0


def imports() -> dict[str, set[tuple[str, bool]]]:
    """module -> {(imported explorer module, at the top of the file)}."""
    graph: dict[str, set[tuple[str, bool]]] = {}
    modules = {module_name(p) for p in PACKAGE.rglob("*.py")}
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top = {id(node) for node in tree.body}
        found = set()
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                if name in modules and name != module_name(path):
                    found.add((name, id(node) in top))
        graph[module_name(path)] = found
    return graph


def test_no_import_cycle():
    graph = {m: {t for t, _ in targets} for m, targets in imports().items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if target.startswith(module + "."):
                continue  # a package's __init__ importing its own submodule is not a cycle
            if state.get(target) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*path, module, target]))
            if target not in state:
                visit(target, [*path, module])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


def test_imports_run_one_way_down_the_layers():
    upward = sorted(
        f"{m} imports {t}" for m, targets in imports().items() for t, _ in targets if layer(t) > layer(m)
    )
    assert upward == []
    assert (
        layer("explorer.cli.serve")
        > layer("explorer.app.main")
        > layer("explorer.launch")
        > layer("explorer.soup")
    )


def test_imports_are_at_the_top_of_files():
    hidden = sorted(
        (m, t)
        for m, targets in imports().items()
        for t, at_top in targets
        if not at_top and (m, t) not in DEFERRED
    )
    assert hidden == []


def test_the_core_and_the_cli_import_no_panel_in_a_fresh_interpreter():
    code = (
        "import sys, explorer.cli, explorer.launch, explorer.frontier.results, explorer.export;"
        "print(sorted(m for m in ('panel', 'holoviews', 'bokeh', 'param') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_explorer_pick_imports_no_model_library():
    """``explorer pick`` reads results files only: no torch, no transformers, no Panel."""
    code = (
        "import sys; from explorer.cli import main;"
        "code = main(['pick', '--frontier', 'missing.nc', '--knee']);"
        "print(code, sorted(m for m in ('torch', 'transformers', 'panel', 'peft') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "2 []"  # it ran (and refused the missing file) without them
    assert "missing.nc does not exist" in out.stderr
