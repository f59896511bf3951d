"""The import graph of the package, read from the source: no cycles, the ground imports nothing above it (in
layers: config, then data, then tasks, then models), and the training core never imports Ray, W&B or Optuna (not
even late, inside a function). Importing `rnnlab.data.encoders` runs `rnnlab/data/__init__.py` first, so an
import of a module in another package counts as an import of that package too (a cycle through an `__init__`)."""

import ast
import json
import os
import subprocess
import sys
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


# --- what a process imports at run time -----------------------------------------------------------------------------

HEAVY_LIBRARIES = ("datasets", "pandas", "pyarrow")  # ~1 s to import; only loading or preparing raw data needs them
SEARCH = PACKAGE.parent / "experiments" / "search_esn_mackey_glass.py"  # issue 14: many 0.1 s trials
CACHED_TRIAL = f"""
import json, sys

from rnnlab.experiment import load_experiment
from rnnlab.trial import run_trial

overrides, out = json.loads(sys.argv[1]), sys.argv[2]
heavy = {HEAVY_LIBRARIES!r}
hit = run_trial(load_experiment({str(SEARCH)!r}, overrides).config, None, out + "/hit")
loaded_by_hit = [m for m in heavy if m in sys.modules]
miss = run_trial(load_experiment({str(SEARCH)!r}, {{**overrides, "seed": 1}}).config, None, out + "/miss")
loaded_by_miss = [m for m in heavy if m in sys.modules]
print(json.dumps([hit["status"], loaded_by_hit, miss["status"], loaded_by_miss]))
"""


def test_a_trial_whose_data_is_cached_never_imports_datasets(tmp_path):
    """A search trial reading prepared data from the cache pays no `datasets` import (nor pandas, pyarrow) in its
    fresh process; a cache miss in the same process (another seed) still loads and prepares its data."""
    from rnnlab.experiment import load_experiment
    from rnnlab.tasks import load_task_data

    cache = tmp_path / "cache"
    overrides = {"data.num_samples": 300, "model.esn.units": 20, "model.esn.washout": 20, "data.cache_dir": str(cache)}
    config = load_experiment(str(SEARCH), overrides).config
    assert load_task_data(config.data, config.seed).meta["cache"] == "miss"
    assert len(list(cache.iterdir())) == 1
    done = subprocess.run(
        [sys.executable, "-c", CACHED_TRIAL, json.dumps(overrides), str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        env={**os.environ, "WANDB_MODE": "disabled"},
    )
    assert done.returncode == 0, done.stderr
    hit_status, loaded_by_hit, miss_status, loaded_by_miss = json.loads(done.stdout.splitlines()[-1])
    assert (hit_status, miss_status) == ("completed", "completed"), done.stderr
    assert loaded_by_hit == [], f"a cache-hit trial imported {loaded_by_hit}"
    assert "datasets" in loaded_by_miss  # the check sees an import when there is one
    assert len(list(cache.iterdir())) == 2  # the hit read the entry prepared above; the miss added its own
