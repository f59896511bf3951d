"""`search.trial_time_limit_s`: one attempt of a trial ends as failed once it has run that long, even when stuck.

The training loop polls the limit before each batch and after each epoch. A watchdog thread catches a trial stuck
inside one step (an enormous batch, data loading, a closed-form fit): past the deadline and a grace period it
raises TrialStopped in the trial's thread, which ends Python code at its next line; a thread stuck in native code
(a kernel, a system call) is left behind and the trial's end is taken over, from the watchdog (`on_stuck`).
"""

from __future__ import annotations

import ctypes
import math
import threading
import time
from collections.abc import Callable

from rnnlab.search_folder import TIME_LIMIT
from rnnlab.train import TrialStopped

GRACE_S = 5.0  # past the deadline, how long the polled check has to end the trial before the watchdog acts
INTERRUPT_WAIT_S = 5.0  # how long an interrupted thread has to leave the trial before its end is taken over


class TimeLimit:
    """The limit of one attempt. The trial's thread `watch`es it around run_trial and `end`s the watch after."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds if seconds else math.inf
        self.fired = self.took_over = False
        self.lock = threading.Lock()
        self.ended = threading.Event()
        self.reporting = 0.0  # since when the trial waits for Ray in a report (not stuck: Ray holds it); 0: not
        self.thread_id: int | None = None
        self.pending = False

    @property
    def reason(self) -> str:
        return f"{TIME_LIMIT}={self.seconds:g} (raise it, or 0 for no limit)"

    def exceeded(self) -> TrialStopped | None:
        """The stop to raise once the deadline has passed (the trial failed), else None."""
        if time.monotonic() < self.deadline:
            return None
        self.fired = True
        return TrialStopped(self.reason, "failed")

    def watch(self, on_stuck: Callable[[str], None]) -> None:
        """Start the watchdog over the calling thread; `on_stuck(reason)` runs in the watchdog if the thread is still
        inside the trial after its interrupt."""
        if not self.seconds:
            return
        self.thread_id = threading.get_ident()
        threading.Thread(target=self.run_watchdog, args=(on_stuck,), daemon=True, name="trial-time-limit").start()

    def end(self) -> bool:
        """The trial's thread has left the trial: no interrupt may reach it now. True if its end was taken over."""
        with self.lock:
            if self.pending:  # raised but not yet delivered (it was about to leave): withdrawn
                raise_in(self.thread_id, None)
                self.pending = False
            self.ended.set()
            return self.took_over

    def run_watchdog(self, on_stuck: Callable[[str], None]) -> None:
        wait = self.deadline + GRACE_S - time.monotonic()
        while not self.ended.wait(max(wait, 0.0)):
            wait = 0.5
            if self.reporting:
                continue  # Ray holds the trial in a report; once it returns, the polled check ends the trial
            with self.lock:
                if self.ended.is_set():
                    return
                self.fired = self.pending = True
                raise_in(self.thread_id, interrupt_type(self.reason))
            if self.ended.wait(INTERRUPT_WAIT_S):
                return  # the interrupt reached Python code: the trial records its own end
            with self.lock:
                if self.ended.is_set():
                    return
                self.took_over = True
            on_stuck(f"{self.reason}; stuck in native code {GRACE_S + INTERRUPT_WAIT_S:g} s past it")
            return


def interrupt_type(reason: str) -> type[TrialStopped]:
    """A TrialStopped the interpreter can raise by itself (it calls the class with no arguments)."""

    def init(exc: TrialStopped) -> None:
        TrialStopped.__init__(exc, reason, "failed")

    return type("TimeLimitExceeded", (TrialStopped,), {"__init__": init})


def raise_in(thread_id: int | None, exc_type: type[BaseException] | None) -> None:
    """Raise `exc_type` in thread `thread_id` at its next Python line (None withdraws one not yet raised)."""
    exc = ctypes.py_object(exc_type) if exc_type is not None else None
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), exc)
