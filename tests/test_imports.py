"""The import graph of the package, read from the source: no cycles, the ground imports nothing above it (in
layers: config, then data, then tasks, then models), and the training core never imports Ray, W&B or Optuna (not
even late, inside a function). Importing `rnnlab.data.encoders` runs `rnnlab/data/__init__.py` first, so an
import of a module in another package counts as an import of that package too (a cycle through an `__init__`)."""

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
    own = {package, *parents(package)}  # packages already running when this module runs
    return found | {parent for name in found for parent in parents(name) if parent in modules} - own


def parents(name: str) -> list[str]:
    """rnnlab.data.encoders -> [rnnlab.data, rnnlab]: the packages whose __init__ runs before it; `rnnlab` itself
    is left out (every module is inside it)."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(len(parts) - 1, 1, -1)]


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


# Each ground layer and what it may import besides itself: data knows no task (a task hands data its preparer),
# tasks know no model, models know their task's head.
GROUND = {
    "rnnlab.data": ("rnnlab.config", "rnnlab.checkpoint"),
    "rnnlab.tasks": ("rnnlab.config", "rnnlab.data"),
    "rnnlab.models": ("rnnlab.config", "rnnlab.checkpoint", "rnnlab.data", "rnnlab.tasks"),
    "rnnlab.search_folder": ("rnnlab.config", "rnnlab.checkpoint", "rnnlab.journal"),
    "rnnlab.journal": (),  # Optuna's journal file, nothing of rnnlab
}


def within(name: str, packages) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


@pytest.mark.parametrize("ground", sorted(GROUND))
def test_the_ground_imports_only_the_layers_below_it(graph, ground):
    allowed = (*GROUND[ground], ground)
    modules = [m for m in graph if within(m, [ground])]
    assert modules
    for name in modules:
        above = {m for m in internal(graph, name) if not within(m, allowed)}
        assert not above, f"{name} imports {above}"


def test_a_cycle_through_a_package_init_is_seen():
    """The graph must see what Python runs: a task module importing rnnlab.data.encoders imports rnnlab.data."""
    path = PACKAGE / "tasks" / "base.py"
    found = imports_of(path, {"rnnlab.data", "rnnlab.data.prepare", "rnnlab.tasks", "rnnlab.tasks.base"})
    assert {"rnnlab.data", "rnnlab.data.prepare"} <= found and "rnnlab.tasks" not in found


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
