"""Live progress of a search in the terminal: one compact line per trial event, with the counts and the best so far.

A `ray.tune.Callback` (passed through `RunConfig(callbacks=...)`): Ray 2.60's default output engine ignores a custom
`ProgressReporter`, but calls callbacks in the driver on every trial start, result, completion, retry and error.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ray.tune import Callback

from rnnlab.tune.searcher import is_finite
from rnnlab.tune.trainable import FINAL_KEY, stopped_reason

logger = logging.getLogger(__name__)


class SearchProgress(Callback):
    """Prints e.g. `[search 42s] 5/8 started | running 2 | paused 1 | done 2 | pruned 1 | errored 0 | best val/acc=0.91
    (a1b2)`. Paused: a started trial HyperBand (or PBT) holds at a milestone, with no worker, until it resumes or
    stops it; as Ray's trials list says (status PAUSED) at the event shown."""

    paused: set[str] = frozenset()  # an instance pickled in an older search's ray/tuner.pkl has none of its own

    def __init__(self, metric: str, mode: str, total: int):
        self.metric, self.mode, self.total = metric, mode, total
        self.t0 = time.time()
        self.started: set[str] = set()
        self.running: set[str] = set()  # started and not ended: running or paused
        self.paused = set()
        self.counts = {"done": 0, "pruned": 0, "errored": 0}
        self.last: dict[str, dict[str, Any]] = {}
        self.best: tuple[float, str] | None = None

    def better(self, value: float) -> bool:
        if self.best is None:
            return True
        return value > self.best[0] if self.mode == "max" else value < self.best[0]

    def show(self, event: str) -> None:
        best = f"{self.metric}={self.best[0]:.4g} ({self.best[1]})" if self.best else f"{self.metric}=-"
        counts = " | ".join(f"{k} {v}" for k, v in self.counts.items())
        running = len(self.running - self.paused)
        line = (
            f"[search {time.time() - self.t0:.0f}s] {len(self.started)}/{self.total} started | "
            f"running {running} | paused {len(self.paused & self.running)} | {counts} | best {best}  <- {event}"
        )
        logger.info(line)

    def see_paused(self, trials: list) -> None:
        """The trials Ray holds paused now (every hook passes the whole list)."""
        self.paused = {t.trial_id for t in trials if t.status == "PAUSED"}

    def on_step_end(self, iteration: int, trials: list, **info) -> None:
        self.see_paused(trials)

    def on_trial_start(self, iteration: int, trials: list, trial, **info) -> None:
        self.see_paused(trials)
        resumed = trial.trial_id in self.started  # a paused trial given a worker again
        self.started.add(trial.trial_id)
        self.running.add(trial.trial_id)
        self.paused.discard(trial.trial_id)
        self.show(f"{trial.trial_id} {'resumed' if resumed else 'started'}")

    def on_trial_result(self, iteration: int, trials: list, trial, result: dict, **info) -> None:
        self.last[trial.trial_id] = result

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        self.see_paused(trials)
        self.running.discard(trial.trial_id)
        result = self.last.get(trial.trial_id) or trial.last_result or {}
        if not result.get(FINAL_KEY):
            self.counts["pruned"] += 1
            event = f"{trial.trial_id} {stopped_reason(result)}"
        elif result.get("status") == "diverged":
            self.counts["pruned"] += 1
            event = f"{trial.trial_id} diverged"
        elif result.get("status") in ("failed", "out_of_memory"):  # its own end (a bad parameter, its time limit)
            self.counts["errored"] += 1
            event = f"{trial.trial_id} {result['status']}: {str(result.get('reason', ''))[:200]}"
        elif not is_finite(value := result.get(self.metric)):  # the searcher fails it: "no finite value of ..."
            self.counts["errored"] += 1
            event = f"{trial.trial_id} failed: no finite value of {self.metric} in its result"
        else:  # best: of the finished trials only, by the value Optuna is told, as the report's best trial is
            self.counts["done"] += 1  # (it took any epoch of a running trial, which might later diverge or fail)
            if self.better(value):
                self.best = (float(value), trial.trial_id)
            event = f"{trial.trial_id} finished ({self.metric}={value:.4g})"
        self.show(event)

    def on_trial_recover(self, iteration: int, trials: list, trial, **info) -> None:
        self.see_paused(trials)
        self.show(f"{trial.trial_id} failed; retrying from its last checkpoint")

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        self.see_paused(trials)
        self.running.discard(trial.trial_id)
        self.counts["errored"] += 1
        self.show(f"{trial.trial_id} errored (see the report's failed trials)")
