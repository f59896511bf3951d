"""Run the benchmark suite and print one markdown table of ratios against their goals, then each section's detail.

    python -m benchmarks [--quick] [--threads 1] [--only kernels esn ...]
    python benchmarks/run.py --quick

Every timing is a median of repeats, alternated between the things compared so that drifting machine load hits
them alike; torch's intra-op threads are pinned (default 1: on a shared machine more threads measure contention).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `python benchmarks/run.py` puts benchmarks/ first on the path, not the repo
    sys.path.insert(0, str(ROOT))

SECTIONS = {  # name -> module under benchmarks/
    "kernels": "benchmarks.kernels",
    "esn": "benchmarks.esn_vs_reservoirpy",
    "harness": "benchmarks.harness",
    "search": "benchmarks.search",
    "data": "benchmarks.data_pipeline",
    "memory": "benchmarks.memory",
    "short_trials": "benchmarks.short_trials",
}


def pin_threads(threads: int) -> None:
    """torch, BLAS and OpenMP all use `threads` (environment first, so subprocesses and numpy inherit it)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    import torch

    torch.set_num_threads(threads)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and smaller searches (~5 minutes)")
    parser.add_argument("--threads", type=int, default=1, help="torch/BLAS threads for every measurement")
    parser.add_argument("--search-trials", type=int, default=0, help="trials per search (default 25, quick 3)")
    parser.add_argument("--short-trials", type=int, default=0, help="trials per short-trial search (default 200)")
    parser.add_argument(
        "--fresh-trials",
        type=int,
        default=0,
        help="trials of the fresh-worker Ray Tune search in short_trials (default 20)",
    )
    parser.add_argument("--only", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    args = parser.parse_args(argv)
    pin_threads(args.threads)
    if args.search_trials:
        os.environ["RNNLAB_BENCH_SEARCH_TRIALS"] = str(args.search_trials)
    if args.short_trials:
        os.environ["RNNLAB_BENCH_SHORT_TRIALS"] = str(args.short_trials)
    if args.fresh_trials:
        os.environ["RNNLAB_BENCH_FRESH_TRIALS"] = str(args.fresh_trials)
    from benchmarks.timing import table

    t0 = time.perf_counter()
    sections = []
    for name in args.only:
        start = time.perf_counter()
        section = importlib.import_module(SECTIONS[name]).run(args.quick)
        print(f"\n### {section.title} ({time.perf_counter() - start:.0f} s)\n\n{section.detail}\n", flush=True)
        sections.append(section)
    rows = [
        [s.title, g.name, f"{g.value:.3g}", g.goal, "yes" if g.met else "**no**", g.detail]
        for s in sections
        for g in s.goals
    ]
    mode = "quick" if args.quick else "full"
    print(f"\n## Summary ({mode}, {args.threads} thread(s), {time.perf_counter() - t0:.0f} s)\n")
    print(table(["section", "measure", "value", "goal", "met", "note"], rows))


if __name__ == "__main__":
    main()
