"""One search trial inside a Ray worker: the Tune function trainable around run_trial, its records and its end.

`driver.py` builds this trainable; here it runs, in the worker: it reports each epoch to Ray with its checkpoint,
writes `trials/<trial_id>/` and the trial's W&B run, and reports a summary row that tells the searcher how it ended.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnnlab import console
from rnnlab.config import Config, ConfigError
from rnnlab.registries import apply_overrides, from_flat_dict
from rnnlab.search_folder import TRIALS_DIR

NUMBER_KEY = "optuna_trial_number"  # added to each trial's Ray config by the searcher; not a config field
PARAMS_FILE = "params.json"  # trials/<id>/params.json: the trial's parameters as the searcher sent them
FINAL_KEY = "trial/final"  # marks the summary row a trial reports after run_trial returns
STOP_GRACE_S = 60.0  # how long a stopped trial may take to finish its epoch, result.json and W&B run
STOPPED_BY_RAY = "stopped by Ray during an epoch, which was dropped"


@dataclass
class TrialSetup:
    """What every trial shares: the base config (flat), where records go, its resources and the driver's verbosity."""

    base: dict[str, Any]
    folder: str
    name: str
    cpus: float
    verbosity: int = 0  # console.DEFAULT: the worker prints only warnings and errors
    remote: str | None = None  # a URI storage's `<uri>/<name>`: the worker uploads the trial's folder there


def trial_config(setup: TrialSetup, params: dict[str, Any]) -> Config:
    """The base config with the trial's parameters, torch threads matching the CPUs Ray reserved for it."""
    params = {k: v for k, v in params.items() if k != NUMBER_KEY}
    cfg = apply_overrides(from_flat_dict(setup.base), params)
    return apply_overrides(cfg, {"train.threads": max(1, int(setup.cpus))})


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
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
    try:
        yield
    finally:
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


class TimeLimit:
    """`search.trial_time_limit_s` of one attempt of a trial, polled before each batch and after each epoch."""

    def __init__(self, seconds: float):
        self.seconds, self.fired = seconds, False
        self.deadline = time.monotonic() + seconds if seconds else math.inf

    def exceeded(self) -> str | None:
        if time.monotonic() < self.deadline:
            return None
        self.fired = True
        return f"exceeded search.trial_time_limit_s={self.seconds:g} (raise it, or 0 for no limit)"


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
    from rnnlab.trial import TrialStopped, is_out_of_memory, last_row, run_trial, write_json

    console.quiet_worker(setup.verbosity)
    trial_id = tune.get_context().get_trial_id()
    out = Path(setup.folder) / TRIALS_DIR / trial_id
    out.mkdir(parents=True, exist_ok=True)
    upload = trial_upload(setup.remote, out)
    (out / "pid").write_text(f"{os.getpid()}\n")  # which process runs the trial: for an operator, or a kill test
    number = {NUMBER_KEY: params.get(NUMBER_KEY, -1)}
    write_json(out / PARAMS_FILE, params)  # what the searcher sent: replay rebuilds a trial that failed from it
    try:
        cfg = trial_config(setup, params)
    except ConfigError as err:  # a parameter out of range: the same on every retry, so it is the trial's result
        result = {"status": "failed", "reason": f"{type(err).__name__}: {err}"}
        write_json(out / "result.json", result)
        return report_summary(from_flat_dict(setup.base), result, number)
    checkpoint = tune.get_checkpoint()
    stop_event = get_session().stop_event  # this trial's: a reused worker's session gets a new one on reset
    limit = TimeLimit(cfg.search.trial_time_limit_s)

    def should_stop() -> str | None:  # Ray stopped the trial (reset for the next one, or ended) mid-epoch, or the
        return STOPPED_BY_RAY if stop_event.is_set() else limit.exceeded()  # trial outlived its time limit

    with open_tracker(
        cfg, out, job_type="search", run_id=f"{setup.name}-{trial_id}", group=setup.name, name=trial_id
    ) as tracker:

        def report(metrics: dict[str, Any], folder: str | None = None) -> None:
            tracker.log(metrics, folder)
            upload()  # the epoch's record reaches the storage before Ray may stop this worker
            ray_checkpoint = tune.Checkpoint.from_directory(folder) if folder else None
            try:
                tune.report({**metrics, **number}, checkpoint=ray_checkpoint)
            except SystemExit:
                raise TrialStopped(stopped_reason(metrics)) from None
            if limit.exceeded():
                raise TrialStopped(limit.exceeded())

        try:
            with memory_cap(cfg.search.memory_per_trial_mb):
                if checkpoint is None:
                    result = run_trial(cfg, report, out, should_stop=should_stop)  # k seeds: seed_<i>/, their mean
                else:  # a retry or a resumed search: continue from the epoch Ray last recorded
                    with checkpoint.as_directory() as resume_from:
                        result = run_trial(cfg, report, out, resume_from=resume_from, should_stop=should_stop)
        except TrialStopped as err:  # seed replicates let it through; one seed records it itself
            result = {**last_row(out), "status": "stopped", "reason": str(err)}
            write_json(out / "result.json", result)
        except ConfigError as err:  # bad config or data (DataError): the same on every retry, so it is a result
            result = {**last_row(out), "status": "failed", "reason": f"{type(err).__name__}: {err}"}
            write_json(out / "result.json", result)
        except Exception as err:
            if not is_out_of_memory(err):  # out of memory before training (building the model): a result too
                reason = f"{type(err).__name__}: {err}"  # the searcher reads it back as the trial's reason
                write_json(out / "result.json", {**last_row(out), "status": "failed", "reason": reason})
                with contextlib.suppress(OSError):  # the failure's record reaches the storage too
                    upload()
                replay = replay_command(setup.remote or setup.folder, trial_id)
                raise RuntimeError(f"trial {trial_id} failed ({reason}); replay it in-process with: {replay}") from err
            result = {**last_row(out), "status": "out_of_memory", "reason": f"out of memory: {str(err)[:300]}"}
            write_json(out / "result.json", result)
        if limit.fired and result.get("status") == "stopped":  # our own stop, not Ray's: the trial failed
            result = {**result, "status": "failed", "reason": limit.exceeded()}
            write_json(out / "result.json", result)
        tracker.finish(result)
    upload()
    if result.get("status") == "stopped":  # end the thread as Ray's own stop does: after a return, Ray's wrapper
        raise SystemExit(0)  # reports once more and waits for a go-ahead that never comes (a reused worker hangs)
    report_summary(cfg, result, number)


def report_summary(cfg: Config, result: dict[str, Any], number: dict[str, int]) -> None:
    """The row after the last epoch: the trial's result, which the searcher tells Optuna."""
    from ray import tune

    summary = {k: v for k, v in result.items() if isinstance(v, (int, float, str, bool))}
    for name in objective_names(cfg):  # a diverged or failed trial has no value; the searcher tells Optuna why
        summary.setdefault(name, math.nan)
    tune.report({**summary, **number, FINAL_KEY: True})


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
    """

    def reset_config(self, new_config):
        from ray.train._internal.session import get_session

        session = get_session()
        session.finish(timeout=STOP_GRACE_S)  # sets the old trial's stop event and lets its report return
        if session.training_thread.is_alive():
            return False
        return super().reset_config(new_config)

    def cleanup(self):
        import sys

        from ray.train._internal.session import get_session  # private: pyproject.toml bounds ray at the tested 2.60

        thread = getattr(get_session(), "training_thread", None)
        super().cleanup()
        if thread is not None:
            thread.join(timeout=STOP_GRACE_S)
        if "wandb" in sys.modules:
            with contextlib.suppress(Exception):
                sys.modules["wandb"].teardown()


def make_trainable(setup: TrialSetup, cpus: float, gpus: float):
    from ray import tune

    trainable = tune.with_parameters(train_trial, setup=setup)
    trainable.__mixins__ = (GracefulStop,)  # wrap_function puts these before FunctionTrainable
    return tune.with_resources(trainable, {"cpu": cpus, "gpu": gpus})
