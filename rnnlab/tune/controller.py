"""Ray Tune's trial controller with one fault of worker reuse made right: a reused worker that died while idle.

With `search.reuse_workers`, Ray keeps a finished trial's worker idle for the next trial and hands it over with a
`reset` call. If the worker was killed meanwhile (SIGKILL, the OOM killer), Ray (2.60) learns of it from that call
and handles the one death twice: as the actor's failure, which retries the trial (it never ran a step: a transient
fault, within search.max_failures), then as the reset call's failure, which ends the same trial as errored and tells
the searcher (Optuna: FAIL, "Ray recorded no error file"). Here the second is dropped, the trial is no longer
counted as being reset (or Ray would wait for that reset forever instead of starting a fresh worker), and the error
of a trial that does end errored reaches the searcher, whose reason then names it.

`installed()` puts this controller in place of Ray's for the duration of one `Tuner.fit` in this process.

All of it is Ray's private API (TuneController's _actor_failed, _trial_task_failure, _process_trial_failure,
_actor_to_trial, _pending_trials, _paused_trials, _resetting_trials; tune.tune.TuneController), as of Ray 2.60:
pyproject.toml bounds ray below 2.61 for it, and tests/test_idle_worker_kill.py fails if a Ray changes it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ray.tune.execution.tune_controller import TuneController

# a trial id -> the error Ray ended it with, for the searcher's reason (Ray writes error.txt in its staging folder,
# synced to the search folder only later)
RAY_ERRORS: dict[str, str] = {}


def error_line(err: BaseException) -> str:
    """One line of an error Ray reported: an error the trial raised, its last line (as in Ray's error.txt); any other
    (a worker's death: "ActorDiedError: The actor died unexpectedly ..."), its type and first line."""
    from ray.exceptions import RayTaskError

    lines = str(err).strip().splitlines() or [""]
    return (lines[-1] if isinstance(err, RayTaskError) else f"{type(err).__name__}: {lines[0]}")[:300]


class ReuseSafeController(TuneController):
    """TuneController handling the death of a worker it was resetting once (a retry), not twice (an error)."""

    def _actor_failed(self, tracked_actor, exception: Exception) -> None:
        trial = self._actor_to_trial.get(tracked_actor)
        starting = trial is not None and trial in (self._pending_trials | self._paused_trials)
        if starting:  # its reset never returns: the retry must start a worker, not wait for this one
            self._resetting_trials.discard(trial)
        super()._actor_failed(tracked_actor, exception)  # retries it (or ends it after search.max_failures)
        if starting:  # the reset call's own failure, with this very error, follows: the death is handled
            self.__dict__.setdefault("_handled_deaths", {})[trial.trial_id] = exception

    def _trial_task_failure(self, trial, exception: Exception) -> None:
        handled = self.__dict__.get("_handled_deaths", {})
        if handled.get(trial.trial_id) is exception:
            del handled[trial.trial_id]
            return
        super()._trial_task_failure(trial, exception)

    def _process_trial_failure(self, trial, exception) -> None:
        RAY_ERRORS[trial.trial_id] = error_line(exception)  # before the searcher hears of an end
        super()._process_trial_failure(trial, exception)

    def __getstate__(self):  # Ray saves the controller's state; the deaths of this run are not part of it
        state = super().__getstate__()
        state.pop("_handled_deaths", None)
        return state


@contextlib.contextmanager
def installed() -> Iterator[None]:
    """Ray's `tune.run` (which `Tuner.fit` calls) builds this controller instead of its own while inside."""
    import ray.tune.tune as tune_module

    before = tune_module.TuneController
    tune_module.TuneController = ReuseSafeController
    try:
        yield
    finally:
        tune_module.TuneController = before
