"""Timing helpers shared by the sections: warm-up, interleaved repeats, medians, and the table rows they fill."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Goal:
    """One line of the summary table: a measured ratio against the goal it should meet."""

    name: str
    value: float
    goal: str  # e.g. ">= 10x", "<= 1.05x"
    detail: str = ""

    @property
    def met(self) -> bool:
        op, target = self.goal.split()
        target = float(target.rstrip("x%"))
        return self.value >= target if op == ">=" else self.value <= target if op == "<=" else self.value < target


@dataclass
class Section:
    """What a section hands back: summary lines and its own detail table (markdown)."""

    title: str
    goals: list[Goal] = field(default_factory=list)
    detail: str = ""


def interleaved_medians(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 2) -> dict[str, float]:
    """Median seconds per call of each function, calls alternated (A B A B ...) so drifting load hits all alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    return interleaved_medians({"fn": fn}, repeats, warmup)["fn"]


def table(header: list[str], rows: list[list[object]]) -> str:
    """A markdown table; floats keep 3 significant digits."""

    def cell(v: object) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
