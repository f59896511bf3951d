"""One search trial inside a Ray worker: the Tune function trainable around run_trial, its records and its end.

`driver.py` builds this trainable; here it runs, in the worker: it reports each epoch to Ray with its checkpoint,
writes `trials/<trial_id>/` and the trial's W&B run, and reports a summary row that tells the searcher how it ended.
A trial of one epoch (a closed-form fit) reports its epoch and its summary as one row: between the two there is
nothing for a scheduler to decide nor a checkpoint to resume from, and each row costs a round trip with the driver.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnnlab import console
from rnnlab.config import Config, ConfigError
from rnnlab.records import environment_fault
from rnnlab.registries import apply_overrides, from_flat_dict
from rnnlab.search_folder import TRIALS_DIR
from rnnlab.train import TrialStopped
from rnnlab.tune.time_limit import TimeLimit

NUMBER_KEY = "optuna_trial_number"  # added to each trial's Ray config by the searcher; not a config field
PARAMS_FILE = "params.json"  # trials/<id>/params.json: the trial's parameters as the searcher sent them
FINAL_KEY = "trial/final"  # marks the summary row a trial reports after run_trial returns
STOP_GRACE_S = 60.0  # how long a stopped trial may take to finish its epoch, result.json and W&B run
STOPPED_BY_RAY = "stopped by Ray during an epoch, which was dropped"
logger = logging.getLogger(__name__)


@dataclass
class TrialSetup:
    """What every trial shares: the base config (flat), where records go, its resources and the driver's verbosity."""

    base: dict[str, Any]
    folder: str
    name: str
    cpus: float
    verbosity: int = 0  # console.DEFAULT: the worker prints only warnings and errors
    remote: str | None = None  # a URI storage's `<uri>/<name>`: the worker uploads the trial's folder there
    ended: frozenset[str] = frozenset()  # trials a resume restores that had ended in the study (tune/reconcile.py)


def trial_config(setup: TrialSetup, params: dict[str, Any]) -> Config:
    """The base config with the trial's parameters, torch threads matching the CPUs Ray reserved for it."""
    params = {k: v for k, v in params.items() if k != NUMBER_KEY}  # one apply_overrides: each validates it all
    return apply_overrides(from_flat_dict(setup.base), {**params, "train.threads": max(1, int(setup.cpus))})


def replay_command(folder: str, trial_id: str) -> str:
    return f"rnnlab replay {folder} {trial_id}"


@contextlib.contextmanager
def memory_cap(megabytes: int) -> Iterator[None]:
    """Cap this process's address space at its current size + `megabytes` (soft RLIMIT_AS), restored on exit.

    A trial over the cap gets MemoryError or a failed torch allocation (an "out of memory" result) instead of the
    kernel's OOM killer taking the worker, or the driver, with it. 0: no cap.
    """
    if not megabytes:
        yield
        return
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as f:
        in_use = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    cap = in_use + megabytes * 2**20
    ours = cap if hard == resource.RLIM_INFINITY else min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (ours, hard))
    try:
        yield
    finally:  # unless a later trial set its own (this one's thread was abandoned by its time limit and woke late)
        if resource.getrlimit(resource.RLIMIT_AS)[0] == ours:
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def trial_upload(remote: str | None, out: Path):
    """With a URI storage: download the trial's folder if an earlier attempt (maybe on another node) left one, and
    return the function that uploads it; without one, a function that does nothing."""
    if remote is None:
        return lambda: None
    from rnnlab.storage import FolderUpload, join, pull

    uri = join(remote, TRIALS_DIR, out.name)
    upload = FolderUpload(out, uri)
    if pull(uri, out):
        upload.mark_sent()
    return upload


def stopped_reason(metrics: dict[str, Any]) -> str:
    return f"stopped by the scheduler after epoch {metrics.get('epoch', 0)}"


# Set when Ray stops this worker's trial itself (GracefulStop.cleanup: an interrupted search, SIGINT or SIGTERM),
# not the scheduler (whose stop StopRecorder has the trial record first): its result.json said "stopped by the
# scheduler" though no scheduler had stopped it (a search with search.scheduler=none too)
RAY_STOPPING = threading.Event()


def ray_stopped_reason(metrics: dict[str, Any]) -> str:
    return f"stopped by Ray after epoch {metrics.get('epoch', 0)}: the search was stopped; its --resume continues it"


def objective_names(cfg: Config) -> list[str]:
    return [cfg.metric, *(o.partition(":")[0] for o in cfg.search.objectives)]


def train_trial(params: dict[str, Any], setup: TrialSetup) -> None:
    """Ray's function trainable: one run_trial, reporting each epoch with its checkpoint, then a summary row.

    Ray stops a function trainable (ASHA, an interrupted search) by raising SystemExit(0) inside `tune.report`; it
    becomes TrialStopped, so the trial still writes result.json (status "stopped") and closes its W&B run.
    """
    from ray import tune
    from ray.train._internal.session import get_session  # private (Ray 2.60): the event Ray sets to stop a trial

    from rnnlab.tracking import open_tracker
    from rnnlab.trial import RunRecord, run_trial, write_json

    console.quiet_worker(setup.verbosity)
    trial_id = tune.get_context().get_trial_id()
    out = Path(setup.folder) / TRIALS_DIR / trial_id
    if trial_id in setup.ended:  # it ended before its driver died, after Ray last saved its state: not run twice
        from rnnlab.search_folder import read_json

        return report_summary(
            from_flat_dict(setup.base), read_json(out / "result.json"), {NUMBER_KEY: params.get(NUMBER_KEY, -1)}
        )
    out.mkdir(parents=True, exist_ok=True)
    upload = trial_upload(setup.remote, out)
    (out / "pid").write_text(f"{os.getpid()}\n")  # which process runs the trial: for an operator, or a kill test
    number = {NUMBER_KEY: params.get(NUMBER_KEY, -1)}
    write_json(out / PARAMS_FILE, params)  # what the searcher sent: replay rebuilds a trial that failed from it
    record = RunRecord(out)  # the one writer of the trial's metrics.jsonl and result.json
    try:
        cfg = trial_config(setup, params)
    except ConfigError as err:  # a parameter out of range: the same on every retry, so it is the trial's result
        result = record.finish("failed", f"{type(err).__name__}: {err}", {})
        return report_summary(from_flat_dict(setup.base), result, number)
    checkpoint = tune.get_checkpoint()
    stop_event = get_session().stop_event  # this trial's: a reused worker's session gets a new one on reset
    limit = TimeLimit(cfg.search.trial_time_limit_s)

    def should_stop() -> str | None:  # Ray stopped the trial (reset for the next one, or ended) mid-epoch, or the
        if (stop := limit.exceeded()) is not None:  # trial outlived its time limit: it failed
            raise stop
        return STOPPED_BY_RAY if stop_event.is_set() else None

    run_id = f"{setup.name}-{trial_id}"
    epoch_row: dict[str, Any] = {}  # a one-epoch trial's epoch, reported with its summary (module docstring)
    with open_tracker(cfg, out, "search", run_id, group=setup.name, name=trial_id, rows=record.rows) as tracker:

        def report(metrics: dict[str, Any], folder: str | None = None) -> None:
            if limit.took_over:  # a thread the time limit left behind woke up: the trial has ended without it
                raise SystemExit(0)
            tracker.log(metrics, folder)
            upload()  # the epoch's record reaches the storage before Ray may stop this worker
            if cfg.train.epochs == 1:
                epoch_row.update(metrics)
                return
            ray_checkpoint = tune.Checkpoint.from_directory(folder) if folder else None
            limit.reporting = time.monotonic()  # Ray holds the trial until it says go on: no time limit interrupt
            try:
                tune.report({**metrics, **number}, checkpoint=ray_checkpoint)
            except SystemExit:
                why = ray_stopped_reason if RAY_STOPPING.is_set() else stopped_reason
                raise TrialStopped(why(metrics)) from None
            finally:
                limit.reporting = 0.0
            if (stop := limit.exceeded()) is not None:
                raise stop

        def take_over(reason: str) -> None:  # in the watchdog: the trial's thread is stuck in native code
            ABANDONED.add(limit.thread_id)  # the worker may take a new trial without waiting for it
            result = record.finish("failed", reason)
            record.seal()  # the stuck thread, should it wake, changes nothing
            end_trial(tracker, result, upload, cfg, {**epoch_row, **number}, abandoned=True)

        try:
            limit.watch(take_over)
            try:
                with memory_cap(cfg.search.memory_per_trial_mb):
                    if checkpoint is None:  # k seeds: seed_<i>/ and their mean
                        result = run_trial(cfg, report, out, should_stop=should_stop, record=record)
                    else:  # a retry or a resumed search: continue from the epoch Ray last recorded
                        with checkpoint.as_directory() as resume_from:
                            result = run_trial(cfg, report, out, resume_from, None, should_stop, record)
            finally:
                limit.end()
        except Exception as err:
            if limit.took_over:
                raise SystemExit(0) from None
            if environment_fault(err) is not None:  # a full disk: the machine's fault, not the trial's, which
                raise  # writes no "failed"; the driver stops the search and its resume runs the trial again
            result = record_error(err, record)
            if result is None:  # not the trial's own fault: Ray retries it (search.max_failures)
                reason = f"{type(err).__name__}: {err}"  # the searcher reads it back as the trial's reason
                result = record.finish("failed", reason)
                with contextlib.suppress(OSError):  # the failure's record reaches W&B (a retry that ends otherwise
                    tracker.finish(result)  # records its own end over it) and the storage too
                with contextlib.suppress(OSError):
                    upload()
                replay = replay_command(setup.remote or setup.folder, trial_id)
                raise RuntimeError(f"trial {trial_id} failed ({reason}); replay it in-process with: {replay}") from err
        if limit.took_over:
            raise SystemExit(0)
        end_trial(tracker, result, upload, cfg, {**epoch_row, **number})


ABANDONED: set[int | None] = set()  # threads of this worker a time limit left stuck in native code


def record_error(err: Exception, record) -> dict[str, Any] | None:
    """The result of a trial that raised, when the error is its own: a stop (Ray's, a time limit, in data loading
    it through), a bad config or data (DataError; the same on every retry), out of memory (building the model)."""
    from rnnlab.trial import is_out_of_memory, out_of_memory_reason

    if isinstance(err, TrialStopped):
        return record.finish(err.status, str(err))
    if isinstance(err, ConfigError):
        return record.finish("failed", f"{type(err).__name__}: {err}")
    if is_out_of_memory(err):
        return record.finish("out_of_memory", out_of_memory_reason(err))
    return None


def end_trial(tracker, result: dict[str, Any], upload, cfg: Config, row: dict[str, Any], abandoned=False) -> None:
    """Close the trial's W&B run, upload its folder and tell Ray how it ended: a stopped trial ends its thread as
    Ray's own stop does; any other reports its summary row, over `row` (its number, a one-epoch trial's epoch).
    `abandoned`: from the time limit's watchdog, which ends the trial for its stuck thread (Ray's wrapper would
    report the end once the thread returned)."""
    from ray.train._internal.session import get_session
    from ray.tune.result import RESULT_DUPLICATE

    try:
        tracker.finish(result)
        tracker.close(exit_code=1 if abandoned else 0)
    finally:
        upload()
    if result.get("status") == "stopped":  # after a return, Ray's wrapper reports once more and waits for a
        raise SystemExit(0)  # go-ahead that never comes (a reused worker hangs)
    if not abandoned:
        return report_summary(cfg, result, row)
    try:
        report_summary(cfg, result, row)
        get_session().report({RESULT_DUPLICATE: True})  # what Ray's wrapper reports when the function returns
    except SystemExit:  # Ray ended the trial
        pass


def report_summary(cfg: Config, result: dict[str, Any], row: dict[str, Any]) -> None:
    """The row after the last epoch: the trial's result, which the searcher tells Optuna, over `row` (the trial's
    number; a one-epoch trial's epoch metrics, whose values its result repeats)."""
    from ray import tune

    summary = {k: v for k, v in result.items() if isinstance(v, (int, float, str, bool))}
    for name in objective_names(cfg):  # a diverged or failed trial has no value; the searcher tells Optuna why
        summary.setdefault(name, math.nan)
    tune.report({**row, **summary, FINAL_KEY: True})


class GracefulStop:
    """Mixed into Ray's function trainable: on stop or reuse, wait for the training thread to record the trial's end.

    Ray's own cleanup only signals the thread (it leaves `tune.report` with SystemExit, and `should_stop` ends an
    epoch in progress) and returns, and the worker may exit before the thread writes result.json and closes the W&B
    run. W&B's service is then shut down while the worker is still whole, not by an atexit hook that finds it already
    gone (a teardown traceback).

    A reused worker (search.reuse_workers): Ray keeps the worker of a trial the scheduler stopped without telling
    its thread, which waits in `tune.report`, and resets it for the next trial, giving the old thread 2 s
    (TUNE_FUNCTION_THREAD_TIMEOUT_S) to end, or else failing the *next* trial. The reset here signals the same way
    and waits up to STOP_GRACE_S for the old trial to record its end, so the worker's next trial starts only once
    the previous one is whole, and only a thread stuck past that refuses the reuse.

    A thread the time limit abandoned (stuck in native code; its trial's end was recorded and reported for it) is not
    waited for: Ray is handed a finished thread in its place, so the worker takes its next trial at once.
    """

    def reset_config(self, new_config):
        from ray.train._internal.session import get_session

        session = get_session()
        RAY_STOPPING.clear()
        if session.training_thread.ident in ABANDONED:  # its trial has ended; it ends quietly if it ever wakes
            session.training_thread = threading.Thread(target=lambda: None)
            session.training_thread.start()
        session.finish(timeout=STOP_GRACE_S)  # sets the old trial's stop event and lets its report return
        if session.training_thread.is_alive():
            return False
        return super().reset_config(new_config)

    def record_stop(self) -> bool:
        """The scheduler has stopped this trial (StopRecorder, in the driver): end its thread now, which writes
        result.json and closes the W&B run, before Optuna hears of the stop. True once the thread has ended."""
        from ray.train._internal.session import get_session

        session = get_session()
        if session is None or not session.training_started or session.training_thread.ident in ABANDONED:
            return True
        session.finish(timeout=STOP_GRACE_S)  # its report leaves with SystemExit: TrialStopped, recorded
        return not session.training_thread.is_alive()

    def cleanup(self):
        import sys

        from ray.train._internal.session import get_session  # private: pyproject.toml bounds ray at the tested 2.60

        thread = getattr(get_session(), "training_thread", None)
        RAY_STOPPING.set()  # a thread still in its trial is stopped by Ray, not by the scheduler
        super().cleanup()
        if thread is not None and thread.ident not in ABANDONED:
            thread.join(timeout=STOP_GRACE_S)
        if "wandb" in sys.modules:
            with contextlib.suppress(Exception):
                sys.modules["wandb"].teardown()


def stop_recorder():
    """A Tune callback for the driver: when the scheduler stops a trial, its worker records the end first.

    Ray tells the searcher (Optuna: PRUNED) right after the scheduler's decision, and a reused worker learns of the
    stop only when Ray resets it for another trial, which can be much later: a kill in between left a PRUNED trial
    with no result.json. Callbacks see the decision first (the result comes marked `done`), so this one has the
    worker end the trial (`GracefulStop.record_stop`) and waits for it; a kill at any point now leaves either a
    running trial (Ray resumes it) or one recorded as stopped.
    """
    from ray.tune import Callback

    class StopRecorder(Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            import ray

            actor = trial.temporary_state.ray_actor
            if not result.get("done") or result.get(FINAL_KEY) or actor is None:
                return
            try:
                if not ray.get(actor.record_stop.remote(), timeout=STOP_GRACE_S + 10):
                    logger.warning(f"trial {trial.trial_id} did not record its stop within {STOP_GRACE_S:g} s")
            except Exception as err:  # the worker died: Ray reports the trial's fault on its own
                logger.warning(f"trial {trial.trial_id}: its worker could not record its stop ({err})")

    return StopRecorder()


def make_trainable(setup: TrialSetup, cpus: float, gpus: float):
    from ray import tune

    trainable = tune.with_parameters(train_trial, setup=setup)
    trainable.__mixins__ = (GracefulStop,)  # wrap_function puts these before FunctionTrainable
    return tune.with_resources(trainable, {"cpu": cpus, "gpu": gpus})
