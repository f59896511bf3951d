"""Overhead of W&B tracking on training: seconds per epoch with W&B offline vs disabled (goal: <= 1.05x).

    python benchmarks/wandb_overhead.py [--epochs 6] [--family lstm] [--set train.max_batches=20 ...]

An epoch is timed from one `report` call to the next, so it includes the tracker's `log`; the first epoch (warm-up)
is left out. Opening and closing the run are one-off costs per trial and are reported apart. wandb-core is a process
of its own: on a machine with more busy threads than cores, torch's OpenMP threads lose to it, so measure (and
train) with `--set train.threads=1` per trial-core there, or the ratio measures contention rather than W&B.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from rnnlab.config import Config, DataConfig, TrainConfig
from rnnlab.config.overrides import parse_set_args
from rnnlab.models import model_config
from rnnlab.registries import apply_overrides
from rnnlab.tracking import open_tracker
from rnnlab.trial import run_trial


def time_epochs(cfg: Config, mode: str, out: Path) -> tuple[list[float], float]:
    """Per-epoch wall-clock seconds (after the first) and the seconds spent opening plus closing the run."""
    os.environ["WANDB_MODE"] = mode
    stamps: list[float] = []
    t0 = time.perf_counter()
    with open_tracker(cfg, out, job_type="benchmark") as tracker:
        t_open = time.perf_counter() - t0

        def report(metrics, checkpoint=None):
            tracker.log(metrics, checkpoint)
            stamps.append(time.perf_counter())

        result = run_trial(cfg, report, out)
        tracker.finish(result)
        t_close = time.perf_counter()
    t_close = time.perf_counter() - t_close
    return [b - a for a, b in zip(stamps, stamps[1:])], t_open + t_close


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--family", default="lstm")
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs per mode")
    parser.add_argument("--set", dest="overrides", nargs="+", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    cfg = Config(
        name="wandb_overhead",
        metric="val/acc",
        mode="max",
        model=model_config(args.family),
        data=DataConfig(name="digits", task="classification"),
        train=TrainConfig(epochs=args.epochs, batch_size=32, diagnostics_every=0),
    )
    cfg = apply_overrides(cfg, parse_set_args(args.overrides))
    epochs: dict[str, list[float]] = {"disabled": [], "offline": []}
    one_off: dict[str, list[float]] = {"disabled": [], "offline": []}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):  # alternate so drifts in machine load hit both modes alike
            for mode in ("disabled", "offline"):
                per_epoch, fixed = time_epochs(cfg, mode, Path(tmp) / f"{mode}-{repeat}")
                epochs[mode] += per_epoch
                one_off[mode].append(fixed)
    for mode in epochs:
        print(
            f"{mode:>8}: median epoch {statistics.median(epochs[mode]):.4f}s over {len(epochs[mode])} epochs; "
            f"open+close {statistics.median(one_off[mode]):.2f}s"
        )
    ratio = statistics.median(epochs["offline"]) / statistics.median(epochs["disabled"])
    print(f"offline / disabled per epoch: {ratio:.3f}x (goal <= 1.05x)")


if __name__ == "__main__":
    main()
