"""The search's Optuna journal file: Optuna's format and lock, with one fsync per burst of appends, not per append.

Optuna's JournalFileBackend fsyncs every record; a search appends about nine per trial (ask, four parameters, the
Ray id, an epoch's value, the end), a few ms each on a busy disk, paid while a worker waits for the driver. Here
each append is written at once (a killed driver loses nothing: the kernel holds it) and fsynced within
SYNC_AFTER_S along with the appends around it, and at exit. A power loss can lose the last SYNC_AFTER_S of records,
as it loses Ray's experiment state since its last save. Ray pickles the searcher, and this file with it.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
from typing import Any

from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

SYNC_AFTER_S = 0.5
UNPICKLED = ("file_lock", "guard", "timer", "at_exit")  # made again when a pickled journal is loaded


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
