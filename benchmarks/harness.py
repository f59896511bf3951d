"""Section 3: an epoch of `rnnlab run` (run_trial, tracking disabled) against a hand-written PyTorch loop.

Same model (build_model, same seed), data (built-in digits), optimiser and batch size. An rnnlab epoch is timed
from one `report` call to the next (train + val + checkpoint); the hand loop does train + val with on-device sums.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from benchmarks.timing import Goal, Section, table
from rnnlab.config import Config, DataConfig, TrackingConfig, TrainConfig
from rnnlab.models import build_model, model_config
from rnnlab.trial import prepare_data, run_trial, seed_everything


def make_config(epochs: int) -> Config:
    return Config(
        name="harness",
        metric="val/acc",
        mode="max",
        model=model_config("lstm", hidden_size=64),
        data=DataConfig(name="digits", task="classification"),
        tracking=TrackingConfig(mode="disabled"),
        train=TrainConfig(epochs=epochs, batch_size=32, device="cpu"),
    )


def rnnlab_epochs(cfg: Config, data) -> list[float]:
    stamps: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        report = lambda metrics, checkpoint=None: stamps.append(time.perf_counter())  # noqa: E731
        run_trial(cfg, report, Path(tmp) / "run", data=data)
    return [b - a for a, b in zip(stamps, stamps[1:])]


def hand_epochs(cfg: Config, data) -> list[float]:
    seed_everything(cfg.seed)
    torch.set_flush_denormal(cfg.train.flush_denormal)  # as run_trial does: compare loops, not float modes
    model = build_model(cfg, data.input_size, data.vocab_size, data.output_size, data.task)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optim.learning_rate)
    generator = torch.Generator().manual_seed(cfg.seed)
    B = cfg.train.batch_size
    times = []
    for _ in range(cfg.train.epochs):
        start = time.perf_counter()
        model.train()
        total_loss = torch.zeros(())  # the running loss any loop keeps, summed on-device
        order = torch.randperm(len(data.train), generator=generator)
        for i in range(0, len(order), B):
            idx = order[i : i + B]
            loss = F.cross_entropy(model(data.train.inputs[idx], data.train.lengths[idx])[0], data.train.targets[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total_loss += loss.detach()
        model.eval()
        hits = torch.zeros(())
        with torch.no_grad():
            for i in range(0, len(data.val), B):
                out = model(data.val.inputs[i : i + B], data.val.lengths[i : i + B])[0]
                hits += (out.argmax(-1) == data.val.targets[i : i + B]).sum()
        float(hits), float(total_loss)
        times.append(time.perf_counter() - start)
    return times[1:]


def run(quick: bool) -> Section:
    cfg = make_config(4 if quick else 6)
    data = prepare_data(cfg)
    ours, hand, ratios = [], [], []
    for _ in range(2 if quick else 4):  # alternate whole runs; a ratio per pair, so load drift between pairs cancels
        ours_run, hand_run = rnnlab_epochs(cfg, data), hand_epochs(cfg, data)
        ratios.append(statistics.median(ours_run) / statistics.median(hand_run))
        ours += ours_run
        hand += hand_run
    ratio = statistics.median(ratios)
    detail = table(
        ["loop", "median epoch s", "epochs timed"],
        [
            ["rnnlab run_trial", statistics.median(ours), len(ours)],
            ["hand-written", statistics.median(hand), len(hand)],
        ],
    )
    detail += (
        f"\n\nLSTM(64) on digits, batch 32, {len(data.train)} train / {len(data.val)} val sequences; "
        f"ratio per run pair: {', '.join(f'{r:.2f}' for r in ratios)}."
    )
    return Section("Harness overhead", [Goal("rnnlab epoch / hand-written epoch", ratio, "<= 1.05x")], detail)
