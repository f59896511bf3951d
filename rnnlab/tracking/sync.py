"""`rnnlab sync`: find the offline W&B runs under a folder and upload them with `wandb sync`, one at a time."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

from rnnlab.config import ConfigError

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


def finished(run_dir: Path) -> bool:
    """The run's log holds its exit record: nothing more will be written to it (a finished trial of a search)."""
    from rnnlab.tracking.wandb_log import wait_for_exit_record

    return all(wait_for_exit_record(log, 0) for log in run_dir.glob("*.wandb"))


def writer_of(run_dir: Path) -> str | None:
    """The live rnnlab process still writing the run (a run or search holding a folder above it), or None.

    `wandb sync` of a run still being written uploads its rows so far and marks it synced, and the rows logged
    after were then never uploaded (a sync during a search); such a run waits for its writer to end."""
    from rnnlab.folder_lock import FolderBusy, describe, read_holder, refuse_if_busy

    for folder in run_dir.parents:
        try:
            refuse_if_busy(folder, "path")
        except FolderBusy:
            return f"{folder} is in use by {describe(read_holder(folder))}"
    return None


def copied_search_run(run_dir: Path) -> str | None:
    """Why a search-level run (`<search folder>/wandb/`) is not this search's to upload, or None when it is.

    A copied or moved search folder holds the search-level run of the search it was copied from, under that
    search's run id (`search_run_id`); the copy draws its own id (`SearchSpec.relocated`). Uploaded from the copy,
    the old run's trials Table, as it was when the folder was copied, would overwrite the original's."""
    from rnnlab.search_folder import SEARCH_FILE, SearchSpec
    from rnnlab.tracking.search import search_run_id

    folder = run_dir.parent.parent
    if run_dir.parent.name != "wandb" or not (folder / SEARCH_FILE).is_file():
        return None
    with contextlib.suppress(ConfigError, OSError):  # a search.json rnnlab cannot read: its runs sync as before
        own = search_run_id(SearchSpec.load(folder))
        run_id = run_dir.name.split("-", 3)[-1]  # offline-run-<date>_<time>-<run id>[-<part>]
        if run_id != own and not run_id.startswith(f"{own}-"):
            return (
                f"not uploaded: {run_id} is the search-level run of the search this folder was copied or moved "
                "from, and uploading it from here would overwrite that search's trials Table with this copy of it; "
                f"sync it from that search's folder. This search writes its own at `rnnlab tune {folder} --resume`"
            )
    return None


def sync_offline_runs(path: str | Path, timeout: float = SYNC_TIMEOUT_S) -> dict[Path, tuple[str, str]]:
    """Sync every offline run under `path` not yet synced, one at a time so a resumed trial's parts stay in order;
    (status, message) per run, status "synced", "skipped" or "FAILED". A run still being written (no exit record,
    and a live process holds its folder), or that another `rnnlab sync` is uploading (it holds the run's own
    folder), is left for a later sync; the search-level run a copied search folder holds is not uploaded from it
    (`copied_search_run`)."""
    from rnnlab.folder_lock import FolderBusy, FolderLock, describe, read_holder

    results = {}
    for run_dir in find_offline_runs(path):
        if (why := copied_search_run(run_dir)) is not None:
            results[run_dir] = ("skipped", why)
            continue
        try:
            with FolderLock(run_dir, "path"):  # one upload at a time: a second sync uploaded the run again
                ok, message = sync_one(run_dir, timeout)
        except FolderBusy:
            holder = describe(read_holder(run_dir))
            ok, message = False, f"not yet: {holder} is uploading it; sync it again once that has ended"
        except ConfigError as err:  # its folder is read-only: wandb could not mark it synced either
            ok, message = False, str(err)
        results[run_dir] = ("synced" if ok else "FAILED", message)
    return results


def sync_one(run_dir: Path, timeout: float) -> tuple[bool, str]:
    if is_synced(run_dir):
        return True, "already synced"
    if finished(run_dir):
        return sync_run(run_dir, timeout)
    if (writer := writer_of(run_dir)) is not None:
        return False, f"not yet: {writer}; sync it again once that has ended"
    ok, message = sync_run(run_dir, timeout)  # its writer died: what it logged is all there will be
    return ok, f"{message}; its log has no end (its process died): W&B shows it crashed" if ok else message
