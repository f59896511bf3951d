"""Seed replicates of one configuration: k run_seeds in a row (seed, seed+1, ...), reported as their mean.

With `search.seeds = k > 1` a Tune trial runs its configuration k times, each into `<out>/seed_<i>/` (a full
one-seed record, replayable on its own: `rnnlab replay SEARCH_DIR TRIAL_ID/seed_<i>`). The first k-1 seeds run
without reporting; the last one reports, per epoch, the mean over seeds of every metric and `<metric>_std`, so ASHA
and Optuna compare configurations by their mean. The price: a scheduler can stop a configuration only during its
last seed. `<out>/metrics.jsonl` and `<out>/result.json` hold the means; `result.json` also lists the monitored
metric of every seed (`seeds/<metric>`), from which `rnnlab report` draws confidence intervals, and each seed's best
epoch (`seeds/best_epoch`: their mean would be no epoch).
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from rnnlab.config import Config
from rnnlab.records import RunRecord, write_config
from rnnlab.registries import apply_overrides
from rnnlab.train import Report, ShouldStop


def seed_folder(out: Path, index: int) -> Path:
    return Path(out) / f"seed_{index}"


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def mean_row(rows: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    """The mean over seeds of every number all rows carry, and the sample std of `metric` as `<metric>_std`."""
    keys = [k for k, v in rows[-1].items() if is_number(v) and all(is_number(r.get(k)) for r in rows)]
    mean = {k: statistics.fmean(float(r[k]) for r in rows) for k in keys}
    if metric in mean:
        values = [float(r[metric]) for r in rows]
        mean[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 and all(map(math.isfinite, values)) else 0.0
    return mean


def row_at(rows: list[dict[str, Any]], epoch: int) -> dict[str, Any] | None:
    """A seed's row for `epoch`, or its last one if it stopped earlier (early stopping keeps its final state)."""
    before = [r for r in rows if r["epoch"] <= epoch]
    return before[-1] if before else None


def mean_rows(seed_rows: list[list[dict[str, Any]]], metric: str) -> list[dict[str, Any]]:
    """Per epoch of the last seed, the mean over seeds of that epoch's rows."""
    out = []
    for row in seed_rows[-1]:
        rows = [r for r in (row_at(rows, row["epoch"]) for rows in seed_rows[:-1]) if r is not None] + [row]
        out.append({**mean_row(rows, metric), "epoch": row["epoch"]})
    return out


def own_checkpoints(folder: Path) -> Path | None:
    """A seed folder's checkpoints, if an earlier attempt left any (run_seed resumes from the newest valid one)."""
    checkpoints = folder / "checkpoints"
    return checkpoints if checkpoints.is_dir() and any(checkpoints.iterdir()) else None


def mean_reporter(seeds: list[RunRecord], out: RunRecord, metric: str, report: Report | None) -> Report:
    """The last seed's report: `<out>/metrics.jsonl` holds the means so far (from the seeds' rows in memory), and
    the newest is reported."""

    def report_mean(metrics: dict[str, Any], checkpoint: str | None = None) -> None:
        out.replace(mean_rows([seed.rows for seed in seeds], metric))  # run_seed appended this epoch's row already
        if report is not None:
            report(out.last, checkpoint)

    return report_mean


ENDED_WELL = ("completed", "early_stopped")  # a seed's result.json statuses that leave the configuration judged
RUN_AGAIN = ("stopped", "failed", "out_of_memory")  # a signal, a time limit, memory: an earlier attempt's seed reruns


def same_in_all(results: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, Any]:
    """The values of `keys` that every seed's result holds alike (a text has no mean)."""
    return {k: results[0][k] for k in keys if k in results[0] and all(r.get(k) == results[0][k] for r in results)}


def combine_results(results: list[dict[str, Any]], cfg: Config) -> dict[str, Any]:
    """The mean over seeds; the status and reason of the first seed that did not end well (named), else the last's.
    A stop of the last seed is the configuration's (its reports, the means, are what a scheduler judges): its
    reason stays as the scheduler, or the signal, gave it, which is the study's."""
    combined = mean_row(results, cfg.metric)
    combined.pop("best_epoch", None)  # each seed's own: their mean is no epoch of the record
    faulty = [(i, r) for i, r in enumerate(results) if r.get("status") not in ENDED_WELL]
    combined.update(
        status=results[-1].get("status"),
        seeds=len(results),
        seed=cfg.seed,
        parameters=results[0].get("parameters"),
        **same_in_all(
            results, ("device", "data/fingerprint", "data/content", "data/commit")
        ),  # the data provenance records
        **{
            "time/total_s": sum(r["time/total_s"] for r in results),
            f"seeds/{cfg.metric}": [r.get(cfg.metric, math.nan) for r in results],
            **({"seeds/best_epoch": [r.get("best_epoch") for r in results]} if "best_epoch" in results[0] else {}),
        },
    )
    if faulty:
        index, first = faulty[0]
        own = index == len(results) - 1 and first.get("status") == "stopped"
        reason = first.get("reason") if own else f"seed {cfg.seed + index}: {first.get('reason')}"
        combined.update(status=first.get("status"), reason=reason)
    return combined


def run_replicates(
    run_seed,
    cfg: Config,
    report: Report | None = None,
    out_dir: str | Path = "runs/trial",
    resume_from: str | Path | None = None,
    should_stop: ShouldStop | None = None,
    record: RunRecord | None = None,
) -> dict[str, Any]:
    """Run `cfg.search.seeds` seeds of `cfg` one after the other by `run_seed` (`rnnlab.trial`'s); report and
    return their mean.

    A seed whose `result.json` exists is not run again (a retried trial continues where it failed); `resume_from`
    (Ray's checkpoint) belongs to the last seed, the only one that reports. `record` is `out_dir`'s RunRecord
    when the caller holds it (the means' rows).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_config(out, cfg)  # the folder is a started run (a stop before the last seed must not remove it)
    record = RunRecord(out) if record is None else record
    count = cfg.search.seeds
    seeds = [RunRecord(seed_folder(out, i)) for i in range(count)]  # each seed's rows, read once
    results: list[dict[str, Any]] = []
    for index, seed in enumerate(seeds):
        seed_cfg = apply_overrides(cfg, {"seed": cfg.seed + index})
        last = index == count - 1
        done = json.loads((seed.out / "result.json").read_text()) if (seed.out / "result.json").is_file() else {}
        if done and done.get("status") not in RUN_AGAIN:
            results.append(done)
        elif not last:
            results.append(run_seed(seed_cfg, None, seed.out, own_checkpoints(seed.out), None, should_stop, seed))
        else:
            report_mean = mean_reporter(seeds, record, cfg.metric, report)
            resume = resume_from or own_checkpoints(seed.out)
            results.append(run_seed(seed_cfg, report_mean, seed.out, resume, None, should_stop, seed))
        status = results[-1].get("status")
        if not last and status in RUN_AGAIN:  # should_stop (a signal, a time limit) or memory: the trial ends here
            reason = f"seed {seed_cfg.seed}: {results[-1].get('reason')}"  # (a later seed's mean would hide it)
            return record.finish(status, reason, {}, seeds=count, seed=cfg.seed)
        if status == "diverged":  # one diverging seed is enough to judge the configuration
            break
    combined = combine_results(results, cfg)
    if results[-1].get("status") == "stopped":  # the configuration stopped at its last report: what it reported (the
        combined.update(record.last)  # means of that epoch) is its result, as in the study; not earlier seeds' ends
    return record.finish(combined.pop("status"), combined.pop("reason", None), combined)
