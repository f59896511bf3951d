"""Ray Tune's trial controller with two faults made right: a reused worker that died while idle, and a full disk.

With `search.reuse_workers`, Ray keeps a finished trial's worker idle for the next trial and hands it over with a
`reset` call. If the worker was killed meanwhile (SIGKILL, the OOM killer), Ray (2.60) learns of it from that call
and handles the one death twice: as the actor's failure, which retries the trial (it never ran a step: a transient
fault, within search.max_failures), then as the reset call's failure, which ends the same trial as errored and tells
the searcher (Optuna: FAIL, "Ray recorded no error file"). Here the second is dropped, the trial is no longer
counted as being reset (or Ray would wait for that reset forever instead of starting a fresh worker), and the error
of a trial that does end errored reaches the searcher, whose reason then names it.

And a trial that meets a full disk (or a read-only or failing one: records.environment_fault) stops the search, as
a SIGINT does: Ray's state is saved, the running trials record where they stopped, and the trial is neither retried
on the same disk (each retry failing the same way, with a traceback) nor ended as failed in the study; a resume,
once there is space, runs it again. With a URI storage a trial writes to its node's own disk, which another node's
retry does not share: Ray retries it as any fault.

`installed()` puts this controller in place of Ray's for the duration of one `Tuner.fit` in this process, and
keeps Ray Tune from copying the driver's cloud credentials (AWS_SECRET_ACCESS_KEY, ...) into each trial's runtime
env: Ray's runtime env agent logs a runtime env in full, so the keys were in plain text in every node's
`session_*/logs/runtime_env_agent.log`. A local Ray's workers inherit the driver's environment anyway; a cluster's
nodes use their own (an instance profile, or their AWS_* variables), which preflight probes.

All of it is Ray's private API (TuneController's _actor_failed, _trial_task_failure, _process_trial_failure,
is_finished, _actor_to_trial, _pending_trials, _paused_trials, _resetting_trials; tune.tune.TuneController;
tune.execution.class_cache.ENV_VARS_TO_PROPAGATE), as of
Ray 2.60: pyproject.toml bounds ray below 2.61 for it, and tests/test_idle_worker_kill.py (and test_full_disk.py)
fail if a Ray changes it (test_security.py if the credentials reach a log again).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from ray.tune.execution.tune_controller import TuneController

from rnnlab.records import environment_fault

# a trial id -> the error Ray ended it with, for the searcher's reason (Ray writes error.txt in its staging folder,
# synced to the search folder only later)
RAY_ERRORS: dict[str, str] = {}
# a trial id -> the full disk (or other fault of the machine) it met, which stopped this run of the search
ENVIRONMENT_FAULTS: dict[str, str] = {}
logger = logging.getLogger(__name__)


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

    stop_on_environment_fault = True  # installed() sets it: False with a URI storage (a node's own disk)

    def _trial_task_failure(self, trial, exception: Exception) -> None:
        handled = self.__dict__.get("_handled_deaths", {})
        if handled.get(trial.trial_id) is exception:
            del handled[trial.trial_id]
            return
        if self.stop_on_environment_fault and (fault := environment_fault(exception)) is not None:
            where = f" ({fault.filename})" if fault.filename else ""
            ENVIRONMENT_FAULTS.setdefault(trial.trial_id, f"{fault.strerror}{where}")
            logger.warning(f"trial {trial.trial_id}: {fault.strerror}{where}; the search stops, its state saved")
            return  # the trial stays unfinished: Ray's saved state and the study have it running
        super()._trial_task_failure(trial, exception)

    def is_finished(self) -> bool:
        return bool(ENVIRONMENT_FAULTS) or super().is_finished()

    def _process_trial_failure(self, trial, exception) -> None:
        RAY_ERRORS[trial.trial_id] = error_line(exception)  # before the searcher hears of an end
        super()._process_trial_failure(trial, exception)

    def __getstate__(self):  # Ray saves the controller's state; the deaths of this run are not part of it
        state = super().__getstate__()
        state.pop("_handled_deaths", None)
        return state


def is_credential(name: str) -> bool:
    return name.startswith("AWS_") or any(word in name for word in ("SECRET", "TOKEN", "PASSWORD", "KEY"))


@contextlib.contextmanager
def installed(stop_on_environment_fault: bool = True) -> Iterator[None]:
    """Ray's `tune.run` (which `Tuner.fit` calls) builds this controller instead of its own while inside, and
    gives the trainable's runtime env no credential of the driver's."""
    import ray.tune.execution.class_cache as class_cache
    import ray.tune.tune as tune_module

    before, propagated = tune_module.TuneController, class_cache.ENV_VARS_TO_PROPAGATE
    tune_module.TuneController = ReuseSafeController
    class_cache.ENV_VARS_TO_PROPAGATE = {name for name in propagated if not is_credential(name)}
    ReuseSafeController.stop_on_environment_fault = stop_on_environment_fault
    ENVIRONMENT_FAULTS.clear()
    try:
        yield
    finally:
        tune_module.TuneController, class_cache.ENV_VARS_TO_PROPAGATE = before, propagated
