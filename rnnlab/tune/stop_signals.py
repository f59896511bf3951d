"""SIGTERM stops a search as SIGINT does: Ray Tune saves its state, the running trials record where they stopped,
and `rnnlab tune S --resume` continues them; the driver exits 143.

A batch scheduler (SLURM at a job's time limit, Kubernetes evicting a pod, a spot instance's preemption) and `kill`
end a process with SIGTERM. In the driver `ray.init` installs a handler that raises SystemExit wherever the main
thread is: inside Tune's loop, which then saved no state, and the driver's failure handling ended every running
trial FAIL ("the driver failed (SystemExit: 15)"), counted in the budget and never resumed. Here SIGTERM fires the
handler SIGINT has at that moment: Tune's own during `Tuner.fit` (it sets Tune's stop event and puts the previous
SIGINT handler back, so a second signal interrupts Tune's cleanup as a second Ctrl-C does), and elsewhere (the
checks before launch, between a resume's two launches, the report) raises `Terminated`, a KeyboardInterrupt.
A SIGTERM to the driver's whole process group ends its local Ray too: then the driver exits once the trials have
recorded their stop (`exit_once_ray_is_gone`), as Tune's clean stop cannot finish without Ray.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rnnlab.records import RESULT_FILE

TERMINATED: list[str] = []  # the signal's name once one came during the search: its exit code is 143, not 130
SEARCH: list[Search] = []  # the search being run, while it is
RAY_GONE_POLL_S, RAY_GONE_WAIT_S = 0.5, 120.0
RECORD_WAIT_S = 20.0  # for the trials to record their stop (SLURM's KillWait, the grace before SIGKILL, is 30 s)
STANDING_DOWN = threading.Event()  # rnnlab shuts its Ray down itself, or the search is over: a raylet gone says nothing


@dataclass(frozen=True)
class Search:
    """What the driver needs of its search should a SIGTERM take its local Ray down too."""

    resume: str  # the command that continues it
    save: Callable[[], None]  # puts its record where the resume reads it (a bucket's copy)
    trials: Path  # its trials' folders, each naming the worker that runs it (`pid`)


class Terminated(KeyboardInterrupt):
    """SIGTERM outside Tune's loop: handled where a Ctrl-C is."""


def on_sigterm(signum: int, frame) -> None:
    TERMINATED.append(signal.Signals(signum).name)
    if len(TERMINATED) == 1 and SEARCH and (raylets := children_named(os.getpid(), "raylet")):
        # not the raylet's children: dying with it, they may be the init process's already
        args = (raylets, unrecorded(SEARCH[0].trials), SEARCH[0])
        watch = threading.Thread(target=exit_once_ray_is_gone, args=args, daemon=True)
        watch.start()
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler) and handler is not signal.default_int_handler:
        handler(signal.SIGINT, frame)  # Tune's: stop the run, save its state
        return
    raise Terminated(f"terminated by {signal.Signals(signum).name}")


def children_named(parent: int, name: str) -> list[int]:
    """The processes whose parent is `parent` named `name`, from Linux's /proc; none elsewhere. The raylets of the
    driver are those of a local Ray it started (`ray.init()` without an address), none with a cluster's."""
    found = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        fields = read_stat(stat)
        if fields is not None and int(fields[2]) == parent and fields[0] == name:
            found.append(int(stat.split("/")[2]))
    return found


def gone(pid: int) -> bool:
    fields = read_stat(f"/proc/{pid}/stat")
    return fields is None or fields[1] in "ZX"


def read_stat(path: str) -> list[str] | None:
    """/proc/PID/stat as [name, state, parent pid, ...]; None for a process that is gone."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    return [text[text.index("(") + 1 : text.rindex(")")], *text[text.rindex(")") + 2 :].split()]


def unrecorded(trials: Path) -> list[Path]:
    """The folders of the trials whose worker (`pid`) runs and that have no end recorded yet."""
    running = []
    for pid_file in trials.glob("*/pid"):
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text())
            if not gone(pid) and not (pid_file.parent / RESULT_FILE).exists():
                running.append(pid_file.parent)
    return running


def exit_once_ray_is_gone(raylets: list[int], running: list[Path], search: Search) -> None:
    """A SIGTERM to the driver's whole process group (`kill -TERM -PGID`, SLURM at a time limit) ends its local
    Ray's own processes too; Tune, stopping its trials, then waited on the dead raylet until Ray ended the driver
    60 s later with exit code 1, saying nothing useful. Once the raylet is gone (Tune's clean stop cannot finish)
    and the running trials, whose workers got the signal too, have recorded where they stopped (trainable.py; a
    worker lingers after that), the driver saves what it must (a bucket's copy of the journal) and exits
    143. Tune's state is as of its last save; the resume sets the study right from the trial folders."""
    deadline = time.monotonic() + RAY_GONE_WAIT_S
    while time.monotonic() < deadline and not all(gone(pid) for pid in raylets):
        if STANDING_DOWN.is_set():  # Tune's stop finished: the clean path goes on
            return
        time.sleep(RAY_GONE_POLL_S)
    if STANDING_DOWN.is_set() or not all(gone(pid) for pid in raylets):
        return
    deadline = time.monotonic() + RECORD_WAIT_S
    while time.monotonic() < deadline and not all((out / RESULT_FILE).exists() for out in running):
        time.sleep(RAY_GONE_POLL_S)
    with contextlib.suppress(Exception):  # a bucket out of reach: the local folder has the record
        search.save()
    logging.getLogger("rnnlab.tune.driver").warning(
        "search stopped by SIGTERM, which reached its local Ray too (a signal to the whole process group), and its "
        f"running trials. Continue it (or write its report) with: {search.resume}"
    )
    sys.stderr.flush()
    os._exit(143)


@contextlib.contextmanager
def sigterm_stops_search(search: Search | None = None) -> Iterator[None]:
    """SIGTERM stops the search within this block as SIGINT does; the previous handler comes back after it.
    Should the signal take the local Ray down too, the driver exits once `search`'s running trials have recorded
    their stop, saying how to resume it."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    TERMINATED.clear()
    SEARCH[:] = [search] if search else []
    STANDING_DOWN.clear()
    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        SEARCH.clear()
        STANDING_DOWN.set()


@contextlib.contextmanager
def keep_sigterm_handler() -> Iterator[None]:
    """Around `ray.init`, which replaces the driver's SIGTERM handler with its own (an immediate SystemExit): a
    handler installed before it (`sigterm_stops_search`) is put back; the default one keeps Ray's."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        if callable(before):
            signal.signal(signal.SIGTERM, before)
