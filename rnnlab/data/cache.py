"""On-disk cache of prepared `TaskData`, keyed by a fingerprint of raw data, config, seed and preprocessing code.

The code in the key is `PREPARATION_CODE`, the one list of the modules whose code determines prepared data: the data
package (sources, splits, encoders, built-in generators, the first six preparers) and the tasks package (each
task's `prepare` and split rules), plus the modules of a task defined outside them. Editing any of them makes
every earlier entry a miss, so a run never trains on data prepared by older code.

Writes are atomic (temporary file, fsync, `os.replace`), so concurrent trials never read a torn file; a file that
fails to load is treated as a miss and rebuilt.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import io
import json
import logging
import os
from pathlib import Path

import torch

from rnnlab.checkpoint import atomic_write_bytes
from rnnlab.config import ConfigError, DataConfig
from rnnlab.data.taskdata import TaskData, from_plain, to_plain

log = logging.getLogger(__name__)

UNKEYED_FIELDS = ("cache_dir",)  # DataConfig fields that do not change the prepared data
PACKAGE = Path(__file__).resolve().parents[1]  # rnnlab/
PREPARATION_CODE = ("data/*.py", "tasks/*.py")  # under PACKAGE: every module whose code determines prepared data


def cache_root(cfg: DataConfig) -> Path:
    """`data.cache_dir`, else $RNNLAB_CACHE, else ~/.cache/rnnlab."""
    root = cfg.cache_dir or os.environ.get("RNNLAB_CACHE") or "~/.cache/rnnlab"
    return Path(root).expanduser()


def check_cache_root(cfg: DataConfig) -> None:
    """A cache root that exists as something other than a folder is a ConfigError naming where it came from (it
    failed with a raw FileExistsError once the data had been prepared)."""
    root = cache_root(cfg)
    if root.exists() and not root.is_dir():
        source = "data.cache_dir" if cfg.cache_dir else "RNNLAB_CACHE" if os.environ.get("RNNLAB_CACHE") else "~/.cache"
        raise ConfigError(source, f"the data cache {root} is a file, not a folder; point {source} at a folder")


def preparation_modules(task: object = None) -> list[Path]:
    """The source files hashed into the key: `PREPARATION_CODE`, and the modules of `task`'s classes and of its
    `prepare` when they live elsewhere (a task added outside rnnlab/tasks)."""
    paths = {path.resolve() for pattern in PREPARATION_CODE for path in PACKAGE.glob(pattern)}
    if task is not None:
        for obj in (*type(task).__mro__, getattr(type(task), "prepare", None)):
            source = getattr(inspect.getmodule(obj), "__file__", None)  # None for builtins
            if source and source.endswith(".py"):
                paths.add(Path(source).resolve())
    return sorted(paths)


def code_hash(task: object = None) -> str:
    """Hash of the preparation code's source: editing a preparer, an encoder or a generator invalidates old
    cache entries."""
    digest = hashlib.sha256()
    for path in preparation_modules(task):
        digest.update(str(path.relative_to(PACKAGE) if path.is_relative_to(PACKAGE) else path).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def fingerprint(cfg: DataConfig, seed: int, raw_identity: object, task: object = None) -> str:
    """Hex digest of everything the prepared data depends on (`task`: the `rnnlab.tasks.Task` preparing it)."""
    fields = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in UNKEYED_FIELDS}
    key = {"raw": raw_identity, "config": fields, "seed": seed, "code": code_hash(task)}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:32]


def cache_path(cfg: DataConfig, key: str) -> Path:
    return cache_root(cfg) / f"{cfg.task}-{key}.pt"


def read_cached(path: Path) -> TaskData | None:
    """The cached TaskData at `path`, or None when it is missing or unreadable."""
    if not path.exists():
        return None
    try:
        return from_plain(torch.load(path, weights_only=True))
    except Exception as err:  # a torn or foreign file: rebuild rather than fail the trial
        log.warning("ignoring unreadable data cache %s (%s)", path, err)
        return None


def write_cached(path: Path, data: TaskData) -> None:
    """Atomic write: readers see the old file or the new one, never half of one."""
    buffer = io.BytesIO()
    torch.save(to_plain(data), buffer)
    atomic_write_bytes(path, buffer.getvalue())
