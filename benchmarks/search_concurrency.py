"""Do trials really run side by side? Four one-thread trials on 2 CPUs at concurrency 1, then 2 (goal: <= 0.6x).

python benchmarks/search_concurrency.py [--epochs 3] [--max-batches 20]
Also prints the per-trial scheduling overhead: (wall time - summed trial time / concurrency) / trials.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from rnnlab.experiment import load_experiment
from rnnlab.search_folder import SearchSpec
from rnnlab.tune import run_search

EXPERIMENT = str(Path(__file__).resolve().parent.parent / "experiments" / "search_digits.py")
TRIALS = 4


def time_search(root: Path, concurrency: int, epochs: int, max_batches: int) -> tuple[float, float]:
    """Wall time of one search and the sum of its trials' own times (result.json's time/total_s)."""
    overrides = {
        "search.samples": TRIALS,
        "search.concurrency": concurrency,
        "search.scheduler": "none",
        "search.sampler": "random",
        "search.cpus_per_trial": 1.0,
        "train.epochs": epochs,
        "train.max_batches": max_batches,
        "tracking.mode": "disabled",
    }
    experiment = load_experiment(EXPERIMENT, overrides)
    name = f"concurrency-{concurrency}"
    spec = SearchSpec(
        experiment=EXPERIMENT,
        name=name,
        storage=str(root),
        folder=str(root / name),
        overrides={k: str(v) for k, v in overrides.items()},
        metric="val/acc",
        mode="max",
    )
    t0 = time.perf_counter()
    run_search(experiment, spec)
    wall = time.perf_counter() - t0
    busy = sum(json.loads(p.read_text())["time/total_s"] for p in (root / name).glob("trials/*/result.json"))
    return wall, busy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-batches", type=int, default=20)
    args = parser.parse_args()
    import ray

    ray.init(num_cpus=2, include_dashboard=False)  # the 2 CPUs the goal is stated for
    with tempfile.TemporaryDirectory() as tmp:
        times = {k: time_search(Path(tmp), k, args.epochs, args.max_batches) for k in (1, 2)}
    for k, (wall, busy) in times.items():
        overhead = (wall - busy / k) / TRIALS
        print(f"concurrency {k}: wall {wall:.1f} s, trials' own time {busy:.1f} s, overhead {overhead:.2f} s/trial")
    print(f"ratio wall(2) / wall(1) = {times[2][0] / times[1][0]:.2f} (goal <= 0.6)")


if __name__ == "__main__":
    main()
