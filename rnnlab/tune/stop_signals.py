"""SIGTERM stops a search as SIGINT does: Ray Tune saves its state, the running trials record where they stopped,
and `rnnlab tune S --resume` continues them; the driver exits 143.

A batch scheduler (SLURM at a job's time limit, Kubernetes evicting a pod, a spot instance's preemption) and `kill`
end a process with SIGTERM. In the driver `ray.init` installs a handler that raises SystemExit wherever the main
thread is: inside Tune's loop, which then saved no state, and the driver's failure handling ended every running
trial FAIL ("the driver failed (SystemExit: 15)"), counted in the budget and never resumed. Here SIGTERM fires the
handler SIGINT has at that moment: Tune's own during `Tuner.fit` (it sets Tune's stop event and puts the previous
SIGINT handler back, so a second signal interrupts Tune's cleanup as a second Ctrl-C does), and elsewhere (the
checks before launch, between a resume's two launches, the report) raises `Terminated`, a KeyboardInterrupt.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

TERMINATED: list[str] = []  # the signal's name once one came during the search: its exit code is 143, not 130


class Terminated(KeyboardInterrupt):
    """SIGTERM outside Tune's loop: handled where a Ctrl-C is."""


def on_sigterm(signum: int, frame) -> None:
    TERMINATED.append(signal.Signals(signum).name)
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler) and handler is not signal.default_int_handler:
        handler(signal.SIGINT, frame)  # Tune's: stop the run, save its state
        return
    raise Terminated(f"terminated by {signal.Signals(signum).name}")


@contextlib.contextmanager
def sigterm_stops_search() -> Iterator[None]:
    """SIGTERM stops the search within this block as SIGINT does; the previous handler comes back after it."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    TERMINATED.clear()
    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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
