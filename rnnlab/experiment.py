"""Experiment files: a Python file in `experiments/` with a base `config` and, for searches, `search_space(trial)`.

config = Config(name="digits_lstm", model=RecurrentConfig(family="lstm"), ...)   # rnnlab.models.encoder

def search_space(trial) -> dict:           # define-by-run, keys are dotted config paths
    family = trial.suggest_categorical("model.family", ["lstm", "gru"])
    ...
    return {"model.family": family, ...}
"""

from __future__ import annotations

import importlib.util
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnnlab.config import Config, ConfigError
from rnnlab.registries import apply_overrides

EXPERIMENTS_DIR = Path("experiments")
REPO_EXPERIMENTS_DIR = Path(__file__).resolve().parents[1] / "experiments"  # the checkout's, for an editable install


@dataclass
class Experiment:
    name: str
    path: Path
    config: Config
    search_space: Callable[[Any], dict[str, Any]] | None = None


def search_dirs() -> list[Path]:
    """Where a name is looked up, in order: ./experiments, then the experiments folder of rnnlab's checkout."""
    return list(dict.fromkeys(d.resolve() for d in (EXPERIMENTS_DIR, REPO_EXPERIMENTS_DIR) if d.is_dir()))


def available() -> list[str]:
    return sorted({p.stem for d in search_dirs() for p in d.glob("*.py") if not p.name.startswith("_")})


def resolve_path(spec: str) -> Path:
    """An experiment file by path, else by name in `search_dirs()`; a ConfigError lists the valid names."""
    path = Path(spec)
    if path.is_file() and path.suffix != ".py":  # a module of no .py file cannot be imported (a traceback)
        search = f"; to continue that search: rnnlab tune {path.parent} --resume" if path.name == "search.json" else ""
        raise ConfigError("experiment", f"{path} is not an experiment file (a .py file){search}")
    if path.is_file():
        return path
    for directory in search_dirs():
        candidate = directory / f"{path.stem if path.suffix == '.py' else spec}.py"
        if candidate.is_file():
            return candidate
    where = " or ".join(str(d) for d in search_dirs()) or f"{EXPERIMENTS_DIR.resolve()} (missing)"
    names = ", ".join(available()) or f"none in {where}"
    raise ConfigError("experiment", f"no experiment file {spec!r}; valid: a .py path or one of {names}")


def extend(base_file: str | Path, overrides: dict[str, Any] | None = None) -> Config:
    """Another experiment file's config with `overrides`: an experiment states only what differs from its base.

    config = extend(Path(__file__).with_name("digits_lstm.py"), {"train.epochs": 4})
    """
    config = load_experiment(str(base_file), overrides).config
    config.name = Config.name  # named after the file that extends it, not after its base
    return config


def load_experiment(spec: str, overrides: dict[str, Any] | None = None) -> Experiment:
    """Import the experiment file, check it defines a Config, and apply `--set` overrides."""
    path = resolve_path(spec)
    module_name = f"rnnlab_experiment_{path.stem}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(module_spec)
    try:  # its code, and a `config()` function's: an error (a sys.exit too) is the file's, named with its line
        sys.modules[module_name] = module  # dataclasses and pickling look the module up by name
        module_spec.loader.exec_module(module)
        config = getattr(module, "config", None)
        if callable(config) and not isinstance(config, Config):
            config = config()
    except (Exception, SystemExit) as err:
        where = traceback.extract_tb(err.__traceback__)[-1]
        line = getattr(err, "lineno", None) or where.lineno
        raise ConfigError("experiment", f"{path} line {line} failed to load: {type(err).__name__}: {err}") from err
    if not isinstance(config, Config):
        raise ConfigError("experiment", f"{path} must define `config = Config(...)`, found {type(config).__name__}")
    if config.name == Config.name:
        config.name = path.stem
    search_space = getattr(module, "search_space", None)
    if search_space is not None and not callable(search_space):
        raise ConfigError("search_space", f"{path}: search_space must be a function of an Optuna trial")
    config = apply_overrides(config, overrides or {})
    return Experiment(name=config.name, path=path, config=config, search_space=search_space)
