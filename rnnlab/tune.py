"""Hyperparameter search: Optuna proposes trials from the experiment's define-by-run space, Ray Tune runs them.

One search is one folder, `<storage>/<name>/`: `search.json` (what to resume or replay), `optuna.journal` (the
Optuna study), `ray/` (Ray's experiment state and checkpoints) and `trials/<trial_id>/` (each trial's run_trial
record and W&B run). A trial has one id everywhere: Ray's trial_id is the Optuna user attr `ray_trial_id`, the
folder name and, prefixed with the search name, the W&B run id. This is the only module that imports ray.tune.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray.tune.search.optuna import OptunaSearch

from rnnlab.config import Config, ConfigError, apply_overrides, from_flat_dict, to_flat_dict
from rnnlab.experiment import Experiment
from rnnlab.search_report import RAY_DIR, STUDY_NAME, TRIALS_DIR, SearchSpec, open_study_storage

NUMBER_KEY = "optuna_trial_number"  # added to each trial's Ray config by the searcher; not a config field
FINAL_KEY = "trial/final"  # marks the summary row a trial reports after run_trial returns


def is_uri(storage: str) -> bool:
    return "://" in storage


def check_storage(storage: str) -> None:
    """Fail before launch (ConfigError, exit 2) if Ray could not write the search's state to `storage`."""
    if is_uri(storage):
        import pyarrow.fs

        try:
            pyarrow.fs.FileSystem.from_uri(storage)
        except Exception as err:
            raise ConfigError("--storage", f"cannot resolve {storage!r} with pyarrow.fs: {err}") from None
        return
    path = Path(storage)
    probe = next((p for p in [path, *path.parents] if p.exists()), Path("."))
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise ConfigError("--storage", f"{probe} is not a writable folder; choose another --storage")


def objective_list(cfg: Config) -> tuple[list[str], list[str]]:
    """Metrics and modes Optuna optimises: `cfg.metric` first, then `search.objectives` ("split/name:mode")."""
    metrics, modes = [cfg.metric], [cfg.mode]
    for objective in cfg.search.objectives:
        name, _, mode = objective.partition(":")
        metrics.append(name)
        modes.append(mode)
    return metrics, modes


# --- the trial, inside a Ray worker --------------------------------------------------------------------------------


@dataclass
class TrialSetup:
    """What every trial shares: the base config (flat), where records go, and its resources."""

    base: dict[str, Any]
    folder: str
    name: str
    cpus: float


def trial_config(setup: TrialSetup, params: dict[str, Any]) -> Config:
    """The base config with the trial's parameters, torch threads matching the CPUs Ray reserved for it."""
    params = {k: v for k, v in params.items() if k != NUMBER_KEY}
    cfg = apply_overrides(from_flat_dict(setup.base), params)
    return apply_overrides(cfg, {"train.threads": max(1, int(setup.cpus))})


def replay_command(folder: str, trial_id: str) -> str:
    return f"rnnlab replay {folder} {trial_id}"


def train_trial(params: dict[str, Any], setup: TrialSetup) -> None:
    """Ray's function trainable: one run_trial, reporting each epoch with its checkpoint, then a summary row."""
    from ray import tune

    from rnnlab.replicates import run_replicates
    from rnnlab.tracking import open_tracker
    from rnnlab.trial import run_trial

    trial_id = tune.get_context().get_trial_id()
    cfg = trial_config(setup, params)
    out = Path(setup.folder) / TRIALS_DIR / trial_id
    number = {NUMBER_KEY: params.get(NUMBER_KEY, -1)}
    checkpoint = tune.get_checkpoint()
    runner = run_trial if cfg.search.seeds == 1 else run_replicates  # k seeds: trials/<id>/seed_<i>/, their mean

    with open_tracker(cfg, out, job_type="search", run_id=f"{setup.name}-{trial_id}", group=setup.name,
                      name=trial_id) as tracker:  # fmt: skip

        def report(metrics: dict[str, Any], folder: str | None = None) -> None:
            tracker.log(metrics, folder)
            ray_checkpoint = tune.Checkpoint.from_directory(folder) if folder else None
            tune.report({**metrics, **number}, checkpoint=ray_checkpoint)

        try:
            if checkpoint is None:
                result = runner(cfg, report, out)
            else:  # a retry or a resumed search: continue from the epoch Ray last recorded
                with checkpoint.as_directory() as resume_from:
                    result = runner(cfg, report, out, resume_from=resume_from)
        except Exception as err:
            raise RuntimeError(f"trial {trial_id} failed ({type(err).__name__}: {err}); replay it in-process "
                               f"with: {replay_command(setup.folder, trial_id)}") from err  # fmt: skip
        tracker.finish(result)
    summary = {k: v for k, v in result.items() if isinstance(v, (int, float, str, bool))}
    summary.setdefault(cfg.metric, math.nan)  # a diverged trial has no value; the searcher tells Optuna why
    tune.report({**summary, **number, FINAL_KEY: True})


def trial_dirname(trial) -> str:
    return trial.trial_id


# --- the searcher, in the driver -----------------------------------------------------------------------------------


class StudySearch(OptunaSearch):
    """Records each trial's Ray id and Optuna number; scheduler stops and divergence end as PRUNED + reason."""

    folder = ""  # the search folder, for the replay command in an error's reason

    def suggest(self, trial_id: str) -> dict | None:
        params = super().suggest(trial_id)
        if params is None:
            return None
        ot_trial = self._ot_trials[trial_id]
        ot_trial.set_user_attr("ray_trial_id", trial_id)
        return {**params, NUMBER_KEY: ot_trial.number}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        from optuna.exceptions import UpdateFinishedTrialError

        try:
            super().on_trial_result(trial_id, result)
        except UpdateFinishedTrialError:  # it ended before the driver died; Ray resumed it from its last checkpoint
            self._completed_trials.add(trial_id)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None or trial_id in self._completed_trials:
            return
        result = result or {}
        reason = None
        if error:
            reason = f"error; see Ray's error file or replay: {replay_command(self.folder, trial_id)}"
        elif not result.get(FINAL_KEY):
            reason = f"stopped by the scheduler after epoch {result.get('epoch', 0)}"
        elif result.get("status") == "diverged":
            reason = f"diverged: {result.get('reason')}"
        if reason is None:
            return super().on_trial_complete(trial_id, result, error)
        from optuna.trial import TrialState

        try:
            ot_trial.set_user_attr("reason", reason)
            self._ot_study.tell(ot_trial, state=TrialState.FAIL if error else TrialState.PRUNED)
        except Exception as err:  # told already, before a driver restart: the journal keeps the first ending
            print(f"rnnlab: note: trial {trial_id} already ended in the study ({err})")
        self._completed_trials.add(trial_id)


def make_searcher(space, cfg: Config, folder: str | Path, grid: dict[str, list] | None = None):
    """OptunaSearch on the search's journal, telling Optuna how each trial really ended."""
    metrics, modes = objective_list(cfg)
    many = len(metrics) > 1
    searcher = StudySearch(space, metric=metrics if many else metrics[0], mode=modes if many else modes[0],
                           sampler=make_sampler(cfg, grid), study_name=STUDY_NAME,
                           storage=open_study_storage(folder))  # fmt: skip
    searcher.folder = str(folder)
    return searcher


def make_sampler(cfg: Config, grid: dict[str, list] | None = None):
    import optuna

    name, seed = cfg.search.sampler, cfg.seed
    if name == "tpe":  # group=True: a conditional space is modelled per branch, not as one joint space
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    if name == "cmaes":
        try:
            import cmaes  # noqa: F401
        except ImportError:
            raise ConfigError("search.sampler", "cmaes needs the `cmaes` package: pip install cmaes") from None
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.GridSampler(grid, seed=seed)


def make_scheduler(cfg: Config):
    from ray.tune import schedulers

    s = cfg.search
    max_t = cfg.train.epochs + 1  # the summary row comes after the last epoch: never cut a trial before it
    if s.scheduler == "asha":
        return schedulers.ASHAScheduler(metric=cfg.metric, mode=cfg.mode, max_t=max_t,
                                        grace_period=min(s.grace_period, cfg.train.epochs))  # fmt: skip
    if s.scheduler == "hyperband":
        return schedulers.HyperBandScheduler(metric=cfg.metric, mode=cfg.mode, max_t=max_t)
    if s.scheduler == "pbt":  # PBT mutates hyperparameters by its own ranges; a define-by-run space has none
        raise ConfigError("search.scheduler", "pbt is not supported with an Optuna define-by-run space (it needs "
                          "explicit mutation ranges); valid: asha, hyperband, none")  # fmt: skip
    return schedulers.FIFOScheduler()


# --- the search ------------------------------------------------------------------------------------------------


def connect(address: str | None) -> None:
    """Join the cluster at `address`, or start a local Ray whose workers can import rnnlab from this checkout."""
    import ray

    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, log_to_driver=True)
        return
    root = str(Path(__file__).resolve().parent.parent)
    paths = [root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))  # local workers inherit the environment
    ray.init(include_dashboard=False, dashboard_host="127.0.0.1", log_to_driver=True)


def ray_storage(spec: SearchSpec) -> str:
    """Where Ray keeps the search's experiment state: the search folder, or `<uri>/<name>` for a URI storage."""
    return f"{spec.storage.rstrip('/')}/{spec.name}" if is_uri(spec.storage) else spec.folder


def build_tuner(experiment: Experiment, spec: SearchSpec, samples: int, ray_run: str, restore: bool = False):
    """A Tuner for `samples` new trials under `ray_run`, or the restored one of a search whose driver died."""
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter

    from rnnlab.search_progress import SearchProgress

    cfg = experiment.config
    s = cfg.search
    setup = TrialSetup(base=to_flat_dict(cfg), folder=spec.folder, name=spec.name, cpus=s.cpus_per_trial)
    trainable = tune.with_resources(tune.with_parameters(train_trial, setup=setup),
                                    {"cpu": s.cpus_per_trial, "gpu": s.gpus_per_trial})  # fmt: skip
    storage = ray_storage(spec)
    path = f"{storage}/{ray_run}"
    if restore:
        return tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=True,
                                  restart_errored=False)  # fmt: skip
    grid = None
    if s.sampler == "grid":
        from rnnlab.search_report import grid_from_space, grid_size

        grid = grid_from_space(experiment.search_space)
        if grid_size(grid) != samples:
            print(f"rnnlab: note: the grid has {grid_size(grid)} points and the search runs {samples} samples")
    searcher = ConcurrencyLimiter(make_searcher(experiment.search_space, cfg, spec.folder, grid), s.concurrency)
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=make_scheduler(cfg), num_samples=samples,
                                    trial_dirname_creator=trial_dirname, trial_name_creator=trial_dirname,
                                    reuse_actors=True),  # a new worker process costs seconds of imports
        run_config=tune.RunConfig(name=ray_run, storage_path=storage, verbose=1,
                                  callbacks=[SearchProgress(cfg.metric, cfg.mode, samples)],
                                  failure_config=tune.FailureConfig(max_failures=s.max_failures),
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=2)),
    )  # fmt: skip


def count_ray_trials(spec: SearchSpec) -> int:
    """Trials Ray recorded across the search's launches (its experiment state, not the trial folders)."""
    from ray.tune import ExperimentAnalysis

    return sum(len(ExperimentAnalysis(f"{ray_storage(spec)}/{run}").trials) for run in spec.ray_runs)


def run_search(experiment: Experiment, spec: SearchSpec, resume: bool = False, address: str | None = None) -> int:
    """Launch (or resume, or extend) the search; print the report; exit code 0 unless no trial completed."""
    from rnnlab.data import load_task_data
    from rnnlab.search_report import close_orphans, report_search
    from rnnlab.search_wandb import log_search_results

    cfg = experiment.config
    if experiment.search_space is None:
        raise ConfigError("search_space", f"{experiment.path} defines no search_space(trial); nothing to search")
    check_storage(spec.storage)
    Path(spec.folder).mkdir(parents=True, exist_ok=True)
    spec.save()
    load_task_data(cfg.data, cfg.seed)  # prepare once, before the fan-out: trials read the warm cache
    connect(address)
    t0 = time.time()
    if resume:
        build_tuner(experiment, spec, 0, spec.ray_runs[-1], restore=True).fit()
    done = count_ray_trials(spec) if resume else 0
    if done < cfg.search.samples:  # a fresh search, or more samples asked of a finished one: same study
        if resume:
            spec.ray_runs.append(f"{RAY_DIR}-{len(spec.ray_runs) + 1}")
            spec.save()
        build_tuner(experiment, spec, cfg.search.samples - done, spec.ray_runs[-1]).fit()
    close_orphans(spec)
    code = report_search(spec, wall_time=time.time() - t0)
    log_search_results(spec, cfg)  # a W&B Table of the trials (tracking on), a workspace when online
    return code
