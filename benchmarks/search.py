"""Section 4: N short trials through `rnnlab tune` against the same trainable (run_trial) through plain Ray Tune +
OptunaSearch, then trials per minute at concurrency 1 and 2 (benchmarks/search_concurrency.py's time_search)."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from benchmarks.timing import Goal, Section, table

EXPERIMENT = str(Path(__file__).resolve().parent.parent / "experiments" / "search_digits.py")


def overrides(trials: int, concurrency: int) -> dict:
    return {
        "search.samples": trials,
        "search.concurrency": concurrency,
        "search.scheduler": "none",
        "search.sampler": "random",
        "search.cpus_per_trial": 1.0,
        "train.epochs": 1,
        "train.max_batches": 2,
        "tracking.mode": "disabled",
    }


def _rnnlab(root: Path, trials: int) -> float:
    from rnnlab.experiment import load_experiment
    from rnnlab.search_folder import SearchSpec
    from rnnlab.tune import run_search

    experiment = load_experiment(EXPERIMENT, overrides(trials, 2))
    spec = SearchSpec(
        experiment=EXPERIMENT,
        name="overhead",
        storage=str(root),
        folder=str(root / "overhead"),
        overrides={k: str(v) for k, v in overrides(trials, 2).items()},
        metric="val/acc",
        mode="max",
    )
    t0 = time.perf_counter()
    run_search(experiment, spec)
    return time.perf_counter() - t0


def _plain(root: Path, trials: int) -> float:
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    from rnnlab.config.overrides import to_flat_dict
    from rnnlab.experiment import load_experiment
    from rnnlab.registries import apply_overrides, from_flat_dict

    experiment = load_experiment(EXPERIMENT, overrides(trials, 2))
    base = to_flat_dict(experiment.config)  # plain values: the experiment module is not importable in workers

    def trainable(params):
        from rnnlab.trial import run_trial

        cfg = apply_overrides(from_flat_dict(base), {**params, "train.threads": 1})
        run_trial(cfg, lambda metrics, checkpoint=None: tune.report(metrics), tempfile.mkdtemp(dir=root))

    searcher = ConcurrencyLimiter(OptunaSearch(experiment.search_space, metric="val/acc", mode="max"), 2)
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=trials),
        run_config=tune.RunConfig(storage_path=str(root / "ray"), verbose=0),
    )
    t0 = time.perf_counter()
    tuner.fit()
    return time.perf_counter() - t0


def run(quick: bool) -> Section:
    import ray

    from benchmarks.search_concurrency import TRIALS, time_search

    # A short trial costs ~8.5 s of wall time here (a fresh Ray worker imports torch, and the first optimiser
    # imports torch._dynamo: ~4 s), so two 100-trial searches take ~30 min on 2 cores; the full suite runs 25 to
    # stay under 15 minutes: python -m benchmarks --only search --search-trials 100 for the 100-trial comparison.
    trials = int(os.environ.get("RNNLAB_BENCH_SEARCH_TRIALS", 3 if quick else 25))
    warmup = 1 if quick else 2
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            _plain(Path(tmp) / "warmup", warmup)  # untimed: starts Ray's workers and warms the data cache
            plain = _plain(Path(tmp) / "plain", trials)
            ours = _rnnlab(Path(tmp) / "rnnlab", trials)
            walls = {} if quick else {k: time_search(Path(tmp) / f"c{k}", k, 1, 2)[0] for k in (1, 2)}
    finally:
        ray.shutdown()
    goals = [Goal(f"rnnlab tune / plain Ray Tune + OptunaSearch ({trials} trials)", ours / plain, "<= 1.1x")]
    rows = [["rnnlab tune", ours, 60 * trials / ours], ["plain Ray Tune", plain, 60 * trials / plain]]
    if walls:  # the full run only: two more searches
        rate = {k: 60 * TRIALS / w for k, w in walls.items()}
        goals.append(
            Goal(
                "trials per minute, concurrency 2 / 1",
                rate[2] / rate[1],
                ">= 1.67x",
                "search_concurrency.py's goal wall(2)/wall(1) <= 0.6",
            )
        )
        rows += [[f"concurrency {k}", walls[k], rate[k]] for k in (1, 2)]
    return Section("Search overhead (Ray Tune, 2 CPUs)", goals, table(["run", "wall s", "trials/min"], rows))
