"""Hyperparameter search: Optuna proposes trials from the experiment's define-by-run space, Ray Tune runs them.

One search is one folder, `<storage>/<name>/`: `search.json` (what to resume or replay), `optuna.journal` (the
Optuna study), `ray/` (Ray's experiment state and checkpoints) and `trials/<trial_id>/` (each trial's run_trial
record and W&B run). A trial has one id everywhere: Ray's trial_id is the Optuna user attr `ray_trial_id`, the
folder name and, prefixed with the search name, the W&B run id. This module is the driver (the Tuner, its launches
and resume; checks before launch and the scheduler are in prelaunch.py, the Optuna searcher in searcher.py); each
trial runs `trainable.train_trial` in a Ray worker.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import threading
import time
from pathlib import Path

from rnnlab import console
from rnnlab.config import ConfigError
from rnnlab.config.overrides import to_flat_dict
from rnnlab.experiment import Experiment
from rnnlab.journal import clear_stale_lock
from rnnlab.records import environment_fault
from rnnlab.resume import check_search_data, data_record
from rnnlab.search_folder import (
    JOURNAL_FILE,
    RAY_DIR,
    SEARCH_FILE,
    TRIALS_DIR,
    SearchSpec,
    set_aside_torn_tail,
)
from rnnlab.storage import (
    join,
    pull_trials,
    push_search,
    search_uri,
)
from rnnlab.tune.controller import ENVIRONMENT_FAULTS, installed
from rnnlab.tune.prelaunch import (
    SearchExists,
    check_address,
    check_fits,
    check_search_folder,
    check_search_space,
    check_storage,
)
from rnnlab.tune.ray_runtime import connect, import_while_ray_starts, shut_down_in_background
from rnnlab.tune.reconcile import count_samples, reconcile, record_orphans, saved_state
from rnnlab.tune.schedulers import make_scheduler
from rnnlab.tune.searcher import StudySearch, grid_from_space, grid_size, make_sampler, make_searcher, objective_list
from rnnlab.tune.stop_signals import TERMINATED, Search, sigterm_stops_search
from rnnlab.tune.trainable import TrialSetup, make_trainable, stop_recorder

__all__ = ["StudySearch", "connect", "make_searcher", "run_search"]  # StudySearch: for searches pickled before it moved

logger = logging.getLogger(__name__)
NO_AUTO_LOGGERS = "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"  # read by Ray when fit() builds its callbacks


# --- the search ------------------------------------------------------------------------------------------------


def ray_storage(spec: SearchSpec) -> str:
    """Where Ray keeps the search's experiment state: the search folder, or `<uri>/<name>` for a URI storage."""
    return search_uri(spec) or spec.folder


# trial_dirname (and progress.SearchProgress) are pickled by module path into ray/tuner.pkl: keep them where they
# are, or an older search cannot be resumed.
def trial_dirname(trial) -> str:
    return trial.trial_id


def build_tuner(
    experiment: Experiment,
    spec: SearchSpec,
    samples: int,
    ray_run: str,
    restore: bool = False,
    ended: set[str] = frozenset(),
):
    """A Tuner for `samples` new trials under `ray_run`, or the restored one of a search whose driver died (whose
    trials that `ended` in the study, though Ray's saved state has them running, report their end, not train)."""
    from ray import tune
    from ray.tune.logger import JsonLoggerCallback
    from ray.tune.search import ConcurrencyLimiter

    from rnnlab.tune.progress import SearchProgress

    cfg = experiment.config
    s = cfg.search
    setup = TrialSetup(
        base=to_flat_dict(cfg),
        folder=spec.folder,
        name=spec.name,
        cpus=s.cpus_per_trial,
        verbosity=console.verbosity(),
        remote=search_uri(spec),
        ended=frozenset(ended),
    )
    trainable = make_trainable(setup, s.cpus_per_trial, s.gpus_per_trial)
    storage = ray_storage(spec)
    path = join(storage, ray_run)
    if restore:
        StudySearch.relocate_to, StudySearch.relocate_uri = spec.folder, search_uri(spec)
        return tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=True, restart_errored=False)
    grid = None
    if s.sampler == "grid":
        grid = grid_from_space(experiment.search_space)
        if grid_size(grid) != samples:
            logger.info(f"note: the grid has {grid_size(grid)} points and the search runs {samples} samples")
    study_search = make_searcher(experiment.search_space, cfg, spec.folder, grid, search_uri(spec))
    study_search.ray_run = ray_run
    searcher = ConcurrencyLimiter(study_search, s.concurrency)
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=make_scheduler(cfg),
            num_samples=samples,
            trial_dirname_creator=trial_dirname,
            trial_name_creator=trial_dirname,
            # a reused worker first waits for its previous trial to record its end
            # (trainable.GracefulStop.reset_config)
            reuse_actors=s.reuse_workers,
        ),
        run_config=tune.RunConfig(
            name=ray_run,
            storage_path=storage,
            verbose=1 if console.is_verbose() else 0,
            # Ray's result.json per trial (its ExperimentAnalysis reads it), not its CSV and TensorBoard copies:
            # a third of the driver's CPU per short trial (fit_tuner turns Ray's automatic loggers off);
            # stop_recorder first: a stopped trial's worker records its end before the searcher hears of it
            callbacks=[stop_recorder(), SearchProgress(cfg.metric, cfg.mode, samples), JsonLoggerCallback()],
            failure_config=tune.FailureConfig(max_failures=s.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        ),
    )


def fit_tuner(tuner, samples: int | None = None, local_disk: bool = True) -> bool:
    """Run the tuner; False when it was interrupted (SIGINT, or a trial met a full disk of the search's own folder,
    `local_disk`: Tune saved its state and returned early).

    Ray's automatic CSV and TensorBoard loggers stay off (build_tuner passes its JSON logger itself).

    Tune installs its own SIGINT handler for the run and puts the previous one back only when a SIGINT fires it:
    left in place, it would swallow a SIGINT that comes after the run (while the report is written, or between a
    resume's two launches), and the driver would go on and exit 0. So the previous handler is put back here, and a
    SIGINT that fired Tune's handler as its last trial ended is an interruption too."""
    in_main = threading.current_thread() is threading.main_thread()  # Tune and Python handle signals only there
    before = signal.getsignal(signal.SIGINT)
    saved = os.environ.get(NO_AUTO_LOGGERS)
    os.environ[NO_AUTO_LOGGERS] = "1"
    try:
        with installed(local_disk):  # a reused worker that died idle costs a retry, a full disk stops (controller.py)
            grid = tuner.fit()
    finally:
        tune_handler = signal.getsignal(signal.SIGINT)
        if in_main:
            signal.signal(signal.SIGINT, before)
        if saved is None:
            del os.environ[NO_AUTO_LOGGERS]
        else:
            os.environ[NO_AUTO_LOGGERS] = saved
    tune_watched = in_main and not int(os.environ.get("TUNE_DISABLE_SIGINT_HANDLER", "0"))
    fired = tune_watched and tune_handler is before  # Tune's handler, once fired, has put `before` back
    unfinished = len(grid) - grid.num_terminated - grid.num_errors
    return not fired and unfinished == 0 and (samples is None or len(grid) >= samples)


FREE_NAMES = 1000  # NAME-TIMESTAMP, then -2 ... -999: searches of one experiment started in one second


def run_search(
    experiment: Experiment, spec: SearchSpec, resume: bool = False, address: str | None = None, free_name: bool = False
) -> int:
    """Launch (or resume, or extend) the search; print the report; exit code 0 unless no trial completed.

    Bad input (the config, the data, the space) fails before the search folder is created or Ray starts. SIGINT
    stops the search cleanly: Tune saves its state, the trials record where they stopped, the exit code is 130;
    SIGTERM (a scheduler, `kill`) does the same with exit code 143 (stop_signals.py).
    Below -v, Ray Tune, Ray and Optuna stay quiet (`console.quiet_libraries`). `free_name` (a default name,
    NAME-TIMESTAMP): a folder another search of the same second holds or has taken moves this one to
    NAME-TIMESTAMP-2, -3, ... (`spec.name` and `spec.folder` say which), as `rnnlab run` does for run folders.
    """
    from rnnlab.folder_lock import FolderBusy

    check_storage(spec.storage)  # before the folder lock creates the folder
    name, folder = spec.name, Path(spec.folder)
    for n in range(1, FREE_NAMES if free_name else 2):
        if n > 1:  # the folder as given first: a copied search's name is the original's, its folder its own
            spec.name, spec.folder = f"{name}-{n}", str(folder.with_name(f"{name}-{n}"))
        held: list[bool] = []
        try:
            return search_in_folder(experiment, spec, resume, address, held)
        except (FolderBusy, SearchExists):
            if not free_name or held:  # a name given is refused; so is an error of the search itself
                raise
    raise ConfigError("--name", f"every default name {name}-N of this second is taken; give one with --name")


def search_in_folder(experiment: Experiment, spec: SearchSpec, resume: bool, address: str | None, held: list) -> int:
    """The search in its folder, held for its whole run (`held` gets an entry once it is)."""
    from rnnlab.folder_lock import hold_folder

    check = functools.partial(check_search_folder, spec, resume)
    flag = "--resume" if resume else "--name"
    stopping = Search(
        f"rnnlab tune {spec.folder} --resume", functools.partial(push_search, spec), Path(spec.folder, TRIALS_DIR)
    )
    with console.quiet_libraries(), sigterm_stops_search(stopping), hold_folder(spec.folder, flag, check):
        held.append(True)
        clear_stale_lock(str(Path(spec.folder, JOURNAL_FILE)), logger.warning)
        try:
            return search(experiment, spec, resume, address)
        except KeyboardInterrupt:  # SIGINT (or SIGTERM) outside Tune's run: before it, between launches, the report
            if not Path(spec.folder, SEARCH_FILE).is_file():
                raise
            return interrupted(spec)
        except OSError as err:  # the driver's own write refused: the journal, Ray's state, the report
            if (fault := environment_fault(err)) is None or not Path(spec.folder, SEARCH_FILE).is_file():
                raise
            return out_of_disk(spec, f"{fault.strerror} ({fault.filename or 'the driver writing its records'})")


def search(experiment: Experiment, spec: SearchSpec, resume: bool, address: str | None) -> int:
    from rnnlab.search_folder import DRIVER_FAILED, ORPHANED, close_orphans
    from rnnlab.search_report import report_search
    from rnnlab.tracking import resolve_mode
    from rnnlab.tracking.search import log_search_results
    from rnnlab.trial import prepare_data

    cfg = experiment.config
    if experiment.search_space is None:
        raise ConfigError("search_space", f"{experiment.path} defines no search_space(trial); nothing to search")
    check_storage(spec.storage)
    check_address(address)  # a cluster that does not answer: before the data are prepared
    drawn = check_search_space(experiment.search_space, cfg, () if resume else spec.overrides)
    make_scheduler(cfg)  # an unsupported scheduler or sampler fails now, not once Ray is up
    if cfg.search.sampler != "grid":
        make_sampler(cfg)
    else:  # a space the grid cannot enumerate (a continuous parameter) fails now, not once Ray is up
        grid_from_space(experiment.search_space)
    resolve_mode(cfg)  # a bad WANDB_MODE fails here, not in every trial
    data = data_record(cfg, prepare_data(cfg))  # prepared once, before the fan-out: trials read the warm cache
    if resume:  # the data of its earlier trials, or the search is refused here: nothing written yet
        check_search_data(spec, cfg, data)
    spec.data = data
    if any(c.model.family == "indrnn" for c in [cfg, *drawn]):
        from rnnlab.models.indrnn import prepare_kernel

        prepare_kernel()  # build the C++ recurrence once, here: the trials on this machine find it built
    import_while_ray_starts(resolve_mode(cfg) != "disabled")
    started = connect(address)
    check_fits(cfg, address)  # a trial no node can hold would wait forever
    Path(spec.folder).mkdir(parents=True, exist_ok=True)
    spec.save()
    push_search(spec)  # a URI storage: search.json (and a resumed journal) in the bucket before any trial runs
    if aside := set_aside_torn_tail(spec.folder):  # a kill mid-append: new records must not follow the fragment
        logger.warning(
            f"{JOURNAL_FILE} ended in a torn record (a kill while it was written); it is set aside in "
            f"{aside} and the study continues from the last whole record"
        )
    t0 = time.time()
    StudySearch.samples = cfg.search.samples  # no trial is asked beyond the budget, whatever Ray's state says
    local = search_uri(spec) is None  # the trials write to the search's folder, not each to its node's disk
    try:
        restorable = resume and saved_state(spec, ray_storage(spec))
        if resume:
            ended = reconcile(spec, ray_storage(spec), objective_list(cfg)[0])  # the study as the trial folders say
        restored = restorable and build_tuner(experiment, spec, 0, spec.ray_runs[-1], restore=True, ended=ended)
        if restored and not fit_tuner(restored, local_disk=local):
            return interrupted(spec)
        restored = None  # its Ray objects go while Ray is up (ray_runtime.shut_down_in_background)
        done = count_samples(spec)
        if resume and done > cfg.search.samples:
            logger.info(
                f"note: the study holds {done} trials, more than search.samples={cfg.search.samples}; none added"
            )
        if done < cfg.search.samples:  # a fresh search, or more samples asked of a finished one: same study
            if restorable:  # else the launch Ray saved nothing of is taken up again under its name
                spec.ray_runs.append(f"{RAY_DIR}-{len(spec.ray_runs) + 1}")
                spec.save()
                push_search(spec)
            samples = cfg.search.samples - done
            if not fit_tuner(build_tuner(experiment, spec, samples, spec.ray_runs[-1]), samples, local):
                return interrupted(spec)
    except BaseException as err:  # the driver itself failed: no trial of the study stays RUNNING
        environment = environment_fault(err) is not None  # a full disk: they stay running, for the resume
        if not isinstance(err, KeyboardInterrupt) and not environment and Path(spec.folder, JOURNAL_FILE).is_file():
            reason = f"{DRIVER_FAILED} ({type(err).__name__}: {str(err)[:200]}); not finished"
            record_orphans(spec, close_orphans(spec, reason), reason)  # their folders say what the study says
        raise
    stopping = shut_down_in_background(started)  # no trial runs any more
    pull_trials(spec)  # a URI storage: the trials' folders, uploaded by their workers, for the report
    reason = f"{ORPHANED}: asked before the driver died; not run"
    record_orphans(spec, close_orphans(spec, reason), reason)
    # a W&B Table of the trials (tracking on), a workspace when online: in a thread, where it mostly waits on
    # wandb-core, while the report draws its plots (it reads the folder, which neither writes but for its own files)
    table = threading.Thread(target=log_search_results, args=(spec, cfg), name="search-table")
    table.start()
    try:
        code = report_search(spec, wall_time=time.time() - t0)
    finally:
        table.join()
    push_search(spec)  # the journal's last changes, the plots
    if stopping is not None:
        stopping.join()
    return code


def interrupted(spec: SearchSpec) -> int:
    with contextlib.suppress(Exception):  # a second SIGINT, or a bucket out of reach: the folder has the state
        push_search(spec)
    if ENVIRONMENT_FAULTS:  # a trial met a full disk: the search stopped as on SIGINT (tune/controller.py)
        return out_of_disk(spec, ", ".join(f"trial {t}: {why}" for t, why in ENVIRONMENT_FAULTS.items()))
    how = f"stopped by {TERMINATED[0]}" if TERMINATED else "interrupted"
    logger.warning(
        f"search {how}; its state is saved. Continue it (or write its report) with: rnnlab tune {spec.folder} --resume"
    )
    return 143 if TERMINATED else 130


def out_of_disk(spec: SearchSpec, what: str) -> int:
    """The search stopped on a full (or read-only, or failing) disk: what met it and the way on. Exit code 1."""
    logger.error(
        f"the search stopped: {what}. Its state is saved as far as the disk allowed, and no trial ended failed "
        f"for it: free space, then continue it with: rnnlab tune {spec.folder} --resume"
    )
    return 1
