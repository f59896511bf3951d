"""The search's Optuna searcher: Ray Tune's OptunaSearch on the search folder's journal, telling Optuna how each
trial really ended (a scheduler stop or divergence as PRUNED with its reason, a failure as FAIL with the worker's
own error), the samplers, and the grid a define-by-run space spans.
"""

from __future__ import annotations

import contextlib
import logging
import math
from pathlib import Path
from typing import Any

from ray.tune.search.optuna import OptunaSearch

from rnnlab.config import Config, ConfigError
from rnnlab.search_folder import RAY_DIR, STUDY_NAME, TRIALS_DIR, counts_as_sample, has_study, load_study
from rnnlab.storage import join, open_mirrored_study_storage
from rnnlab.tune.controller import RAY_ERRORS
from rnnlab.tune.reconcile import ENDED
from rnnlab.tune.trainable import FINAL_KEY, NUMBER_KEY, replay_command, stopped_reason

logger = logging.getLogger(__name__)
OWN_ENDS = ENDED - {"stopped"}  # a trial's own ends in result.json: a stopped one did not end of itself


def objective_list(cfg: Config) -> tuple[list[str], list[str]]:
    """Metrics and modes Optuna optimises: `cfg.metric` first, then `search.objectives` ("split/name:mode")."""
    metrics, modes = [cfg.metric], [cfg.mode]
    for objective in cfg.search.objectives:
        name, _, mode = objective.partition(":")
        metrics.append(name)
        modes.append(mode)
    return metrics, modes


# StudySearch is pickled by module path into ray/tuner.pkl: keep it here (rnnlab.tune.driver re-exports it for
# searches saved before it moved), or an older search cannot be resumed.
class StudySearch(OptunaSearch):
    """Records each trial's Ray id and Optuna number; scheduler stops and divergence end as PRUNED + reason."""

    folder = ""  # the search folder, for the replay command in an error's reason
    ray_run = RAY_DIR  # Ray's run folder of this launch, where Ray writes a failed trial's error.txt
    space_failures = 0  # consecutive trials whose search_space raised
    relocate_to: str | None = None  # set by the driver before Ray restores a pickled searcher: the current folder
    relocate_uri: str | None = None  # and its URI storage, if any
    uri: str | None = None  # a URI storage's <uri>/<name>: a trial's record is there, uploaded by its worker
    samples: int | None = None  # set by the driver: search.samples, the trials of the whole search

    def held_samples(self) -> int:
        """The trials of the budget the study holds (asked for Ray, not orphaned), this launch's included."""
        return sum(counts_as_sample(t) for t in self._ot_study.get_trials(deepcopy=False))

    def restore(self, checkpoint_path: str) -> None:
        """The pickled searcher, on the journal of the folder being resumed (`relocate_to`): the pickle names the
        folder it was saved in, which for a copied or moved search is the original's."""
        import optuna

        super().restore(checkpoint_path)
        if StudySearch.relocate_to and Path(StudySearch.relocate_to) != Path(self.folder):
            self.folder, self.uri = StudySearch.relocate_to, StudySearch.relocate_uri
            storage = open_mirrored_study_storage(self.folder, StudySearch.relocate_uri)
            self._ot_study = optuna.load_study(study_name=STUDY_NAME, storage=storage, sampler=self._ot_study.sampler)
            # Trial(study, id) is Optuna's public constructor; _trial_id is the storage's id of the trial (Optuna 5.0)
            self._ot_trials = {k: optuna.trial.Trial(self._ot_study, t._trial_id) for k, t in self._ot_trials.items()}
        # trials that ended in the study after the state restored was saved: their first ending stays
        ended = {
            t.user_attrs.get("ray_trial_id") for t in self._ot_study.get_trials(deepcopy=False) if t.state.is_finished()
        }
        self._completed_trials |= ended & set(self._ot_trials)

    def suggest(self, trial_id: str) -> dict | None:
        from ray.tune.search import Searcher

        if self.samples is not None and self.held_samples() >= self.samples:
            return Searcher.FINISHED  # a restored Ray run counts only the trials of its last state save
        try:
            params = super().suggest(trial_id)
        except Exception as err:  # the space raised on this draw: that Optuna trial fails, the search goes on
            return self.space_failed(trial_id, err)
        self.space_failures = 0
        if params is None:
            return None
        ot_trial = self._ot_trials[trial_id]
        ot_trial.set_user_attr("ray_trial_id", trial_id)
        return {**params, NUMBER_KEY: ot_trial.number}

    def space_failed(self, trial_id: str, err: Exception) -> str | None:
        """Tell FAIL (with the error) for the draw the space raised on; after 3 in a row, end the search."""
        from optuna.trial import TrialState
        from ray.tune.search import Searcher

        reason = f"search_space raised {type(err).__name__}: {err}"
        ot_trial = self._ot_trials.pop(trial_id, None)
        if ot_trial is not None:
            ot_trial.set_user_attr("reason", reason)
            self._ot_study.tell(ot_trial, state=TrialState.FAIL)
        self.space_failures += 1
        logger.error(f"trial #{getattr(ot_trial, 'number', '?')}: {reason}")
        if self.space_failures < 3:
            return None  # Ray asks again with a new trial id; the sampler draws again
        logger.error(
            "search_space raised on 3 draws in a row; no more trials start (fix it and extend the search with --resume)"
        )
        return Searcher.FINISHED

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        from optuna.exceptions import UpdateFinishedTrialError

        try:
            self.report_epoch(trial_id, result)
        except UpdateFinishedTrialError:  # it ended before the driver died; Ray resumed it from its last checkpoint
            self._completed_trials.add(trial_id)

    def report_epoch(self, trial_id: str, result: dict) -> None:
        """The epoch's value as Optuna's intermediate value at step = epoch (OptunaSearch's step is Ray's
        training_iteration, which counts the summary row as a step); the summary row itself is told at the end.
        A one-epoch trial's summary row holds its epoch (trainable.py): that step is reported from it."""
        value = result.get(self.metric) if isinstance(self.metric, str) else None  # multi-objective: no steps
        if "epoch" not in result or not isinstance(value, (int, float)) or not math.isfinite(value):
            return
        if trial_id not in self._completed_trials:  # a step reported already (a retried epoch) is kept as it was
            self._ot_trials[trial_id].report(float(value), int(result["epoch"]))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is None or trial_id in self._completed_trials:
            return
        if not result and not error:  # Ray ended it paused or pending (HyperBand closing a bracket): no row
            result = self.recorded_end(trial_id)
        result = result or {}
        reason = None
        if error:
            reason = self.error_reason(trial_id)
            if Path(self.folder, TRIALS_DIR, trial_id).is_dir():  # else it never ran (its worker died first)
                reason += f"; replay it with: {replay_command(self.uri or self.folder, trial_id)}"
        elif not result.get(FINAL_KEY):  # a scheduler stop: Ray passes the epoch it stopped on here, not to
            self.report_epoch(trial_id, result)  # on_trial_result, and the PRUNED value is the last one reported
            reason = stopped_reason(result)
        elif result.get("status") == "diverged":
            reason = f"diverged: {result.get('reason')}"
        elif result.get("status") in ("out_of_memory", "failed"):
            reason, error = str(result.get("reason")), True
        elif missing := [m for m in self.metrics() if not is_finite(result.get(m))]:
            reason, error = f"no finite value of {', '.join(missing)} in the trial's result", True
        if reason is None:
            return super().on_trial_complete(trial_id, result, error)
        from optuna.trial import TrialState

        try:
            ot_trial.set_user_attr("reason", reason)
            self._ot_study.tell(ot_trial, state=TrialState.FAIL if error else TrialState.PRUNED)
        except Exception as err:  # told already, before a driver restart: the journal keeps the first ending
            logger.info(f"note: trial {trial_id} already ended in the study ({err})")
        self._completed_trials.add(trial_id)

    def metrics(self) -> list[str]:
        return self.metric if isinstance(self.metric, list) else [self.metric]

    def own_record(self, trial_id: str) -> Path:
        """The trial's folder, brought from the bucket first with a URI storage (written on the worker's node)."""
        from rnnlab.storage import pull

        folder = Path(self.folder, TRIALS_DIR, trial_id)
        if self.uri:
            with contextlib.suppress(OSError):
                pull(join(self.uri, TRIALS_DIR, trial_id), folder)
        return folder

    def recorded_end(self, trial_id: str) -> dict:
        """How a trial that Ray stopped while paused ended, by its own record. HyperBand pauses a trial at each
        milestone, after its summary row too, and may stop it paused, which Ray tells without a result: it was
        told PRUNED "after epoch 0", though it had completed (8 of 16 trials, the best among them). A trial that
        ended is told its end (result.json); one the pause cut short, a stop after its last recorded epoch."""
        from rnnlab.records import read_metrics
        from rnnlab.search_folder import read_json

        folder = self.own_record(trial_id)
        result = read_json(folder / "result.json")
        if result.get("status") in OWN_ENDS:
            return {**result, FINAL_KEY: True}
        try:  # a corrupted metrics.jsonl (read_metrics names it) must not fail the driver: the stop is still told
            rows = read_metrics(folder / "metrics.jsonl") if (folder / "metrics.jsonl").is_file() else []
        except ConfigError:
            rows = []
        return {"epoch": rows[-1].get("epoch", 0)} if rows else {}

    def error_reason(self, trial_id: str) -> str:
        """Why a trial errored: the worker's own record (result.json), else the error Ray ended it with (this
        driver's), else the last line of Ray's error.txt."""
        from rnnlab.search_folder import read_json

        result = read_json(self.own_record(trial_id) / "result.json")
        if result.get("status") == "failed" and result.get("reason"):
            return str(result["reason"])
        if trial_id in RAY_ERRORS:  # the error Ray ended it with (a worker's death: the trial had no say)
            return RAY_ERRORS[trial_id]
        try:
            lines = Path(self.folder, self.ray_run, trial_id, "error.txt").read_text().strip().splitlines()
        except OSError:
            return "error (Ray recorded no error file)"
        return lines[-1][:300] if lines else "error"


def is_finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def make_searcher(space, cfg: Config, folder: str | Path, grid: dict[str, list] | None = None, uri: str | None = None):
    """OptunaSearch on the search's journal (mirrored to `uri`), telling Optuna how each trial really ended.

    The sampler's seed is the config's plus the trials the study already holds: a fresh search is reproducible, and
    a launch that extends a search draws a new sequence instead of repeating the first launch's configurations."""
    metrics, modes = objective_list(cfg)
    many = len(metrics) > 1
    held = len(load_study(folder).trials) if has_study(folder) else 0
    searcher = StudySearch(
        space,
        metric=metrics if many else metrics[0],
        mode=modes if many else modes[0],
        sampler=make_sampler(cfg, grid, seed_offset=held),
        study_name=STUDY_NAME,
        storage=open_mirrored_study_storage(folder, uri),
    )
    searcher.folder, searcher.uri = str(folder), uri
    return searcher


def make_sampler(cfg: Config, grid: dict[str, list] | None = None, seed_offset: int = 0):
    import optuna

    name, seed = cfg.search.sampler, cfg.seed + seed_offset
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


# --- the grid a define-by-run space spans (the grid sampler's) -------------------------------------------------


class GridProbe:
    """A stand-in Optuna trial that records the choices of a define-by-run space and picks the ones it is given."""

    def __init__(self, fixed: dict[str, Any]):
        self.fixed, self.choices = fixed, {}

    def suggest_categorical(self, name: str, choices):
        self.choices.setdefault(name, list(choices))
        return self.fixed.get(name, choices[0])

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False):
        return self.suggest_categorical(name, list(range(low, high + 1, step)))

    def suggest_float(self, name: str, *args, **kwargs):
        raise ConfigError(
            "search.sampler",
            f"grid needs finite choices, but {name} is continuous: use "
            "trial.suggest_categorical for it, or another sampler",
        )

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: None  # set_user_attr and the like


def grid_from_space(space) -> dict[str, list]:
    """Every parameter's choices, branching once on each choice so that conditional parameters are found too.

    Optuna's GridSampler walks the product of all choices; a conditional parameter a trial does not ask for is
    ignored, so a conditional space repeats some configurations (samples = the product covers them all).
    """
    grid: dict[str, list] = {}
    tried: set[tuple] = set()
    pending = [{}]
    while pending:
        fixed = pending.pop()
        probe = GridProbe(fixed)
        space(probe)
        for name, choices in probe.choices.items():
            grid.setdefault(name, choices)
            for choice in choices:
                key = tuple(sorted({**fixed, name: choice}.items(), key=str))
                if key not in tried and len(key) <= 3:  # branch points nest rarely deeper than a family choice
                    tried.add(key)
                    pending.append({**fixed, name: choice})
    return grid


def grid_size(grid: dict[str, list]) -> int:
    return math.prod(len(v) for v in grid.values()) if grid else 0
