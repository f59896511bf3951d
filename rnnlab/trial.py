"""`run_trial(config, report)`: the one seam between an experiment and whoever runs it.

`rnnlab run` calls it in-process; the Ray Tune trainable calls it inside a worker. It seeds, loads data, builds
the model, trains, and leaves a local record that never depends on W&B: `config.json`, `metrics.jsonl` (one row
per epoch), `checkpoints/`, `vocab.json` when tokens are used, and `result.json`.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rnnlab.checkpoint import atomic_write_bytes, load_latest
from rnnlab.config import Config, ConfigError
from rnnlab.config.overrides import to_flat_dict
from rnnlab.data import TaskData, load_task_data, save_vocab
from rnnlab.models import build_model, count_parameters
from rnnlab.registries import validate
from rnnlab.tasks import Task, task_of
from rnnlab.train import ShouldStop, TrialDiverged, TrialStopped, fit, select_device

Report = Callable[..., None]


def is_out_of_memory(err: BaseException) -> bool:
    """A MemoryError, or torch's allocator failing (under a memory cap or on a full machine)."""
    text = str(err).lower()
    return isinstance(err, MemoryError) or (isinstance(err, RuntimeError) and (
        "can't allocate memory" in text or "out of memory" in text or "cannot allocate memory" in text))  # fmt: skip


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def check_task(cfg: Config, task: Task) -> None:
    """`metric` and every search objective are metrics each epoch reports (Ray fails a search otherwise), the
    monitored one watched in the direction it improves in; and the model cannot see what it predicts."""
    names = task.metric_names(char_level=cfg.data.tokenizer == "char")
    valid = [f"{split}/{name}" for split in ("train", "val") for name in names]
    if cfg.metric not in valid:
        raise ConfigError("metric", f"{cfg.metric!r} is not reported for task {task.name!r}; valid: {', '.join(valid)}")
    for objective in cfg.search.objectives:
        if objective.partition(":")[0] not in valid:
            raise ConfigError("search.objectives", f"{objective!r}: not reported for task {task.name!r}; valid: "
                              f"{', '.join(valid)}")  # fmt: skip
    direction = task.directions[cfg.metric.split("/", 1)[1]]
    if cfg.mode != direction:
        raise ConfigError("mode", f"{cfg.metric} improves towards its {direction}imum: set mode={direction}")
    if task.causal and getattr(cfg.model, "bidirectional", False):  # a family without the setting is causal
        raise ConfigError(
            "model.bidirectional", f"a {task.name} model must be unidirectional (it would see the future)"
        )


def prepare_data(cfg: Config) -> TaskData:
    """Validate the config and load its data; every bad-input error surfaces here, before any work."""
    validate(cfg)
    data = load_task_data(cfg.data, cfg.seed)
    check_task(cfg, task_of(data.task))
    return data


def write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(Path(path), (json.dumps(obj, indent=2, default=str) + "\n").encode())


def read_metrics(path: Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def last_row(out: Path) -> dict[str, Any]:
    rows = read_metrics(Path(out) / "metrics.jsonl")
    return rows[-1] if rows else {}


class MetricsLog:
    """One JSON row per epoch appended to `metrics.jsonl` and flushed at once: the local record."""

    def __init__(self, path: Path, resume_state: dict[str, Any] | None):
        self.path = Path(path)
        rows = read_metrics(self.path)
        if resume_state is None:
            rows = []
        else:  # keep rows up to the checkpoint's epoch; restore its row if a kill came before it was written
            last = resume_state["metrics"]["epoch"]
            rows = [r for r in rows if r["epoch"] < last] + [resume_state["metrics"]]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def append(self, metrics: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(metrics) + "\n")
            f.flush()


def run_trial(cfg: Config, report: Report | None = None, out_dir: str | Path = "runs/trial",
              resume_from: str | Path | None = None, data: TaskData | None = None,
              should_stop: ShouldStop | None = None) -> dict[str, Any]:  # fmt: skip
    """Run one trial of `cfg` and return its result (also written to `out_dir/result.json`).

    `report(metrics, checkpoint)` is called once per epoch with the epoch's metrics and the checkpoint folder.
    `resume_from` is a checkpoint folder or a folder of checkpoints; training continues from its newest valid one.
    A NaN/inf loss ends the trial with status "diverged" and its reason instead of an exception; a report that
    raises TrialStopped ends it as "stopped" (so does `should_stop`, polled before each training batch, when it
    gives a reason: the epoch in progress is dropped), a failed allocation as "out_of_memory", each with its last
    metrics.
    """
    t0 = time.time()
    data = prepare_data(cfg) if data is None else data  # bad input fails here, before anything is written
    validate(cfg)
    check_task(cfg, task_of(data.task))
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    torch.set_flush_denormal(cfg.train.flush_denormal)  # per trial: a reused process follows each trial's config
    seed_everything(cfg.seed)
    device = select_device(cfg.train.device)
    model = build_model(cfg, data.input_size, data.vocab_size, data.output_size, data.task)
    resume_state = load_latest(Path(resume_from), map_location="cpu") if resume_from else None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", {"flat": to_flat_dict(cfg), "nested": dataclasses.asdict(cfg)})
    if data.vocab is not None:
        save_vocab(data.vocab, out / "vocab.json")
    log = MetricsLog(out / "metrics.jsonl", resume_state)

    def report_epoch(metrics: dict[str, Any], checkpoint: str | None = None) -> None:
        log.append(metrics)
        if report is not None:
            report(metrics, checkpoint)

    summary = {"seed": cfg.seed, "parameters": count_parameters(model), "device": str(device),
               "data/fingerprint": data.fingerprint}  # fmt: skip
    try:
        result = fit(model, data, cfg, report_epoch, out / "checkpoints", resume_state, device, should_stop)
    except TrialDiverged as err:
        result = {"status": "diverged", "reason": str(err)}
    except TrialStopped as err:
        result = {**last_row(out), "status": "stopped", "reason": str(err)}
    except (MemoryError, RuntimeError) as err:
        if not is_out_of_memory(err):
            raise
        result = {**last_row(out), "status": "out_of_memory", "reason": f"out of memory: {str(err)[:300]}"}
    result.update(summary, **{"time/total_s": time.time() - t0})
    write_json(out / "result.json", result)
    return result
