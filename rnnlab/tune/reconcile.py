"""What a resume sets right before Ray restores a search whose driver died: the study against rnnlab's own record
(the trial folders) and Ray's last saved state, which lags the study by up to Ray's save period (10 s or more).

A trial still RUNNING in the study is, by what the record shows:
- in Ray's saved state as unfinished: Ray resumes it, and the searcher tells how it ends;
- ended in its folder (a whole result.json) but its end is not in the study (its journal record was in a torn
  tail, set aside): told from its result.json, with the epochs of its metrics.jsonl as intermediate values;
- neither: it began after Ray's last save and died with the driver (orphaned, another trial takes its place).
A trial that ended in the study but that Ray's state holds as unfinished must not run again (`finished_ids`).
A trial Ray resumes whose checkpoint in Ray's state is gone gets it back (`restore_lost_checkpoints`).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from rnnlab.records import RunRecord, read_metrics
from rnnlab.search_folder import (
    LOST_REASON,
    STUDY_NAME,
    SearchSpec,
    close_orphans,
    counts_as_sample,
    has_study,
    load_study,
    open_study_storage,
    read_json,
    trial_folder,
)
from rnnlab.storage import is_uri, join

logger = logging.getLogger(__name__)

ENDED = {"completed", "early_stopped", "stopped", "diverged", "failed", "out_of_memory"}  # result.json's statuses
UNFINISHED_IN_RAY = {"PENDING", "RUNNING", "PAUSED"}


def ray_statuses(spec: SearchSpec, storage: str) -> dict[str, str]:
    """Ray trial id -> its status in Ray's saved state, across the search's launches."""
    from ray.tune import ExperimentAnalysis

    statuses = {}
    for run in spec.ray_runs:
        try:
            trials = ExperimentAnalysis(join(storage, run)).trials
        except Exception:  # a launch killed before Ray first saved its state
            continue
        statuses.update({t.trial_id: t.status for t in trials})
    return statuses


def reconcile(spec: SearchSpec, storage: str, metrics: list[str]) -> set[str]:
    """Set the study right from the trial folders before Ray restores; returns the Ray ids the study holds as
    ended (the trainable reports their result without training them again)."""
    import optuna

    if not has_study(spec.folder):
        return set()
    restore_lost_checkpoints(spec, storage)
    statuses = ray_statuses(spec, storage)
    study = optuna.load_study(study_name=STUDY_NAME, storage=open_study_storage(spec.folder))
    lost = set()
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        ray_id = t.user_attrs.get("ray_trial_id")
        if not ray_id or statuses.get(ray_id) in UNFINISHED_IN_RAY:
            continue  # asked and never run (closed at the end), or Ray resumes it
        result = read_json(trial_folder(spec, ray_id) / "result.json")
        if result.get("status") in ENDED:
            tell_from_result(study, t, result, trial_folder(spec, ray_id), metrics)
            logger.warning(f"trial {ray_id}: its end was not in the study (a torn journal); told from its result.json")
        else:  # its epochs stay in the study, as for any trial that ended: a step per metrics.jsonl row
            tell_epochs(study, t, trial_folder(spec, ray_id), metrics)
            lost.add(ray_id)
    if lost:
        logger.warning(
            f"trial(s) {', '.join(sorted(lost))} began after Ray last saved its state and ended with the driver, "
            "unfinished: each is replaced by a new trial"
        )
        started = {ray_id for ray_id in lost if trial_folder(spec, ray_id).is_dir()}
        record_orphans(spec, close_orphans(spec, LOST_REASON, only=started), LOST_REASON)
        close_orphans(spec, only=lost - started)  # asked, no folder: it never began on a worker ("not run")
    fill_missing_results(spec, study)
    return {t.user_attrs.get("ray_trial_id", "") for t in study.get_trials(deepcopy=False) if t.state.is_finished()}


def restore_lost_checkpoints(spec: SearchSpec, storage: str) -> None:
    """Each trial Ray resumes whose latest checkpoint in Ray's saved state no longer exists: that checkpoint again,
    as a copy of the newest whole one Ray kept for the trial.

    Ray keeps a trial's newest two checkpoints (CheckpointConfig(num_to_keep=2)), deleting older ones as it registers
    newer ones, and uploads its state, which names the trial's latest, later and in the background: a driver killed
    in between leaves a state naming a deleted checkpoint. Ray's restore of that trial then fails on every retry
    ("Could not recover from checkpoint as it does not exist on storage anymore"): it ended errored, FAIL in the
    study, and the search drew one trial more than its budget. Its newer checkpoints are whole on the storage (Ray
    registers a checkpoint once its worker has uploaded it): it resumes from the newest.
    """
    from pyarrow.fs import FileType, copy_files
    from ray.tune import ExperimentAnalysis

    try:
        trials = ExperimentAnalysis(join(storage, spec.ray_runs[-1])).trials  # the launch Tuner.restore resumes
    except Exception:  # a launch killed before Ray first saved its state: nothing to restore
        return
    for trial in trials:
        named = trial.checkpoint
        if trial.status == "TERMINATED" or named is None:
            continue
        fs = named.filesystem
        if fs.get_file_info(named.path).type != FileType.NotFound:
            continue
        source = newest_whole_checkpoint(fs, named.path.rsplit("/", 1)[0])
        if source is None:
            logger.warning(f"trial {trial.trial_id}: its checkpoint {named.path} is gone and no other is whole")
            continue
        fs.create_dir(named.path)
        copy_files(source, named.path, source_filesystem=fs, destination_filesystem=fs)
        logger.warning(
            f"trial {trial.trial_id}: Ray's saved state names the checkpoint {named.path}, deleted after that "
            f"state was saved; it resumes from {source.rsplit('/', 1)[-1]}, the newest Ray kept"
        )


def newest_whole_checkpoint(fs, trial_path: str) -> str | None:
    """The newest `checkpoint_*` folder of a trial in Ray's storage whose state matches its marker (checkpoint.py)."""
    from pyarrow.fs import FileSelector, FileType

    from rnnlab.checkpoint import MARKER, STATE, marker_matches

    found = fs.get_file_info(FileSelector(trial_path, allow_not_found=True))
    folders = [i.path for i in found if i.type == FileType.Directory and i.base_name.startswith("checkpoint_")]
    for folder in sorted(folders, reverse=True):
        try:
            with fs.open_input_stream(f"{folder}/{STATE}") as state, fs.open_input_stream(f"{folder}/{MARKER}") as mark:
                if marker_matches(state.readall(), mark.readall()):
                    return folder
        except OSError:  # a file missing: the upload was cut short
            continue
    return None


def tell_from_result(study, trial, result: dict, out: Path, metrics: list[str]) -> None:
    """Tell Optuna the trial's end as the searcher would have from its summary row (searcher.StudySearch)."""
    from optuna.trial import TrialState

    storage = study._storage  # noqa: SLF001 -- Optuna 5's storage API sets a trial's attrs and steps by its id
    trial_id = trial._trial_id  # noqa: SLF001
    tell_epochs(study, trial, out, metrics)
    status, values = result["status"], [result.get(m) for m in metrics]
    state, reason = TrialState.COMPLETE, None
    if status == "stopped":
        state, reason = TrialState.PRUNED, str(result.get("reason"))
    elif status == "diverged":
        state, reason = TrialState.PRUNED, f"diverged: {result.get('reason')}"
    elif status in ("failed", "out_of_memory"):
        state, reason = TrialState.FAIL, str(result.get("reason"))
    elif missing := [m for m, v in zip(metrics, values) if not (isinstance(v, (int, float)) and math.isfinite(v))]:
        state, reason = TrialState.FAIL, f"no finite value of {', '.join(missing)} in the trial's result"
    if reason is not None:
        storage.set_trial_user_attr(trial_id, "reason", reason)
        study.tell(trial.number, state=state)
    else:
        study.tell(trial.number, [float(v) for v in values] if len(values) > 1 else float(values[0]))


def tell_epochs(study, trial, out: Path, metrics: list[str]) -> None:
    """The epochs of the trial's metrics.jsonl the study misses, as intermediate values (single objective only, as
    the searcher reports them): what the driver died before it was told."""
    if len(metrics) != 1:
        return
    storage = study._storage  # noqa: SLF001 -- Optuna 5's storage API sets a trial's steps by its id
    for row in read_metrics(out / "metrics.jsonl"):
        value, epoch = row.get(metrics[0]), row.get("epoch")
        if isinstance(value, (int, float)) and math.isfinite(value) and epoch not in trial.intermediate_values:
            storage.set_trial_intermediate_value(trial._trial_id, int(epoch), float(value))  # noqa: SLF001


def fill_missing_results(spec: SearchSpec, study) -> None:
    """A trial the scheduler stopped on a reused worker writes its result.json when the worker takes its next
    trial: a driver killed in between leaves it PRUNED in the study without one. Its result.json from the study."""
    for t in study.get_trials(deepcopy=False):
        out = trial_folder(spec, t.user_attrs.get("ray_trial_id", "-"))
        if t.state.name == "PRUNED" and out.is_dir() and not (out / "result.json").exists():
            reason = str(t.user_attrs.get("reason", "stopped"))
            status = "diverged" if reason.startswith("diverged") else "stopped"
            end_trial_run(spec, t.user_attrs["ray_trial_id"], RunRecord(out).finish(status, reason))  # last row


def record_orphans(spec: SearchSpec, ray_ids: list[str], reason: str) -> None:
    """An orphan that had started has a folder: its result.json says how it ended, as the study does, and so does
    its W&B run."""
    for ray_id in ray_ids:
        out = trial_folder(spec, ray_id)
        if out.is_dir() and not (out / "result.json").exists():
            end_trial_run(spec, ray_id, RunRecord(out).finish("failed", reason))


def end_trial_run(spec: SearchSpec, ray_id: str, result: dict) -> None:
    """The W&B run of a trial whose end the driver wrote (its worker died with the previous driver), ended with
    that result, as the trial itself would have: its own config (config.json), else the search's with its params."""
    from rnnlab.registries import from_flat_dict
    from rnnlab.tracking.tracker import end_torn_run
    from rnnlab.tune.trainable import NUMBER_KEY

    out = trial_folder(spec, ray_id)
    params = {k: v for k, v in read_json(out / "params.json").items() if k != NUMBER_KEY}
    try:
        cfg = from_flat_dict(read_json(out / "config.json").get("flat") or {**spec.config, **params})
    except Exception as err:  # a hand-edited record: its W&B run stays as the dead worker left it
        logger.warning(f"trial {ray_id}: its W&B run is left open ({type(err).__name__}: {err})")
        return
    if end_torn_run(cfg, out, f"{spec.name}-{ray_id}", spec.name, ray_id, result):
        logger.info(f"trial {ray_id}: its W&B run, left open when its worker died, now ends {result['status']}")


def saved_state(spec: SearchSpec, storage: str) -> bool:
    """Whether Ray saved the state of the search's last launch: a driver killed in its first moments (or, extending
    a search, between search.json naming the launch and Ray's first save) leaves none, a full disk a torn one. Its
    trials are in the study."""
    from ray import tune

    path = join(storage, spec.ray_runs[-1])
    if whole_state(path) and tune.Tuner.can_restore(path):
        return True
    logger.warning(
        f"Ray saved no whole state of the launch {spec.ray_runs[-1]} (its driver died first, or a full disk tore "
        "it); the search goes on from the trials the study holds"
    )
    return False


def whole_state(path: str) -> bool:
    """Whether a launch's folder holds a whole saved state of Ray's. Ray copies its state in place: a full disk (or a
    kill) mid-copy leaves a torn file, which Ray fails to restore from, with a traceback, then starts over. A torn
    one is renamed `*.torn`, so Ray restores from the one before it, if any; the record (the study, the trial
    folders) tells what came after. A URI storage's state is not read here: True."""
    if is_uri(path):
        return True
    for state in sorted(Path(path).glob("experiment_state-*.json"), reverse=True):
        try:
            json.loads(state.read_bytes())
            return True
        except ValueError:
            aside = state.with_name(state.name + ".torn")
            state.rename(aside)
            logger.warning(
                f"Ray's saved state {state.name} is torn (a full disk or a kill while it was written); it is set "
                f"aside in {aside.name}"
            )
    return False


def count_samples(spec: SearchSpec) -> int:
    """The trials of the search's budget that the study holds (search_folder.counts_as_sample): the record, not
    Ray's state, which misses the trials begun after its last save when a driver is killed."""
    if not has_study(spec.folder):
        return 0
    return sum(counts_as_sample(t) for t in load_study(spec.folder).trials)
