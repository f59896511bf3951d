"""One holder at a time per run folder and per search folder: `<folder>/.rnnlab.lock`, an flock naming its holder.

The holder keeps an exclusive `flock` on the file for as long as it runs and writes its pid, host, start time and
command into it. A second process is refused (`FolderBusy`, exit 2) with the holder named. The kernel drops the lock
when its process dies however it dies, so a lock left by a dead process is taken over by the next one; the file
itself stays and names the last holder.

On NFS, Linux turns `flock` into a POSIX lock the server arbitrates (NLM on NFSv3, the protocol's own on NFSv4):
two machines are kept apart as on one disk, and a crashed machine's lock is released when the server's lease
expires (about 90 s on NFSv4). A mount with `nolock` (or `local_lock=flock`) keeps locks on each machine only:
then two hosts are not kept apart.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from rnnlab.config import ConfigError

LOCK_FILE = ".rnnlab.lock"


class FolderBusy(ConfigError):
    """Another live process holds the folder."""


def describe(holder: dict) -> str:
    if not holder:
        return "another process (it has not written its name yet)"
    return (
        f"pid {holder.get('pid')} on {holder.get('host')} since {holder.get('started')} ({holder.get('command', '?')})"
    )


def read_holder(folder: str | Path) -> dict:
    try:
        return json.loads(Path(folder, LOCK_FILE).read_text())
    except (OSError, ValueError):
        return {}


class FolderLock:
    """`with FolderLock(folder, flag):` holds `folder` or raises FolderBusy naming the holder and `flag`."""

    def __init__(self, folder: str | Path, flag: str):
        self.folder, self.flag = Path(folder), flag
        self.fd: int | None = None

    def acquire(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise ConfigError(
                self.flag, f"cannot write in {self.folder} ({err.strerror}); choose another folder"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            refuse_if_busy(self.folder, self.flag)  # raises, naming the holder
            raise FolderBusy(self.flag, f"{self.folder} is in use; wait, or choose another folder") from None
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": " ".join(["rnnlab", *sys.argv[1:]])[:300],
        }
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps(holder) + "\n").encode())
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def refuse_if_busy(folder: Path, flag: str) -> None:
    """Raise FolderBusy if a live process holds `folder`; touch nothing (a lock file is only opened to read)."""
    try:
        fd = os.open(folder / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise FolderBusy(
            flag, f"{folder} is in use by {describe(read_holder(folder))}; wait for it to end, or choose another folder"
        ) from None
    finally:
        os.close(fd)


@contextlib.contextmanager
def hold_folder(
    folder: str | Path, flag: str, check: Callable[[], None] = lambda: None, started: Callable[[], bool] | None = None
) -> Iterator[FolderLock]:
    """Hold `folder` for the block, after `check()` passed before (nothing written if it fails) and again once held
    (another process may have just used the folder). A folder this call created and nothing but the lock went
    into (or, given `started`, whose work never started) is removed again, so an attempt that failed before its
    work began leaves nothing that blocks the next."""
    folder = Path(folder)
    refuse_if_busy(folder, flag)
    check()
    existed = folder.exists()
    lock = FolderLock(folder, flag)
    lock.acquire()
    try:
        check()
        yield lock
    finally:
        lock.release()
        empty = [p.name for p in folder.iterdir()] == [LOCK_FILE]
        if not existed and (empty or (started is not None and not started())):
            shutil.rmtree(folder, ignore_errors=True)
