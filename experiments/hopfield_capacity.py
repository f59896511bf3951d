"""Capacity of the classical Hopfield memory: exact recall from 10%-corrupted cues against the load P/N,
for N = 100 and 200 units, Hebbian against Storkey storage (Amit et al., 1985: Hebb fails near 0.138 N;
Storkey, 1997: higher).

`config` runs one point of the curve through `run_trial` (N = seq_len = 100, P = num_samples = 10 patterns);
`python experiments/hopfield_capacity.py [out_dir]` measures the whole curve, prints it and plots it to
`out_dir/hopfield_capacity.png`.
"""

import dataclasses
import sys
from pathlib import Path

import torch

from rnnlab.config import Config, DataConfig, TrainConfig
from rnnlab.models.hopfield import HopfieldConfig, HopfieldModelConfig

SIZES = (100, 200)
RULES = ("hebbian", "storkey")
LOADS = tuple(round(0.02 * k, 2) for k in range(1, 21))  # P / N from 0.02 to 0.40
NOISE = 0.1
TRIALS = 3
RECALLED = 0.9  # capacity: the largest load at which this fraction of patterns is recalled exactly

config = Config(
    metric="val/exact",
    mode="max",
    model=HopfieldModelConfig(hopfield=HopfieldConfig(rule="hebbian", update="async", max_iterations=20)),
    data=DataConfig(source="builtin", name="patterns", task="recall", seq_len=100, num_samples=10, noise=NOISE),
    train=TrainConfig(epochs=1, batch_size=256),
)


def exact_recall(size: int, rule: str, load: float, trial: int, cfg: Config = config) -> float:
    """Fraction of round(load * size) random patterns recalled exactly from cues with NOISE of their bits flipped."""
    from rnnlab.models.hopfield import HopfieldMemory

    generator = torch.Generator().manual_seed(1000 * trial + size)
    count = max(1, round(load * size))
    patterns = torch.randint(0, 2, (count, size), generator=generator).float() * 2 - 1
    model_cfg = dataclasses.replace(cfg.model, hopfield=dataclasses.replace(cfg.model.hopfield, rule=rule))
    memory = HopfieldMemory(model_cfg, size)
    memory.store(patterns)
    flips = torch.rand(patterns.shape, generator=generator).argsort(dim=1) < int(NOISE * size)
    recalled = memory.recall(torch.where(flips, -patterns, patterns))
    return float((recalled == patterns).all(dim=1).float().mean())


def capacity_curve(sizes=SIZES, rules=RULES, loads=LOADS, trials=TRIALS) -> dict[tuple[int, str], list[float]]:
    """{(N, rule): mean exact-recall fraction at each load}."""
    return {
        (size, rule): [sum(exact_recall(size, rule, load, t) for t in range(trials)) / trials for load in loads]
        for size in sizes
        for rule in rules
    }


def capacity(fractions: list[float], loads=LOADS) -> float:
    """The largest load up to which at least RECALLED of the patterns come back exactly."""
    best = 0.0
    for load, fraction in zip(loads, fractions):
        if fraction < RECALLED:
            break
        best = load
    return best


def plot_capacity(curve: dict[tuple[int, str], list[float]], out_dir: str | Path, loads=LOADS) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for (size, rule), fractions in curve.items():
        axes.plot(loads, fractions, marker="o", linestyle="-" if rule == "hebbian" else "--", label=f"{rule}, N={size}")
    axes.axvline(0.138, color="grey", linewidth=0.8)
    axes.set(xlabel="load P / N", ylabel="patterns recalled exactly", title=f"Hopfield capacity, {NOISE:.0%} cue noise")
    axes.legend()
    path = Path(out_dir) / "hopfield_capacity.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)
    return path


if __name__ == "__main__":
    results = capacity_curve()
    print("| N | rule | capacity P/N (>= 90% exact) |\n|---|---|---|")
    for (size, rule), fractions in results.items():
        print(f"| {size} | {rule} | {capacity(fractions):.2f} |")
    print(plot_capacity(results, sys.argv[1] if len(sys.argv) > 1 else "outputs"))
