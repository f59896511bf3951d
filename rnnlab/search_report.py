"""The end-of-search report: the best trials, `best_overrides.txt` (one `--set` line for `rnnlab run`) and Optuna's
plots as PNG files (`rnnlab replay`, which re-runs one trial, is `replay.py`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from rnnlab.checkpoint import atomic_write_bytes
from rnnlab.report_figures import plot_optuna
from rnnlab.search_folder import SearchSpec, load_study, trial_params, trial_rows

logger = logging.getLogger(__name__)

TOP_TRIALS = 10


def format_value(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def print_table(rows: list[dict[str, Any]], metrics: list[str], limit: int = TOP_TRIALS) -> None:
    header = ["trial_id", "#", "family", *metrics, "status", "params"]
    lines = [
        [
            r["trial_id"],
            str(r["number"]),
            r["family"],
            *(format_value(v) for v in r["values"]),
            r["status"][:48],
            " ".join(f"{k}={format_value(v)}" for k, v in r["params"].items()),  # one name per hyperparameter
        ]
        for r in rows[:limit]
    ]
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)]
    for line in [header, *lines]:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())


def best_overrides(spec: SearchSpec, params: dict[str, Any]) -> str:
    """One `--set` line for `rnnlab run`: the search's own overrides but its `search.*`, then the trial's parameters."""
    merged = {**{k: v for k, v in spec.overrides.items() if not k.startswith("search.")}, **params}
    return "--set " + " ".join(f"{k}={v}" for k, v in merged.items())


def save_plots(study, folder: Path, target_name: str) -> list[Path]:
    """Optuna's plots as PNGs in `folder`, drawn as the report draws them; one it cannot draw is skipped with a note."""
    import matplotlib

    matplotlib.use("Agg")

    figures = plot_optuna(study, folder, target_name)
    for figure in figures:
        if figure.note:
            logger.info(f"note: no {figure.name} plot ({figure.note})")
    return [figure.path for figure in figures if figure.path]


def report_search(spec: SearchSpec, wall_time: float | None = None) -> int:
    """Print the best trials and what to do next; write best_overrides.txt and the plots; 1 if no trial completed."""
    from optuna.trial import TrialState

    study = load_study(spec.folder)
    metrics = [spec.metric, *(o.partition(":")[0] for o in spec.objectives)]
    rows = trial_rows(spec, study)
    counts = {s: sum(r["state"] == s for r in rows) for s in ("COMPLETE", "PRUNED", "FAIL")}
    print(
        f"\nsearch {spec.name}: {len(rows)} trials ({', '.join(f'{v} {k.lower()}' for k, v in counts.items())})"
        f" in {spec.folder}"
    )
    print_table(rows, metrics)
    for r in rows:
        if r["state"] == "FAIL":
            print(f"failed trial {r['trial_id']}: {r['reason'] or r['status']}")  # the status alone said "failed"
    if wall_time is not None:
        busy = sum(r["time"] for r in rows)
        print(f"wall time {wall_time:.1f} s; trials' own time {busy:.1f} s in total")
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        logger.error("no trial completed: no best config")
        return 1
    if len(study.directions) > 1:
        front = study.best_trials
        print("Pareto front: " + ", ".join(t.user_attrs.get("ray_trial_id", str(t.number)) for t in front))
        best = front[0]
    else:
        best = study.best_trial
    best_params = trial_params(spec, best)
    line = best_overrides(spec, best_params)
    # whole or not at all: a line cut by a full disk (`model.hidden_size=12` of 128) would run another config
    atomic_write_bytes(Path(spec.folder, "best_overrides.txt"), (line + "\n").encode())
    best_id = best.user_attrs.get("ray_trial_id", str(best.number))
    params = " ".join(f"{k}={format_value(v)}" for k, v in best_params.items())
    print(f"best trial {best_id} ({spec.metric}={format_value(best.values[0])}): {params}")
    plots = save_plots(study, Path(spec.folder), spec.metric)
    if plots:
        print(f"plots: {', '.join(p.name for p in plots)} in {spec.folder}")
    print_next_steps(spec, best_id, line)
    return 0


def print_next_steps(spec: SearchSpec, best_id: str, overrides: str) -> None:
    """The commands that continue from a finished search, with its folder and best trial filled in."""
    folder = spec.folder
    steps = [
        (f"rnnlab report {folder}", "HTML report: best trials, curves, families"),
        (f"rnnlab dashboard {folder}", "the Optuna study in optuna-dashboard"),
        (f"rnnlab replay {folder} {best_id}", "the best trial again, in-process, compared"),
        (f"rnnlab run {spec.experiment} {overrides}", "the best configuration as a new run"),
    ]
    if next(Path(folder).rglob("offline-run-*"), None) is not None:
        steps.append((f"rnnlab sync {folder}", "upload the search's offline W&B runs"))
    width = max(len(command) for command, _ in steps if not command.startswith("rnnlab run"))
    print("next:")
    for command, what in steps:
        print(f"  {command.ljust(width)}  # {what}")
