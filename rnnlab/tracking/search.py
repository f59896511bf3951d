"""The search as a whole in W&B: a Table of its trials in a search-level run, and a W&B report when online.

`log_search_results` runs at the end of `rnnlab tune` when tracking is on (offline works: `rnnlab sync` uploads the
run from `SEARCH_DIR/wandb/`). The report needs the optional `wandb-workspaces` package and an online W&B; without
either it is skipped with one line saying why. wandb is imported only inside functions.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

from rnnlab.config import Config
from rnnlab.search_folder import SearchSpec, load_study, trial_rows
from rnnlab.tracking.tracker import resolve_mode, warn
from rnnlab.tracking.wandb_run import finish_run, wandb_label, wandb_name, wandb_settings

logger = logging.getLogger(__name__)

TABLE_KEY = "search/trials"
COLUMNS = ["trial_id", "number", "family", "params", "metric", "status", "state"]


def table_rows(spec: SearchSpec) -> list[list[Any]]:
    """One row per trial: id, Optuna number, family, parameters (JSON), the monitored metric, status and state."""
    rows = []
    for r in trial_rows(spec, load_study(spec.folder)):
        value = r["values"][0] if r["values"] else math.nan
        rows.append(
            [
                r["trial_id"],
                r["number"],
                r["family"],
                json.dumps(r["params"], sort_keys=True, default=str),
                float(value) if value is not None else math.nan,
                r["status"],
                r["state"],
            ]
        )
    return rows


def search_run_id(spec: SearchSpec) -> str:
    """`<name>-search-<search_id>`: a search that reuses a --name (another storage, or after deleting the first)
    gets its own run, which a sync would otherwise resume and overwrite. Searches from before the id keep theirs."""
    return wandb_name(f"{spec.name}-search-{spec.search_id}" if spec.search_id else f"{spec.name}-search")


def log_search_results(spec: SearchSpec, cfg: Config) -> str | None:
    """Log the trials Table in the search-level run (`search_run_id`); returns the run folder, None when off/failed."""
    mode = resolve_mode(cfg)
    if mode == "disabled":
        return None
    try:
        import wandb

        if mode == "online" and not os.environ.get("WANDB_API_KEY"):
            raise RuntimeError("online mode needs WANDB_API_KEY in the environment")
        Path(spec.folder, "wandb").mkdir(parents=True, exist_ok=True)
        run = wandb.init(
            project=cfg.tracking.project,
            entity=cfg.tracking.entity,
            dir=spec.folder,
            id=search_run_id(spec),
            resume="allow",
            group=wandb_label(cfg.tracking.group or spec.name),
            job_type="search-summary",
            name=wandb_label(f"{spec.name} (search)"),
            config={
                "search.name": spec.name,
                "search.metric": spec.metric,
                "search.mode": spec.mode,
                "search.overrides": spec.overrides,
                "search.experiment": spec.experiment,
            },
            settings=wandb_settings(mode),
        )
        rows = table_rows(spec)
        table = wandb.Table(columns=COLUMNS, data=rows)
        complete = [r for r in rows if r[-1] == "COMPLETE" and math.isfinite(r[4])]
        best = (max if spec.mode == "max" else min)(complete, key=lambda r: r[4]) if complete else None
        run.log({TABLE_KEY: table})
        run.summary.update(
            {
                "search/n_trials": len(rows),
                "search/n_complete": len(complete),
                f"search/best/{spec.metric}": best[4] if best else None,
                "search/best/trial_id": best[0] if best else None,
            }
        )
        folder = run.dir
        finish_run(run)
    except Exception as err:
        warn(f"logging the search's W&B Table failed ({type(err).__name__}: {err}); the local report is unaffected")
        return None
    logger.info(f"W&B: the search's trials Table is in {Path(folder).parent}")  # `rnnlab sync` ends the summary
    if mode == "online":
        create_wandb_report(spec, cfg)
    return str(Path(folder).parent)


def create_wandb_report(spec: SearchSpec, cfg: Config) -> str | None:
    """A W&B report of the search (its trials grouped by family, the metric per epoch) through `wandb-workspaces`.

    Online only; skipped with a message when the package is missing (`pip install wandb-workspaces`).
    """
    if resolve_mode(cfg) != "online" or not os.environ.get("WANDB_API_KEY"):
        logger.info("W&B report: skipped (needs online mode and WANDB_API_KEY)")
        return None
    try:
        import wandb_workspaces.reports.v2 as wr
    except ImportError:
        logger.info("W&B report: skipped (optional package wandb-workspaces missing: pip install wandb-workspaces)")
        return None
    try:
        import wandb

        entity = cfg.tracking.entity or wandb.Api().default_entity
        group = wandb_label(cfg.tracking.group or spec.name)
        runs = wr.Runset(
            entity=entity,
            project=cfg.tracking.project,
            name=f"search {spec.name}",
            filters=f"Metric('Group') == '{group}'",
            groupby=[wr.Config("model.family")],
        )
        report = wr.Report(
            entity=entity,
            project=cfg.tracking.project,
            title=f"Search {spec.name}",
            description=f"{spec.metric} ({spec.mode}) over the trials of {spec.experiment}",
        )
        report.blocks = [
            wr.H1(f"Search {spec.name}"),
            wr.P(f"Trials grouped by model family; the monitored metric is {spec.metric} ({spec.mode})."),
            wr.PanelGrid(
                runsets=[runs],
                panels=[
                    wr.LinePlot(x="epoch", y=[spec.metric], title=f"{spec.metric} per epoch"),
                    wr.BarPlot(metrics=[spec.metric], title=f"{spec.metric} per family", groupby_aggfunc="mean"),
                    wr.ParallelCoordinatesPlot(
                        columns=[
                            wr.ParallelCoordinatesPlotColumn(metric=wr.Config(k))
                            for k in sorted(load_study(spec.folder).best_trial.params)
                        ]
                    ),
                ],
            ),
        ]
        report.save()
    except Exception as err:
        warn(f"creating the W&B report failed ({type(err).__name__}: {err}); the runs and the Table are unaffected")
        return None
    logger.info(f"W&B report: {report.url}")
    return report.url
