"""Section 5: first preparation of a 100k-row local CSV text dataset against the way before (preparers reading
datasets' lazy columns row by row), cached against first preparation, and the share of an epoch spent waiting for
batches (iterate_batches alone against the whole training epoch, same data and batch size)."""

from __future__ import annotations

import csv
import random
import shutil
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.timing import Goal, Section, table
from rnnlab.batches import iterate_batches
from rnnlab.config import Config, DataConfig, TrainConfig
from rnnlab.data import sources, splitting
from rnnlab.models import build_model, model_config
from rnnlab.tasks import TASKS, load_task_data
from rnnlab.train import make_optimizer, run_epoch

WORDS = ["the", "a", "reservoir", "gate", "state", "hidden", "memory", "signal", "noise", "echo", "loss"]


def write_csv(path: Path, rows: int) -> None:
    rng = random.Random(0)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for _ in range(rows):
            writer.writerow([" ".join(rng.choices(WORDS, k=rng.randint(3, 12))), rng.randint(0, 3)])


def prepare_row_by_row(cfg: DataConfig) -> None:
    """The first preparation as it was before columns were materialised: preparers on the `Dataset` splits."""
    raw = sources.load_local(cfg)
    TASKS[cfg.task].prepare(splitting.split_raw(raw, cfg, 0, TASKS[cfg.task]), cfg, 0)


def run(quick: bool) -> Section:
    rows = 20_000 if quick else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        path, before_path = Path(tmp) / "reviews.csv", Path(tmp) / "reviews_before.csv"
        write_csv(path, rows)
        shutil.copy(path, before_path)  # its own file: each way pays datasets' CSV -> Arrow conversion once
        data_cfg = DataConfig(
            source="local", name=str(path), task="classification", tokenizer="word", cache_dir=str(Path(tmp) / "cache")
        )
        t0 = time.perf_counter()
        prepare_row_by_row(DataConfig(**{**vars(data_cfg), "name": str(before_path)}))
        before = time.perf_counter() - t0
        t0 = time.perf_counter()
        data = load_task_data(data_cfg, 0)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        load_task_data(data_cfg, 0)
        cached = time.perf_counter() - t0
    cfg = Config(
        model=model_config("lstm", hidden_size=64),
        data=data_cfg,
        train=TrainConfig(batch_size=64, max_batches=100 if quick else 300),
    )
    torch.manual_seed(0)
    model = build_model(cfg, data.input_size, data.vocab_size, data.output_size, data.task)
    optimizer = make_optimizer(model, cfg)
    t0 = time.perf_counter()
    for _ in iterate_batches(data.train, 64, "cpu", torch.Generator().manual_seed(0), cfg.train.max_batches):
        pass
    waiting = time.perf_counter() - t0
    t0 = time.perf_counter()
    run_epoch(model, data, "train", cfg, "cpu", optimizer, torch.Generator().manual_seed(0))
    epoch = time.perf_counter() - t0
    goals = [
        Goal(f"row by row / now, first preparation ({rows // 1000}k CSV rows)", before / first, ">= 5x"),
        Goal(f"cached / first data preparation ({rows // 1000}k CSV rows)", cached / first, "<= 0.1x"),
        Goal("share of a training epoch waiting for data", 100 * waiting / epoch, "< 10%"),
    ]
    detail = table(
        ["measure", "seconds"],
        [
            ["first preparation, row by row (before)", before],
            ["first preparation", first],
            ["cached load", cached],
            [f"batches alone ({cfg.train.max_batches} x 64)", waiting],
            ["training epoch, same batches", epoch],
        ],
    )
    return Section("Data pipeline", goals, detail)
