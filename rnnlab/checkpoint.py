"""Atomic per-epoch checkpoints: `epoch_NNNN/state.pt` plus a `COMPLETE` marker holding the file's sha256.

A checkpoint is written to a temporary file, fsynced and renamed; the marker is written last, the same way. A
checkpoint without a valid marker (a kill during a save, a truncated or flipped file) is skipped with a warning
and the previous valid one is used. Checkpoints hold only tensors and plain types and load with weights_only=True.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

MARKER = "COMPLETE"
STATE = "state.pt"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def save_checkpoint(root: Path, epoch: int, state: dict[str, Any], keep: int = 2) -> Path:
    """Write `state` as `root/epoch_{epoch:04d}` and keep the newest `keep` complete checkpoints."""
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    folder = Path(root) / f"epoch_{epoch:04d}"
    (folder / MARKER).unlink(missing_ok=True)  # re-saving an epoch: invalid until the new marker lands
    atomic_write_bytes(folder / STATE, data)
    atomic_write_bytes(folder / MARKER, hashlib.sha256(data).hexdigest().encode())
    for old in list_checkpoints(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return folder


def list_checkpoints(root: Path) -> list[Path]:
    root = Path(root)
    return sorted(p for p in root.glob("epoch_*") if p.is_dir()) if root.exists() else []


def is_valid(folder: Path) -> bool:
    marker, state = Path(folder) / MARKER, Path(folder) / STATE
    if not (marker.exists() and state.exists()):
        return False
    return hashlib.sha256(state.read_bytes()).hexdigest() == marker.read_text().strip()


def load_checkpoint(folder: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The state in one checkpoint folder (validated), loaded with weights_only=True."""
    folder = Path(folder)
    if not is_valid(folder):
        raise ValueError(f"checkpoint {folder} is incomplete or corrupted")
    return torch.load(folder / STATE, map_location=map_location, weights_only=True)


def load_latest(root_or_folder: Path, map_location: str | torch.device = "cpu") -> dict[str, Any] | None:
    """The newest valid checkpoint under `root` (or `root` itself if it is one); None if there is none."""
    path = Path(root_or_folder)
    candidates = [path] if (path / STATE).exists() else list_checkpoints(path)
    for folder in reversed(candidates):
        if is_valid(folder):
            return torch.load(folder / STATE, map_location=map_location, weights_only=True)
        warnings.warn(f"rnnlab: checkpoint {folder} is incomplete or corrupted; using the previous one", stacklevel=2)
    return None
