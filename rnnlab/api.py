"""rnnlab from Python (a notebook, a script): run one trial, launch a search, load a search as a table.

    import rnnlab
    result = rnnlab.run("digits_bilstm", overrides={"train.epochs": 2}, out="runs/nb")   # result.json's dict
    summary = rnnlab.search("search_digits", overrides={"search.samples": 4}, name="nb")
    table = rnnlab.load_search(summary.folder)            # a pandas DataFrame, one row per trial

Bad input raises `rnnlab.ConfigError` (naming the field) before any work; nothing here exits the interpreter. Each
call leaves the process as it found it: os.environ (PYTHONPATH included), Optuna's verbosity, torch's thread count,
the random generators' states, logging, signal handlers, the working directory, and Ray (a Ray it started is shut
down; one already running stays). `rnnlab run` and `rnnlab tune` go through the same code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rnnlab import console
from rnnlab.config import Config, ConfigError
from rnnlab.config.overrides import to_flat_dict

__all__ = ["RunTerminated", "SearchSummary", "load_search", "run", "search"]

logger = logging.getLogger(__name__)


class RunTerminated(RuntimeError):
    """SIGTERM stopped `rnnlab.run`; its record in `out` holds every completed epoch and `resume=True` continues it."""

    def __init__(self, reason: str, out: Path):
        super().__init__(f"run {reason}; its record is in {out}; continue it with resume=True")
        self.reason, self.out = reason, out


class RunInterrupted(KeyboardInterrupt):
    """SIGINT (Ctrl-C) stopped `rnnlab.run` once its folder held a run: `out` keeps every completed epoch's
    checkpoint and `resume=True` continues it. Still a KeyboardInterrupt to a caller who catches those."""

    def __init__(self, out: Path):
        super().__init__(f"run interrupted; its record is in {out}; continue it with resume=True")
        self.out = out


@contextlib.contextmanager
def process_state() -> Iterator[None]:
    """os.environ, signal handlers, torch's thread count and the random generators as a call found them.

    The environment as a whole: besides rnnlab's own settings, libraries write to it on first use (torch's
    inductor its cache folder, Ray its session's variables).
    """
    import numpy as np
    import torch

    environ, threads = dict(os.environ), torch.get_num_threads()
    py_rng, np_rng, torch_rng = random.getstate(), np.random.get_state(), torch.get_rng_state()
    handlers = {s: signal.getsignal(s) for s in signal.valid_signals()}  # Ray installs its own on init
    try:
        yield
    finally:
        if threading.current_thread() is threading.main_thread():
            for signum, handler in handlers.items():
                if handler is not None and signal.getsignal(signum) is not handler:
                    signal.signal(signum, handler)
        for key in set(os.environ) - set(environ):
            del os.environ[key]
        os.environ.update(environ)
        torch.set_num_threads(threads)
        torch.set_flush_denormal(False)  # torch has no getter: back to its default (a trial sets its config's)
        random.setstate(py_rng)
        np.random.set_state(np_rng)
        torch.set_rng_state(torch_rng)


@contextlib.contextmanager
def stop_on_sigterm(stop: list[str]) -> Iterator[None]:
    """SIGTERM appends its name to `stop` (training stops at its next batch); the previous handler comes back."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.append(signal.Signals(signum).name))
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def load(experiment: str | Path | Config, overrides: dict[str, Any] | None):
    """An Experiment from a file or name (see `experiment.search_dirs`), or around a Config built in Python."""
    from rnnlab.experiment import Experiment, load_experiment
    from rnnlab.registries import apply_overrides

    if isinstance(experiment, Config):
        cfg = apply_overrides(experiment, overrides or {})
        return Experiment(name=cfg.name, path=Path(f"{cfg.name}.py"), config=cfg)
    return load_experiment(str(experiment), overrides)


def run(
    experiment: str | Path | Config,
    overrides: dict[str, Any] | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    verbosity: int = console.DEFAULT,
) -> dict[str, Any]:
    """Run one trial in this process (no Ray) and return its result, the dict written to `out/result.json`.

    `experiment`: a file path, a name in ./experiments (or the checkout's), or a `Config`. `overrides`: dotted paths
    as `--set` takes them ({"optim.learning_rate": 1e-3}). `out`: the run folder (default runs/NAME-TIMESTAMP); an
    existing one is resumed with `resume=True`, never overwritten. The result's "status" says how it ended
    ("completed", "diverged", "out_of_memory"); SIGTERM raises RunTerminated once the record is closed.
    """
    from rnnlab.folder_lock import FolderBusy, hold_folder
    from rnnlab.run_folder import check_output_dir, default_outs

    with console.output(verbosity), process_state():
        cfg = load(experiment, overrides).config
        if isinstance(out, str) and not out.strip():  # Path("") is the current folder: the run went there
            raise ConfigError("--out", f"is empty ({out!r}); give the run's folder (out=) or leave it out")
        if resume and out is None:  # the default is a new folder, which holds nothing to continue
            raise ConfigError("--resume", "needs --out (out=), the folder of the run to continue")
        given = out is not None
        for folder in [Path(out)] if given else (p for p in default_outs(cfg) if not p.exists()):
            started = (folder / "config.json").exists  # run_trial writes it once the model is built, before any epoch
            held = []
            try:
                with hold_folder(folder, "--out", lambda f=folder: check_output_dir(f, resume, cfg), started):
                    held.append(folder)  # one process per folder
                    return run_in_folder(cfg, folder, resume)
            except ConfigError as err:
                taken = isinstance(err, FolderBusy) or started()  # by a run that began in the same second
                if given or held or not taken:
                    raise
            except KeyboardInterrupt:
                if started():
                    raise RunInterrupted(folder) from None
                raise
        raise ConfigError("--out", "every default folder of this second is taken; give one with --out")


def run_in_folder(cfg: Config, out: Path, resume: bool) -> dict[str, Any]:
    from rnnlab.progress import EpochProgress
    from rnnlab.tracking import open_tracker, resolve_mode
    from rnnlab.train import select_device
    from rnnlab.trial import RunRecord, TrialStopped, prepare_data, run_trial

    resolve_mode(cfg)  # a bad WANDB_MODE fails now, not after the run folder exists
    select_device(cfg.train.device)  # and so does a CUDA device this machine lacks
    data = prepare_data(cfg)  # every input error surfaces before the run folder is touched
    if resume:
        from rnnlab.resume import check_resume_data

        check_resume_data(out, data.fingerprint, data.content)
    # SIGTERM (a scheduler, `kill`): training stops at its next batch, dropping the epoch in progress; one already
    # past training ends after its row is logged everywhere. Either way W&B holds every completed epoch.
    stop: list[str] = []
    record = RunRecord(out)  # metrics.jsonl's rows in memory: run_trial appends, the tracker reads
    with (
        stop_on_sigterm(stop),
        EpochProgress(cfg.train.epochs, cfg.metric) as progress,
        open_tracker(cfg, out, job_type="run", rows=record.rows) as tracker,
    ):

        def report(metrics, checkpoint=None):
            tracker.log(metrics, checkpoint)
            progress.update(metrics)
            if stop:
                raise TrialStopped(f"terminated by {stop[0]} after epoch {metrics['epoch']}")

        def should_stop():
            return f"terminated by {stop[0]} during an epoch, which was dropped" if stop else None

        resume_from = out / "checkpoints" if resume and (out / "checkpoints").is_dir() else None  # seeds: their own
        result = run_trial(cfg, report, out, resume_from, data, should_stop, record)
        tracker.finish(result)
    logger.info(f"run folder: {out}")
    if result["status"] == "stopped":
        raise RunTerminated(result["reason"], out)
    return result


@dataclasses.dataclass
class SearchSummary:
    """What `rnnlab.search` returns: the search's folder, its best trial (None when none completed), its table."""

    folder: Path
    best_trial: str | None
    best_value: float | None
    best_params: dict[str, Any]
    counts: dict[str, int]  # trials per Optuna state: COMPLETE, PRUNED, FAIL
    trials: Any  # pandas.DataFrame, as `load_search` gives it


@contextlib.contextmanager
def own_ray() -> Iterator[None]:
    """Shut down on exit the Ray this block starts; leave one that was running."""
    import ray

    running = ray.is_initialized()
    try:
        yield
    finally:
        if not running and ray.is_initialized():
            ray.shutdown()


def search(
    experiment: str | Path,
    overrides: dict[str, Any] | None = None,
    name: str | None = None,
    storage: str | Path = "searches",
    address: str | None = None,
    verbosity: int = console.DEFAULT,
) -> SearchSummary:
    """Launch a search of the experiment's `search_space` (as `rnnlab tune`) and return its summary.

    `overrides` holds `search.samples`, `search.concurrency` and any other field. The search goes in
    `storage/name/` (default name NAME-TIMESTAMP, or -2, -3, ... if another search of that second has it). It
    prints its status lines and summary as the CLI does (`verbosity=console.QUIET` keeps warnings only). Raises
    ConfigError on bad input, KeyboardInterrupt if interrupted (its state is saved: `rnnlab tune FOLDER --resume`).
    """
    from rnnlab.tune import run_search

    with console.output(verbosity), process_state():
        exp, spec = plan_search(experiment, overrides, name, storage)
        with own_ray():
            code = run_search(exp, spec, address=address, free_name=name is None)  # spec.folder: the one taken
        if code in (130, 143):  # SIGINT, or SIGTERM (a scheduler): its state is saved
            how = "interrupted" if code == 130 else "stopped by SIGTERM"
            raise KeyboardInterrupt(f"search {how}; continue it with: rnnlab tune {spec.folder} --resume")
        return summarize(spec.folder)


def plan_search(experiment: str | Path, overrides: dict[str, Any] | None, name: str | None, storage: str | Path):
    """The experiment and the SearchSpec of a new search in `storage/name/`."""
    from rnnlab.search_folder import SearchSpec, new_search_id

    if isinstance(experiment, Config):
        raise ConfigError("experiment", "a search needs an experiment file with search_space(trial); got a Config")
    overrides = dict(overrides or {})
    exp = load(experiment, overrides)
    cfg = exp.config
    name = f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}" if name is None else name  # --name "": refused, not this
    # "../x" or "/abs" put the search outside --storage, " " in a folder named by blanks
    if "/" in name or "\\" in name or name.strip() in ("", ".", ".."):
        raise ConfigError("--name", f"got {name!r}: one folder name under --storage, without / or \\, not . or ..")
    if not str(storage).strip():  # Path("") is the current folder
        raise ConfigError("--storage", f"is empty ({storage!r}); give the folder or URI of searches")
    local = Path("searches") if "://" in str(storage) else Path(storage)
    folder = (local / name).resolve()  # run_search refuses it if it holds a search (or a driver holds it)
    spec = SearchSpec(
        experiment=str(exp.path.resolve()),
        name=name,
        storage=str(storage),
        folder=str(folder),
        overrides=overrides,
        metric=cfg.metric,
        mode=cfg.mode,
        objectives=cfg.search.objectives,
        config=json.loads(json.dumps(to_flat_dict(cfg), default=str)),
        search_id=new_search_id(),
    )
    return exp, spec


def summarize(folder: Path) -> SearchSummary:
    from rnnlab.search_folder import SearchSpec, load_study, trial_params

    study = load_study(folder)
    table = load_search(folder)
    complete = table[table["state"] == "COMPLETE"]
    best = None
    if len(complete) and len(study.directions) == 1:
        best = study.best_trial
    counts = {state: int((table["state"] == state).sum()) for state in ("COMPLETE", "PRUNED", "FAIL")}
    return SearchSummary(
        folder=Path(folder),
        best_trial=best.user_attrs.get("ray_trial_id") if best else None,
        best_value=best.value if best else None,
        best_params=trial_params(SearchSpec.load(folder), best) if best else {},
        counts=counts,
        trials=table,
    )


def load_search(folder: str | Path):
    """A finished (or running) search as a pandas DataFrame: one row per trial, best first.

    Columns: `trial_id`, `number` (Optuna's), `state` (COMPLETE, PRUNED, FAIL), `status` (result.json's:
    completed, stopped, diverged, ... or the reason of a trial without one), each parameter by its dotted path,
    then every metric of the trial's result.json (`val/acc`, `test/acc`, `time/total_s`, ...). Needs no Ray.
    """
    import pandas as pd

    from rnnlab.search_folder import SearchSpec, load_study, read_json, trial_folder, trial_params, trial_rows

    spec = SearchSpec.load(folder)
    study = load_study(spec.folder)
    params = {t.number: trial_params(spec, t) for t in study.get_trials(deepcopy=False)}
    records = []
    for row in trial_rows(spec, study):
        result = read_json(trial_folder(spec, row["trial_id"]) / "result.json")
        metrics = {k: v for k, v in result.items() if "/" in k and isinstance(v, (int, float))}
        records.append(
            {
                "trial_id": row["trial_id"],
                "number": row["number"],
                "state": row["state"],
                "status": row["status"],
                **params[row["number"]],
                **metrics,
            }
        )
    return pd.DataFrame.from_records(records)
