"""The search's Optuna journal file: Optuna's format and lock, with one fsync per burst of appends, not per append.

Optuna's JournalFileBackend fsyncs every record; a search appends about nine per trial (ask, four parameters, the
Ray id, an epoch's value, the end), a few ms each on a busy disk, paid while a worker waits for the driver. Here
each append is written at once (a killed driver loses nothing: the kernel holds it) and fsynced within
SYNC_AFTER_S along with the appends around it, and at exit. A power loss can lose the last SYNC_AFTER_S of records,
as it loses Ray's experiment state since its last save. Ray pickles the searcher, and this file with it.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

SYNC_AFTER_S = 0.5
STALE_S = 30.0  # Optuna's own grace period for a lock nobody releases
LOCK_SUFFIX = ".lock"  # JournalFileSymlinkLock's lock on a journal is the symlink `<journal>.lock`
UNPICKLED = ("file_lock", "guard", "timer", "at_exit")  # made again when a pickled journal is loaded


def clear_stale_lock(path: str, say: Callable[[str], None]) -> None:
    """Before a driver writes: a lock on the journal older than STALE_S is a writer's that died holding it (a driver
    killed mid-append; a live writer holds it for milliseconds) and is removed; a younger one is waited for, and
    said, until it is released or that old. Optuna's writer waits 30 s for a dead lock, saying so only in its log,
    which rnnlab quiets: a resume stalled without a word."""
    lock, name, waiting = path + LOCK_SUFFIX, os.path.basename(path), False
    while True:
        try:
            held = os.lstat(lock)
        except FileNotFoundError:
            return
        age = time.time() - held.st_mtime
        if age >= STALE_S:
            with contextlib.suppress(FileNotFoundError):
                if os.lstat(lock).st_ino == held.st_ino:  # still that lock, not a new writer's
                    os.unlink(lock)
                    say(f"removed the lock on {name} that a writer which died left {age:.0f} s ago")
            continue
        if not waiting:
            waiting = True
            say(
                f"{name} is locked (another process writing it, or a driver killed while writing); waiting for "
                f"it, at most {STALE_S - age:.0f} s"
            )
        time.sleep(min(1.0, STALE_S - age))


class JournalFile(JournalFileBackend):
    """A JournalFileBackend whose appends are made durable together, within SYNC_AFTER_S."""

    def __init__(self, path: str):
        super().__init__(path)
        self.path = path
        self.start_syncing()

    def start_syncing(self) -> None:
        self.file_lock = JournalFileSymlinkLock(self.path)  # the lock Optuna's own writers take
        self.guard, self.timer, self.at_exit = threading.Lock(), None, False

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        data = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs).encode()
        with self.guard:
            self.file_lock.acquire()
            try:
                with open(self.path, "ab") as f:
                    f.write(data)
            finally:
                self.file_lock.release()
            if self.timer is None:
                self.timer = threading.Timer(SYNC_AFTER_S, self.sync)
                self.timer.daemon = True
                self.timer.start()
            if not self.at_exit:  # a driver that ends within SYNC_AFTER_S of its last append
                atexit.register(self.sync)
                self.at_exit = True

    def sync(self) -> None:
        with self.guard:
            self.timer = None
            try:
                fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:  # the search folder was removed since (rnnlab.search, then rmtree): a traceback
                return  # at the interpreter's exit, from this atexit sync; nothing is left to make durable
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in UNPICKLED}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.start_syncing()
