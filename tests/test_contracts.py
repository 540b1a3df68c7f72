"""The import contracts of the architecture (docs/ARCHITECTURE.md), checked in fresh interpreters.

- kdstudio.core never loads Qt (PySide6) or pyqtgraph: the engine runs headless on a server.
- The config, the project store, the summary schema, the events and the run plan load without torch: the window
  lists projects, validates forms and reads every run before torch has loaded (its fast start depends on it).
- kdstudio/core has no import cycle, counting imports inside functions: each room only imports rooms below it.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import kdstudio

PACKAGE_ROOT = Path(kdstudio.__file__).parent
CORE = PACKAGE_ROOT / "core"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE_ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def core_modules() -> list[str]:
    """Every module under kdstudio/core."""
    return sorted(_module_name(p) for p in CORE.rglob("*.py"))


def _loaded_after(imports: list[str]) -> set[str]:
    """Top-level package names in sys.modules after importing `imports` in a fresh interpreter."""
    code = ("import importlib, json, sys\n"
            f"for name in {imports!r}:\n    importlib.import_module(name)\n"
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PACKAGE_ROOT.parent)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_no_core_module_loads_qt_or_pyqtgraph():
    loaded = _loaded_after(core_modules())
    assert "torch" in loaded  # the check imported the engine for real
    assert not {"PySide6", "pyqtgraph", "superqt"} & loaded


def test_config_store_summary_and_plan_load_without_torch():
    torch_free = ["kdstudio.core.config", "kdstudio.core.config.templates", "kdstudio.core.store.projects",
                  "kdstudio.core.store.summary", "kdstudio.core.store.settings", "kdstudio.core.events", "kdstudio.core.registry",
                  "kdstudio.core.pipeline.plan", "kdstudio.core.outputs.gain", "kdstudio.core.store.run_labels",
                  "kdstudio.core.config.diff", "kdstudio.core.outputs.parity", "kdstudio.core.store.event_log",
                  "kdstudio.core.store.pause_file"]  # what the window shows before torch
    loaded = _loaded_after(torch_free)
    assert "kdstudio" in loaded
    assert "torch" not in loaded and "numpy" not in loaded


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    base = module.split(".") if is_package else module.split(".")[:-1]
    if node.level:
        base = base[: len(base) - (node.level - 1)]
        return ".".join(base + ([node.module] if node.module else []))
    return node.module or ""


def import_graph() -> dict[str, set[str]]:
    """module -> the kdstudio.core modules it imports (module level and inside functions)."""
    modules = set(core_modules())
    graph: dict[str, set[str]] = {}
    for path in CORE.rglob("*.py"):
        name = _module_name(path)
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, is_package, node)
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            for t in targets:
                while t and t not in modules:  # `from x import attr` names the module x
                    t = t.rpartition(".")[0]
                if t and t != name and t.startswith("kdstudio.core") and t != "kdstudio.core":
                    edges.add(t)  # a module that imports its own package counts: `from . import x` runs __init__
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_core_has_no_import_cycle_even_inside_functions():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
