"""The figures of `rnnlab report`: learning curves of the top trials, best value per family, Optuna's plots.

Each is a PNG in the report folder, or, when this search cannot give it (no epochs yet, a plot Optuna refuses),
a Figure with a note saying why: the report then prints a line in its place, never a crash.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnlab import search_folder as sf
from rnnlab.checkpoint import atomic_write_bytes
from rnnlab.config import ConfigError
from rnnlab.records import environment_fault
from rnnlab.trial import read_metrics

TOP_CURVES = 5  # learning curves drawn
PLOTS = ("optimization_history", "param_importances", "parallel_coordinate")  # Optuna's, by their plot_ names


@dataclass
class Figure:
    name: str
    title: str
    path: Path | None = None
    note: str | None = None  # why it could not be drawn
    left_out: list[str] = field(default_factory=list)  # what the figure lacks, and why (a damaged trial record)


def save_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format=path.suffix.lstrip(".") or "png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue(), durable=False)  # a full disk keeps the last report's figure


def plot_learning_curves(spec: sf.SearchSpec, rows: list[dict[str, Any]], out: Path) -> Figure:
    import matplotlib.pyplot as plt

    figure = Figure("learning_curves", f"Learning curves: {spec.metric} per epoch, top {TOP_CURVES} trials")
    fig, ax = plt.subplots(figsize=(7, 4))
    drawn = 0
    for row in [r for r in rows if r["state"] in ("COMPLETE", "PRUNED")][:TOP_CURVES]:
        folder = sf.trial_folder(spec, row["trial_id"])
        try:  # one damaged record is left out, said, and the others drawn: the report is not refused for it
            metrics = [m for m in read_metrics(folder / "metrics.jsonl") if spec.metric in m]
        except ConfigError as err:
            figure.left_out.append(f"trial {row['trial_id']}: {err.message}")
            continue
        if not metrics:
            continue
        epochs = [m["epoch"] for m in metrics]
        values = [m[spec.metric] for m in metrics]
        (line,) = ax.plot(epochs, values, marker="o", label=f"{row['trial_id']} ({row['family']})")
        std = [m.get(f"{spec.metric}_std") for m in metrics]
        if all(isinstance(s, (int, float)) for s in std):  # seed replicates: mean +- std over seeds
            ax.fill_between(
                epochs,
                [v - s for v, s in zip(values, std)],
                [v + s for v, s in zip(values, std)],
                color=line.get_color(),
                alpha=0.2,
            )
        drawn += 1
    if not drawn:
        plt.close(fig)
        figure.note = "; ".join(figure.left_out) or "no trial has recorded epochs yet"
        return figure
    ax.set(xlabel="epoch", ylabel=spec.metric)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=8)
    figure.path = out / f"{figure.name}.png"
    save_figure(fig, figure.path)
    return figure


def plot_optuna(study, out: Path, metric: str) -> list[Figure]:
    """Optuna's matplotlib plots; for several objectives, on the first one, plus the Pareto front."""
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as ovm

    many = len(study.directions) > 1
    names = [*PLOTS, "pareto_front"] if many else list(PLOTS)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    figures = []
    for name in names:
        figure = Figure(name, name.replace("_", " ").capitalize() + (f" ({metric})" if name != "pareto_front" else ""))
        if not complete:  # Optuna would draw an empty plot and log a warning of its own for each
            figure.note = "no trial completed"
            figures.append(figure)
            continue
        kwargs = {} if name == "pareto_front" else {"target_name": metric}
        if many and name != "pareto_front":
            kwargs["target"] = lambda t: t.values[0]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ax = getattr(ovm, f"plot_{name}")(study, **kwargs)
            save_figure((ax.flat[0] if hasattr(ax, "flat") else ax).figure, out / f"{name}.png")
            figure.path = out / f"{name}.png"
        except Exception as err:  # Optuna cannot draw it (too few trials, one parameter): the report says why
            if environment_fault(err) is not None:  # a full disk is not a figure's note
                raise
            figure.note = f"{type(err).__name__}: {err}"
        figures.append(figure)
    return figures


def plot_families(stats: list[dict[str, Any]], metric: str, out: Path) -> Figure:
    import matplotlib.pyplot as plt

    figure = Figure("families", f"Best {metric} per family (error bars: 95% CI)")
    shown = [s for s in stats if math.isfinite(s["best"])]
    if not shown:
        figure.note = "no family has a completed trial"
        return figure
    fig, ax = plt.subplots(figsize=(1.2 * len(shown) + 3, 3.5))
    best = [s["best"] for s in shown]
    errors = [[b - s["ci"][0], s["ci"][1] - b] if s["ci"] else [0.0, 0.0] for s, b in zip(shown, best)]
    errors = [[max(0.0, lo) for lo, _ in errors], [max(0.0, hi) for _, hi in errors]]
    ax.bar([s["family"] for s in shown], best, yerr=errors, capsize=6, color="tab:blue", alpha=0.8)
    ax.set(ylabel=metric, title=f"best {metric} per family")
    figure.path = out / f"{figure.name}.png"
    save_figure(fig, figure.path)
    return figure
