"""On-disk cache of prepared `TaskData`, keyed by a fingerprint of raw data, config, seed and preprocessing code.

Writes are atomic (temporary file, fsync, `os.replace`), so concurrent trials never read a torn file; a file that
fails to load is treated as a miss and rebuilt.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import os
from pathlib import Path

import torch

from rnnlab.checkpoint import atomic_write_bytes
from rnnlab.config import DataConfig
from rnnlab.data.taskdata import TaskData, from_plain, to_plain

log = logging.getLogger(__name__)

UNKEYED_FIELDS = ("cache_dir",)  # DataConfig fields that do not change the prepared data
CODE_DIR = Path(__file__).parent  # every module here takes part in preprocessing


def cache_root(cfg: DataConfig) -> Path:
    """`data.cache_dir`, else $RNNLAB_CACHE, else ~/.cache/rnnlab."""
    root = cfg.cache_dir or os.environ.get("RNNLAB_CACHE") or "~/.cache/rnnlab"
    return Path(root).expanduser()


def code_hash() -> str:
    """Hash of the data package's source: editing a preprocessing function invalidates old cache entries."""
    digest = hashlib.sha256()
    for path in sorted(CODE_DIR.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def fingerprint(cfg: DataConfig, seed: int, raw_identity: object) -> str:
    """Hex digest of everything the prepared data depends on."""
    fields = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in UNKEYED_FIELDS}
    key = {"raw": raw_identity, "config": fields, "seed": seed, "code": code_hash()}
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
