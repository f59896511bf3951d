"""`rnnlab sync`: find the offline W&B runs under a folder and upload them with `wandb sync`, one at a time."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SYNC_TIMEOUT_S = 300.0  # per run: no network must end in a failure, not a hang


def find_offline_runs(path: str | Path) -> list[Path]:
    """Offline run folders (`offline-run-*` holding a `.wandb` log) under `path`, oldest first per trial."""
    root = Path(path)
    if root.name.startswith("offline-run-") and any(root.glob("*.wandb")):
        return [root]
    return sorted(
        (p for p in root.rglob("offline-run-*") if p.is_dir() and any(p.glob("*.wandb"))),
        key=lambda p: (p.parent, p.name),
    )


def is_synced(run_dir: Path) -> bool:
    return any(run_dir.glob("*.wandb.synced"))


def sync_run(run_dir: Path, timeout: float = SYNC_TIMEOUT_S) -> tuple[bool, str]:
    """Upload one offline run with `wandb sync`; (ok, message). wandb marks success with a `.wandb.synced` file."""
    cmd = [sys.executable, "-m", "wandb", "sync", str(run_dir)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return False, f"no answer from the W&B server within {timeout:.0f}s (network?)"
    if is_synced(run_dir):
        return True, "synced"
    lines = [ln.strip() for ln in (done.stdout + done.stderr).splitlines() if ln.strip()]
    return False, lines[-1] if lines else f"wandb sync exited with code {done.returncode}"


def sync_offline_runs(path: str | Path, timeout: float = SYNC_TIMEOUT_S) -> dict[Path, tuple[bool, str]]:
    """Sync every offline run under `path` not yet synced, one at a time so a resumed trial's parts stay in order."""
    results = {}
    for run_dir in find_offline_runs(path):
        results[run_dir] = (True, "already synced") if is_synced(run_dir) else sync_run(run_dir, timeout)
    return results
