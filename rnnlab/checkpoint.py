"""Atomic per-epoch checkpoints: `epoch_NNNN/state.pt` plus a `COMPLETE` marker holding the file's sha256.

Each file is written to a temporary file and renamed into place, state first, marker last. A checkpoint without
a valid marker (a kill during a save, a truncated or flipped file) is skipped with a warning and the previous
valid one is used. Checkpoints hold only tensors and plain types and load with weights_only=True.

Durability (fsync of both files and both folders) comes after the renames and only then are older checkpoints
deleted. `CheckpointWriter` does that part on a background thread so training does not wait on the disk. A power
loss after the renames but before the fsyncs can leave a marker whose state never reached the disk: its sha256
then mismatches, the checkpoint is rejected, and the previous one is used; it is durable (the writer finishes
one save's fsyncs before starting the next) and still there (deletion waits for the newer one's fsyncs).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

MARKER = "COMPLETE"
STATE = "state.pt"


def _fsync(path: Path) -> None:
    """Flush a file's or a folder's entries to disk (a folder's fsync makes the renames inside it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace(path: Path, data: bytes, fsync: bool) -> None:
    """Write `data` to a temporary file beside `path` and rename it over `path`; fsync the file first if asked."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes, durable: bool = True) -> None:
    """Replace `path` with `data` atomically and durably: readers see the old or the new file, never a mix.

    durable=False skips the two fsyncs (a few ms each on a busy disk) for a file that is rewritten durably later
    or no more durable than what it describes: still atomic, and whole after any kill short of a power loss."""
    _replace(path, data, fsync=durable)
    if durable:
        _fsync(path.parent)


def _write_checkpoint(root: Path, epoch: int, state: dict[str, Any]) -> Path:
    """Serialise `state` and rename `state.pt`, then the marker, into `root/epoch_NNNN`; nothing is fsynced."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    folder = root / f"epoch_{epoch:04d}"
    (folder / MARKER).unlink(missing_ok=True)  # re-saving an epoch: invalid until the new marker lands
    _replace(folder / STATE, data, fsync=False)
    _replace(folder / MARKER, hashlib.sha256(data).hexdigest().encode(), fsync=False)
    return folder


def _make_durable(root: Path, folder: Path, keep: int) -> None:
    """fsync a written checkpoint (files, its folder, the root), then delete all but the newest `keep`."""
    _fsync(folder / STATE)
    _fsync(folder / MARKER)
    _fsync(folder)
    _fsync(root)
    for old in list_checkpoints(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def save_checkpoint(root: Path, epoch: int, state: dict[str, Any], keep: int = 2) -> Path:
    """Write `state` as `root/epoch_{epoch:04d}` and keep the newest `keep` complete checkpoints; durable on return."""
    folder = _write_checkpoint(Path(root), epoch, state)
    _make_durable(Path(root), folder, keep)
    return folder


class CheckpointWriter:
    """`save_checkpoint` with the fsyncs and the deletion of old checkpoints on one background thread.

    `save` returns once the files are renamed into place (complete for any reader, e.g. Ray copying the folder);
    it first waits for the previous save's durability work, so at most one is in flight and its error, if any,
    is raised by the next `save` or by `close`. Use it as a context manager (`with CheckpointWriter(root) as w:`):
    leaving the block closes it, and an error of training is never masked by a durability error.
    """

    def __init__(self, root: Path, keep: int = 2):
        self.root, self.keep = Path(root), keep
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rnnlab-checkpoint")
        self.pending: Future | None = None

    def wait(self) -> None:
        """Block until the pending durability work is done; raise its error once."""
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.result()

    def save(self, epoch: int, state: dict[str, Any]) -> Path:
        self.wait()
        folder = _write_checkpoint(self.root, epoch, state)
        self.pending = self.executor.submit(_make_durable, self.root, folder, self.keep)
        return folder

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self.executor.shutdown()

    def __enter__(self) -> CheckpointWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()  # the last checkpoint is durable, or its error is raised
            return
        try:  # training already failed: its error is the one to see; a durability error only warns
            self.close()
        except Exception as err:
            logger.warning(f"making the last checkpoint durable also failed: {err}")


def list_checkpoints(root: Path) -> list[Path]:
    root = Path(root)
    return sorted(p for p in root.glob("epoch_*") if p.is_dir()) if root.exists() else []


def marker_matches(state: bytes, marker: bytes) -> bool:
    """A checkpoint's state against its COMPLETE marker (the state's sha256, hex): whole, or torn."""
    return hashlib.sha256(state).hexdigest() == marker.decode().strip()


def is_valid(folder: Path) -> bool:
    marker, state = Path(folder) / MARKER, Path(folder) / STATE
    if not (marker.exists() and state.exists()):
        return False
    return marker_matches(state.read_bytes(), marker.read_bytes())


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
        logger.warning(f"checkpoint {folder} is incomplete or corrupted; using the previous one")
    return None
