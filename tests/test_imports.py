"""The import graph of the package, read from the source: no cycles, the ground imports nothing above it, and
the training core never imports Ray, W&B or Optuna (not even late, inside a function)."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rnnlab"
CORE = ("rnnlab.trial", "rnnlab.train")  # run_trial and the loop, with everything they import
EDGE_LIBRARIES = ("ray", "wandb", "optuna")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Every module `path` imports anywhere in it (late imports too): rnnlab modules by name, others by top level."""
    found = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: `from . import x` in rnnlab/models/esn.py is rnnlab.models
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            for alias in node.names:  # `from rnnlab.models import esn` imports the module rnnlab.models.esn
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: imports_of(path, set(paths)) for name, path in paths.items()}


def internal(graph, name):
    return {m for m in graph[name] if m in graph}


def test_the_package_has_no_import_cycle(graph):
    state, cycles = {}, []

    def visit(name, stack):
        state[name] = "open"
        for dep in internal(graph, name):
            if state.get(dep) == "open":
                cycles.append(" -> ".join([*stack[stack.index(dep) :], dep]))
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert not cycles, cycles


def test_config_imports_nothing_above_it(graph):
    for name in (m for m in graph if m.startswith("rnnlab.config")):
        above = {m for m in graph[name] if m.startswith("rnnlab.") and not m.startswith("rnnlab.config")}
        assert not above, f"{name} imports {above}"


@pytest.mark.parametrize("ground", ["rnnlab.models", "rnnlab.data", "rnnlab.search_folder"])
def test_the_ground_imports_only_the_ground(graph, ground):
    allowed = ("rnnlab.config", "rnnlab.checkpoint", "rnnlab.models", "rnnlab.data", "rnnlab.tasks", ground)
    for name in (m for m in graph if m == ground or m.startswith(ground + ".")):
        above = {m for m in internal(graph, name) if not m.startswith(allowed)}
        assert not above, f"{name} imports {above}"


def test_the_training_core_never_imports_ray_wandb_or_optuna(graph):
    seen, pending = set(), list(CORE)
    while pending:
        name = pending.pop()
        if name not in seen:
            seen.add(name)
            pending.extend(internal(graph, name))
    assert "rnnlab.tracking" not in seen and "rnnlab.tune" not in seen
    for name in sorted(seen):
        edge = {m for m in graph[name] if m.split(".")[0] in EDGE_LIBRARIES}
        assert not edge, f"{name} (imported by the core) imports {edge}"
    assert {"rnnlab.models", "rnnlab.data", "rnnlab.config"} <= seen  # the walk did reach the ground
