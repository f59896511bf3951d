"""`run_trial(config, report)`: the one seam between an experiment and whoever runs it.

`rnnlab run` calls it in-process; the Ray Tune trainable calls it inside a worker. It seeds, loads data, builds
the model, trains, and leaves a local record that never depends on W&B: `config.json`, `metrics.jsonl` (one row
per epoch), `checkpoints/`, `vocab.json` when tokens are used, `labels.json` when classes are, and `result.json`.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rnnlab import evaluation
from rnnlab.checkpoint import load_latest
from rnnlab.config import Config, ConfigError
from rnnlab.data import TaskData, save_labels, save_vocab
from rnnlab.data.taskdata import with_dtype
from rnnlab.models import build_model, count_parameters
from rnnlab.records import RunRecord, read_metrics, write_config, write_json
from rnnlab.registries import validate
from rnnlab.replicates import run_replicates
from rnnlab.tasks import TASKS, Task, load_task_data, task_of
from rnnlab.train import Report, ShouldStop, TrialDiverged, TrialStopped, fit, select_device

__all__ = [
    "RunRecord",
    "TrialStopped",
    "check_task",
    "is_out_of_memory",
    "prepare_data",
    "read_metrics",
    "run_seed",
    "run_trial",
    "seed_everything",
    "write_json",
]


class DataOutOfMemory(MemoryError):
    """The data did not fit in memory while being prepared; `hint` names the settings that size them."""

    def __init__(self, message: str, hint: str):
        super().__init__(message)
        self.hint = hint

    def __reduce__(self):  # crosses the Ray boundary with its hint
        return type(self), (str(self), self.hint)


def is_out_of_memory(err: BaseException) -> bool:
    """A MemoryError, or torch's allocator failing (under a memory cap or on a full machine)."""
    text = str(err).lower()
    return isinstance(err, MemoryError) or (
        isinstance(err, RuntimeError)
        and ("can't allocate memory" in text or "out of memory" in text or "cannot allocate memory" in text)
    )


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def check_task(cfg: Config, task: Task) -> None:
    """`metric` and every search objective are metrics each epoch reports (Ray fails a search otherwise), the
    monitored one watched in the direction it improves in; and the model cannot see what it predicts."""
    names = task.metric_names(char_level=cfg.data.tokenizer == "char")
    valid = [f"{split}/{name}" for split in ("train", "val") for name in names]
    valid += [f"val/{name}" for name in evaluation.metric_names(cfg)]  # protocols score held-out splits only
    directions = {**task.directions, **evaluation.DIRECTIONS}
    for objective in [cfg.metric, *cfg.search.objectives]:
        name = objective.partition(":")[0]
        if name not in valid:
            field_path = "metric" if objective == cfg.metric else "search.objectives"
            split, _, metric = name.partition("/")
            others = [t for t, entry in TASKS.items() if metric in entry.directions and t != task.name]
            hint = ""
            if metric in evaluation.DIRECTIONS:
                hint = " (an evaluation protocol's metric: turn it on in eval.*, e.g. eval.free_run_steps=84)"
            elif split == "test" and f"val/{metric}" in valid:
                hint = " as a monitored metric (test/* is scored once, at the end, on the unseen test split)"
            elif others:
                hint = f" (it is a metric of data.task={' or '.join(others)})"
            raise ConfigError(
                field_path, f"{objective!r} is not reported for task {task.name!r}{hint}; valid: {', '.join(valid)}"
            )
    direction = directions[cfg.metric.split("/", 1)[1]]
    if cfg.mode != direction:
        raise ConfigError("mode", f"{cfg.metric} improves towards its {direction}imum: set mode={direction}")
    if task.causal and getattr(cfg.model, "bidirectional", False):  # a family without the setting is causal
        raise ConfigError(
            "model.bidirectional", f"a {task.name} model must be unidirectional (it would see the future)"
        )


def prepare_data(cfg: Config) -> TaskData:
    """Validate the config and load its data; every bad-input error surfaces here, before any work."""
    validate(cfg)
    check_task(cfg, task_of(cfg.data.task))  # before the data are prepared (and cached)
    try:
        data = load_task_data(cfg.data, cfg.seed)
    except MemoryError as err:  # the data alone: the hint to lower the model's size was wrong
        fields = "data.num_samples or data.seq_len" if cfg.data.source == "builtin" else "the data (data.max_length)"
        raise DataOutOfMemory(str(err), f"lower {fields}") from err
    task_of(data.task).check_data(cfg, data)
    evaluation.check_protocols(cfg, task_of(data.task), data)
    check_splits(cfg, data)
    return data


def check_splits(cfg: Config, data: TaskData) -> None:
    """A monitored val/* metric needs validation rows: with none (data.val_fraction=0) it is computed on nothing."""
    if not data.val.empty:
        return
    for field_path, names in (("metric", [cfg.metric]), ("search.objectives", cfg.search.objectives)):
        for name in names:
            if name.startswith("val/"):
                raise ConfigError(
                    field_path,
                    f"{name} needs a validation split and this data has none "
                    f"(data.val_fraction={cfg.data.val_fraction}): monitor a train/* metric or "
                    "raise data.val_fraction",
                )


def run_trial(
    cfg: Config,
    report: Report | None = None,
    out_dir: str | Path = "runs/trial",
    resume_from: str | Path | None = None,
    data: TaskData | None = None,
    should_stop: ShouldStop | None = None,
    record: RunRecord | None = None,
) -> dict[str, Any]:
    """Run one trial of `cfg` and return its result (also written to `out_dir/result.json`): one seed, or with
    `search.seeds = k > 1` the seeds seed..seed+k-1 into `out_dir/seed_<i>/`, reported as their mean
    (`rnnlab.replicates`). The arguments are those of `run_seed`; `data`, prepared for cfg.seed, serves one seed.
    """
    if cfg.search.seeds > 1:
        return run_replicates(run_seed, cfg, report, out_dir, resume_from, should_stop, record)
    return run_seed(cfg, report, out_dir, resume_from, data, should_stop, record)


def run_seed(
    cfg: Config,
    report: Report | None = None,
    out_dir: str | Path = "runs/trial",
    resume_from: str | Path | None = None,
    data: TaskData | None = None,
    should_stop: ShouldStop | None = None,
    record: RunRecord | None = None,
) -> dict[str, Any]:
    """Run `cfg` with its one seed and return its result (also written to `out_dir/result.json`).

    `report(metrics, checkpoint)` is called once per epoch with the epoch's metrics and the checkpoint folder.
    `resume_from` is a checkpoint folder or a folder of checkpoints; training continues from its newest valid one.
    A NaN/inf loss ends the trial with status "diverged" and its reason instead of an exception; a report that
    raises TrialStopped ends it as "stopped" (so does `should_stop`, polled before each training batch, when it
    gives a reason: the epoch in progress is dropped), a failed allocation as "out_of_memory", each with its last
    metrics. `record` is the folder's RunRecord when the caller holds it (its tracker reads the same rows).
    """
    t0 = time.time()
    data = prepare_data(cfg) if data is None else data  # bad input fails here (given data: it already did)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    torch.set_flush_denormal(cfg.train.flush_denormal)  # per trial: a reused process follows each trial's config
    seed_everything(cfg.seed)
    device = select_device(cfg.train.device)
    dtype = getattr(torch, cfg.train.dtype)  # the one place data and model take train.dtype
    data = with_dtype(data, dtype)
    model = build_model(cfg, data.input_size, data.vocab_size, data.output_size, data.task)
    if dtype != torch.get_default_dtype():  # built in the default; a no-op cast would also narrow float64 buffers
        model = model.to(dtype)
    resume_state = load_latest(Path(resume_from), map_location="cpu") if resume_from else None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_config(out, cfg)
    if data.vocab is not None:
        save_vocab(data.vocab, out / "vocab.json")
    if data.meta.get("labels") is not None:  # class id -> label: a classifier's (a tagger's) outputs, named
        save_labels(data.meta["labels"], out / "labels.json")
    record = RunRecord(out) if record is None else record
    record.start(resume_state["metrics"] if resume_state else None)
    # a resumed run (a retried trial, `run --resume`) continues the epochs it keeps: their time is part of its own
    earlier_s = sum(float(r.get("time/epoch_s", 0.0)) for r in record.rows)

    def report_epoch(metrics: dict[str, Any], checkpoint: str | None = None) -> None:
        record.append(metrics)
        if report is not None:
            report(metrics, checkpoint)

    summary = {
        "seed": cfg.seed,
        "parameters": count_parameters(model),
        "device": str(device),
        "data/fingerprint": data.fingerprint,
        **({"data/content": data.content} if data.content else {}),  # the same data, whatever code prepared them
        **({"data/commit": data.meta["commit"]} if data.meta.get("commit") else {}),  # a hub dataset's resolved sha
        **({"data/unscored_sequences": unscored} if (unscored := task_of(data.task).unscored(cfg, data)) else {}),
    }
    try:
        fitted = fit(model, data, cfg, report_epoch, out / "checkpoints", resume_state, device, should_stop)
        status, reason = fitted["status"], None
    except TrialDiverged as err:
        fitted, status, reason = {}, "diverged", str(err)
    except TrialStopped as err:
        fitted, status, reason = None, err.status, str(err)
    except (MemoryError, RuntimeError) as err:
        if not is_out_of_memory(err):
            raise
        fitted, status, reason = None, "out_of_memory", out_of_memory_reason(err)
    if fitted:  # the best epoch's train metrics: a run that monitors one (no val split) had no value in its result
        best = next((r for r in record.rows if r.get("epoch") == fitted.get("best_epoch")), {})
        fitted = {**{k: v for k, v in best.items() if k.startswith("train/")}, **fitted}
    return record.finish(status, reason, fitted, **summary, **{"time/total_s": earlier_s + time.time() - t0})


def out_of_memory_reason(err: BaseException) -> str:
    hint = f"; {err.hint}" if isinstance(err, DataOutOfMemory) else ""
    return f"out of memory: {str(err)[:300]}{hint}"
