"""A search folder read back without Ray: its spec, its Optuna study, the end-of-search report, and replay.

The report prints the best trials, writes `best_overrides.txt` (one `--set` line for `rnnlab run`) and Optuna's
plots as PNG files. `replay_trial` re-runs one trial in-process from its resolved config and compares metrics.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnlab.config import ConfigError
from rnnlab.config.overrides import from_flat_dict

SEARCH_FILE = "search.json"
JOURNAL_FILE = "optuna.journal"
RAY_DIR = "ray"
TRIALS_DIR = "trials"
STUDY_NAME = "search"
TOP_TRIALS = 10
PLOTS = ("optimization_history", "param_importances", "parallel_coordinate")


@dataclass
class SearchSpec:
    """What `search.json` holds: enough to resume, extend or replay the search with nothing else."""

    experiment: str  # absolute path of the experiment file
    name: str
    storage: str  # local folder or URI holding Ray's experiment state
    folder: str  # absolute local folder of the search (journal, trials, report)
    overrides: dict[str, str] = field(default_factory=dict)  # the --set of the search, shrinking included
    metric: str = "val/loss"
    mode: str = "min"
    objectives: list[str] = field(default_factory=list)
    ray_runs: list[str] = field(default_factory=lambda: [RAY_DIR])  # one per launch that added trials

    def save(self) -> None:
        Path(self.folder, SEARCH_FILE).write_text(json.dumps(dataclasses.asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> SearchSpec:
        path = Path(folder) / SEARCH_FILE
        if not path.is_file():
            raise ConfigError("search", f"{folder} holds no {SEARCH_FILE}: not a search folder")
        try:
            return cls(**json.loads(path.read_text()))
        except (ValueError, TypeError) as err:  # a torn or hand-edited file: say so, touch nothing
            raise ConfigError("search", f"{path} is not a valid {SEARCH_FILE} ({err}); restore it or start a new "
                              "search with another --name") from None  # fmt: skip


def trial_folder(spec: SearchSpec, trial_id: str) -> Path:
    return Path(spec.folder, TRIALS_DIR, trial_id)


def open_study_storage(folder: str | Path):
    """The Optuna journal of the search: an append-only file that only the driver writes."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(Path(folder).resolve() / JOURNAL_FILE)))


def load_study(folder: str | Path):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name=STUDY_NAME, storage=open_study_storage(folder))


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}


# --- search space helpers --------------------------------------------------------------------------------------


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
        raise ConfigError("search.sampler", f"grid needs finite choices, but {name} is continuous: use "
                          "trial.suggest_categorical for it, or another sampler")  # fmt: skip

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


# --- the end-of-search report ----------------------------------------------------------------------------------


def close_orphans(spec: SearchSpec) -> None:
    """Mark FAIL the study's trials still RUNNING after Ray finished: asked just before a driver died, never run."""
    import optuna
    from optuna.trial import TrialState

    storage = open_study_storage(spec.folder)  # a storage's own public API sets an attr of a trial by its id
    study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
    study_id = storage.get_study_id_from_name(STUDY_NAME)
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        storage.set_trial_user_attr(trial_id, "reason", "orphaned: asked before the driver died; not run")
        study.tell(t.number, state=TrialState.FAIL)


def trial_rows(spec: SearchSpec, study) -> list[dict[str, Any]]:
    """One row per Optuna trial, best first: finished trials by value, then pruned, then failed."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        trial_id = t.user_attrs.get("ray_trial_id", "-")
        result = read_json(trial_folder(spec, trial_id) / "result.json")
        last = t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else math.nan
        values = t.values if t.values is not None else [last]  # pruned: its last reported value
        rows.append({"trial_id": trial_id, "number": t.number, "state": t.state.name,
                     "status": result.get("status", t.user_attrs.get("reason", t.state.name.lower())),
                     "family": t.params.get("model.family", "-"), "values": values,
                     "params": {k: v for k, v in t.params.items() if k != "model.family"},
                     "time": result.get("time/total_s", 0.0)})  # fmt: skip
    sign = -1.0 if spec.mode == "max" else 1.0
    order = {"COMPLETE": 0, "PRUNED": 1, "FAIL": 2, "RUNNING": 3, "WAITING": 3}

    def key(row):
        value = row["values"][0] if row["values"] else math.nan
        return order[row["state"]], sign * value if value == value else math.inf

    return sorted(rows, key=key)


def format_value(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def print_table(rows: list[dict[str, Any]], metrics: list[str], limit: int = TOP_TRIALS) -> None:
    header = ["trial_id", "#", "family", *metrics, "status", "params"]
    lines = [[r["trial_id"], str(r["number"]), r["family"], *(format_value(v) for v in r["values"]),
              r["status"][:48], " ".join(f"{k.split('.')[-1]}={format_value(v)}" for k, v in r["params"].items())]
             for r in rows[:limit]]  # fmt: skip
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)]
    for line in [header, *lines]:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())


def best_overrides(spec: SearchSpec, params: dict[str, Any]) -> str:
    """One `--set` line: the search's own overrides, then the best trial's parameters."""
    merged = {**spec.overrides, **{k: v for k, v in params.items()}}
    return "--set " + " ".join(f"{k}={v}" for k, v in merged.items())


def save_plots(study, folder: Path, target_name: str) -> list[Path]:
    """Optuna's plots as PNGs in `folder`, drawn as the report draws them; one it cannot draw is skipped with a note."""
    import matplotlib

    matplotlib.use("Agg")
    from rnnlab.report_figures import plot_optuna  # it imports this module: a late import

    figures = plot_optuna(study, folder, target_name)
    for figure in figures:
        if figure.note:
            print(f"rnnlab: note: no {figure.name} plot ({figure.note})", file=sys.stderr)
    return [figure.path for figure in figures if figure.path]


def report_search(spec: SearchSpec, wall_time: float | None = None) -> int:
    """Print the best trials and write best_overrides.txt and the plots; 1 if no trial completed."""
    from optuna.trial import TrialState

    study = load_study(spec.folder)
    metrics = [spec.metric, *(o.partition(":")[0] for o in spec.objectives)]
    rows = trial_rows(spec, study)
    counts = {s: sum(r["state"] == s for r in rows) for s in ("COMPLETE", "PRUNED", "FAIL")}
    print(f"\nsearch {spec.name}: {len(rows)} trials ({', '.join(f'{v} {k.lower()}' for k, v in counts.items())})"
          f" in {spec.folder}")  # fmt: skip
    print_table(rows, metrics)
    for r in rows:
        if r["state"] == "FAIL":
            print(f"failed trial {r['trial_id']}: {r['status']}")
    if wall_time is not None:
        busy = sum(r["time"] for r in rows)
        print(f"wall time {wall_time:.1f} s; trials' own time {busy:.1f} s in total")
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        print("no trial completed: no best config", file=sys.stderr)
        return 1
    if len(study.directions) > 1:
        front = study.best_trials
        print("Pareto front: " + ", ".join(t.user_attrs.get("ray_trial_id", str(t.number)) for t in front))
        best = front[0]
    else:
        best = study.best_trial
    line = best_overrides(spec, best.params)
    Path(spec.folder, "best_overrides.txt").write_text(line + "\n")
    print(f"best trial {best.user_attrs.get('ray_trial_id')} ({spec.metric}={format_value(best.values[0])});"
          f" run it with:\n  rnnlab run {spec.experiment} {line}")  # fmt: skip
    for path in save_plots(study, Path(spec.folder), spec.metric):
        print(f"plot: {path}")
    return 0


# --- replay ----------------------------------------------------------------------------------------------------


def replay_trial(folder: str | Path, trial_id: str, out: str | Path | None = None, rel_tol: float = 1e-3) -> int:
    """Re-run one trial in-process (no Ray: a breakpoint works) and print its metrics next to the recorded ones."""
    from rnnlab.trial import read_metrics, run_trial

    spec = SearchSpec.load(folder)
    trial_dir = trial_folder(spec, trial_id)
    if (trial_dir / "seed_0").is_dir():  # a trial of seed replicates: replay its first seed (or pass ID/seed_<i>)
        trial_dir, trial_id = trial_dir / "seed_0", f"{trial_id}/seed_0"
    if not (trial_dir / "config.json").is_file():
        known = sorted(p.name for p in Path(spec.folder, TRIALS_DIR).glob("*") if p.is_dir())
        raise ConfigError("trial_id", f"no trial {trial_id!r} in {spec.folder}; valid: {', '.join(known)}")
    cfg = from_flat_dict(read_json(trial_dir / "config.json")["flat"])
    out = Path(out or Path(spec.folder, "replays", f"{trial_id}-{time.strftime('%Y%m%d-%H%M%S')}"))
    print(f"replaying trial {trial_id} into {out}")
    result = run_trial(cfg, None, out)
    recorded = read_metrics(trial_dir / "metrics.jsonl")
    replayed = {row["epoch"]: row for row in read_metrics(out / "metrics.jsonl")}
    pairs = [(f"epoch {r['epoch']} {cfg.metric}", r[cfg.metric], replayed[r["epoch"]][cfg.metric])
             for r in recorded if r["epoch"] in replayed]  # fmt: skip
    final = read_json(trial_dir / "result.json")
    pairs += [(f"result {k}", final[k], result[k]) for k in (cfg.metric, f"test/{cfg.metric.split('/')[1]}")
              if isinstance(final.get(k), float) and isinstance(result.get(k), float)]  # fmt: skip
    ok = True
    print(f"{'':28}  {'recorded':>10}  {'replayed':>10}")
    for label, a, b in pairs:
        same = math.isclose(a, b, rel_tol=rel_tol, abs_tol=1e-6)
        ok &= same
        print(f"{label:28}  {a:10.5g}  {b:10.5g}  {'' if same else 'DIFFERS'}")
    print("replay reproduces the recorded metrics" if ok else f"replay differs beyond rel_tol={rel_tol}")
    return 0 if ok and pairs else 1
