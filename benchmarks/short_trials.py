"""Section 7: a search of many short trials (an ESN on Mackey-Glass, ~0.1 s each) against what a user would write.

Seven searches of the same space (experiments/search_esn_mackey_glass.py), each a fresh process timed from its start:
`rnnlab tune` at concurrency 2 with W&B offline; a plain in-process Optuna loop calling `run_trial` (tracking off);
plain Ray Tune + OptunaSearch calling `run_trial` with fresh workers and with `reuse_actors=True`, and with trials
that only report a constant (Ray Tune's own floor per trial, whatever the harness around it does), and with 8
configurations per Ray trial (what several trials per worker task would cost); reservoirpy
0.4.2's own `reservoirpy.hyper.research` (hyperopt) with its own ESN. The Optuna searches sample with
RandomSampler(seed=0), so they run the same configurations in the same order.

    python -m benchmarks --only short_trials [--short-trials 200] [--fresh-trials 20]
    python -m benchmarks.short_trials CONTENDER TRIALS OUT      (one search; what the section runs)

Per-trial overhead = (wall x concurrency - the trials' own time) / trials: the slot time a trial costs beyond its
own work. A trial's own time is run_trial's `time/total_s` (reservoirpy: its objective's duration). Machine CPU is
what every process used while the contender ran (/proc/stat: Ray's daemons, wandb-core, the workers, the driver),
per trial; steal is the time the hypervisor took from this VM meanwhile (a run with seconds of it is noisy). Ray
Tune's fixed cost (start, first workers, stop) is the empty-trial search's wall less its per-trial slope, measured
with a second, short empty search.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.timing import Goal, Section, table

ROOT = Path(__file__).resolve().parent.parent
EXPERIMENT = str(ROOT / "experiments" / "search_esn_mackey_glass.py")
CONCURRENCY = 2
SEED = 0


def trial_times(folder: Path) -> list[float]:
    return [json.loads(p.read_text())["time/total_s"] for p in folder.glob("**/result.json")]


# --- the contenders (each runs in its own process) ---------------------------------------------------------------


def rnnlab_tune(trials: int, out: Path) -> list[float]:
    argv = [
        sys.executable,  # this venv's rnnlab, whatever PATH holds
        "-m",
        "rnnlab",
        "tune",
        EXPERIMENT,
        "--samples",
        str(trials),
        "--storage",
        str(out),
        "--name",
        "tune",
        "--set",
        f"seed={SEED}",
    ]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "WANDB_MODE": "offline"})
    return trial_times(out / "tune" / "trials")


def load_space():
    from rnnlab.experiment import load_experiment

    experiment = load_experiment(EXPERIMENT, {"seed": SEED, "tracking.mode": "disabled", "train.threads": 1})
    return experiment.config, experiment.search_space


def optuna_loop(trials: int, out: Path) -> list[float]:
    import optuna

    from rnnlab.registries import apply_overrides
    from rnnlab.trial import run_trial

    cfg, space = load_space()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=cfg.mode + "imize", sampler=optuna.samplers.RandomSampler(seed=SEED))
    times = []
    for number in range(trials):
        trial = study.ask()
        result = run_trial(apply_overrides(cfg, space(trial)), None, out / str(number))
        study.tell(trial, result[cfg.metric])
        times.append(result["time/total_s"])
    return times


def ray_tune(trials: int, out: Path, reuse: bool, empty: bool = False) -> list[float]:
    """Plain Ray Tune + OptunaSearch calling run_trial; `empty`: each trial only reports a constant (Ray Tune's own
    cost per trial: the floor of any harness that gives each configuration its own Ray trial)."""
    import ray
    from ray import tune
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    from rnnlab.config.overrides import to_flat_dict
    from rnnlab.registries import apply_overrides, from_flat_dict

    cfg, space = load_space()
    base, folder = to_flat_dict(cfg), str(out / "trials")

    def trainable(params):
        if empty:
            return tune.report({"val/rmse": 1.0})
        from rnnlab.trial import run_trial

        out_dir = Path(folder) / tune.get_context().get_trial_id()
        result = run_trial(apply_overrides(from_flat_dict(base), params), None, out_dir)
        tune.report({"val/rmse": result["val/rmse"]})

    import optuna

    searcher = OptunaSearch(space, metric=cfg.metric, mode=cfg.mode, sampler=optuna.samplers.RandomSampler(seed=SEED))
    ray.init(address="local", num_cpus=CONCURRENCY, include_dashboard=False, log_to_driver=False)
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(searcher, CONCURRENCY), num_samples=trials, reuse_actors=reuse
        ),
        run_config=tune.RunConfig(storage_path=str(out / "ray"), verbose=0),
    )
    tuner.fit()
    return [0.0] * trials if empty else trial_times(Path(folder))


def ray_tune_grouped(trials: int, out: Path, group: int = 8) -> list[float]:
    """Plain Ray Tune running `group` configurations per Ray trial (run_trial each, tracking off), drawn ahead by the
    same RandomSampler and told to Optuna as they come back: what several trials per worker task would cost."""
    import optuna
    import ray
    from ray import tune

    from rnnlab.config.overrides import to_flat_dict
    from rnnlab.registries import apply_overrides, from_flat_dict

    cfg, space = load_space()
    base, folder = to_flat_dict(cfg), str(out / "trials")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=cfg.mode + "imize", sampler=optuna.samplers.RandomSampler(seed=SEED))
    asked = [study.ask() for _ in range(trials)]
    draws = [space(t) for t in asked]
    groups = [list(range(i, min(i + group, trials))) for i in range(0, trials, group)]

    def trainable(params):
        from rnnlab.trial import run_trial

        values = {}
        for number in params["numbers"]:
            result = run_trial(apply_overrides(from_flat_dict(base), draws[number]), None, Path(folder) / str(number))
            values[str(number)] = result[cfg.metric]
        tune.report({"values": values})

    ray.init(address="local", num_cpus=CONCURRENCY, include_dashboard=False, log_to_driver=False)
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space={"numbers": tune.grid_search(groups)},
        tune_config=tune.TuneConfig(max_concurrent_trials=CONCURRENCY, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(out / "ray"), verbose=0),
    )
    for result in tuner.fit():
        for number, value in result.metrics["values"].items():
            study.tell(asked[int(number)], value)
    return trial_times(Path(folder))


def reservoirpy_research(trials: int, out: Path) -> list[float]:
    """reservoirpy's ESN (Reservoir >> Ridge) of the same size on the same series, searched by its hyperopt helper."""
    import numpy as np
    from reservoirpy.hyper import research
    from reservoirpy.nodes import Reservoir, Ridge

    from rnnlab.trial import prepare_data

    cfg, _ = load_space()
    esn = cfg.model.esn
    data = prepare_data(cfg)
    (x_train, y_train), (x_val, y_val) = [(s.inputs.numpy()[0], s.targets.numpy()[0]) for s in (data.train, data.val)]

    def objective(dataset, config, *, sr, lr, input_scaling, ridge):
        start = time.perf_counter()
        (xt, yt), (xv, yv) = dataset
        reservoir = Reservoir(
            esn.units,
            sr=sr,
            lr=lr,
            input_scaling=input_scaling,
            rc_connectivity=esn.density,
            input_connectivity=esn.input_density,
            seed=SEED,
        )
        model = reservoir >> Ridge(ridge=ridge)
        model.fit(xt, yt, warmup=esn.washout)
        predicted = model.run(xv)
        loss = float(np.sqrt(np.mean((predicted[esn.washout :] - yv[esn.washout :]) ** 2)))
        return {"loss": loss, "trial_s": time.perf_counter() - start}

    config = {
        "exp": "esn",
        "hp_max_evals": trials,
        "hp_method": "random",
        "seed": SEED,
        "hp_space": {
            "sr": ["loguniform", 0.1, 1.5],
            "lr": ["loguniform", 0.05, 1.0],
            "input_scaling": ["loguniform", 0.1, 2.0],
            "ridge": ["loguniform", 1e-9, 1e-2],
        },
    }
    config_path = out / "esn.config.json"
    config_path.write_text(json.dumps(config))
    _, results = research(objective, ((x_train, y_train), (x_val, y_val)), str(config_path), str(out))
    return [r["result"]["trial_s"] for r in results.trials]


CONTENDERS = {  # slug -> (label, search, concurrency)
    "rnnlab": ("rnnlab tune", rnnlab_tune, CONCURRENCY),
    "loop": ("Optuna loop + run_trial", optuna_loop, 1),
    "ray-reuse": ("Ray Tune, reuse_actors", lambda n, out: ray_tune(n, out, reuse=True), CONCURRENCY),
    "ray-fresh": ("Ray Tune, fresh workers", lambda n, out: ray_tune(n, out, reuse=False), CONCURRENCY),
    "ray-grouped": ("Ray Tune, 8 configurations per trial", ray_tune_grouped, CONCURRENCY),
    "ray-empty": ("Ray Tune, reuse_actors, empty trials", lambda n, out: ray_tune(n, out, True, True), CONCURRENCY),
    "reservoirpy": ("reservoirpy research", reservoirpy_research, 1),
}


def main(argv: list[str]) -> None:
    """One contender's search in this process: write its trial times to OUT/times.json."""
    slug, trials, out = argv[0], int(argv[1]), Path(argv[2])
    out.mkdir(parents=True, exist_ok=True)
    (out / "times.json").write_text(json.dumps(CONTENDERS[slug][1](trials, out)))


# --- the section -------------------------------------------------------------------------------------------------


def cpu_seconds() -> tuple[float, float]:
    """The machine's busy CPU seconds so far (all processes, all cores) and the seconds stolen by the hypervisor."""
    with open("/proc/stat") as f:
        ticks = [int(v) for v in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks[:8]
    hz = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / hz, steal / hz


def time_contender(slug: str, trials: int, root: Path) -> dict:
    """Wall time of one contender's process, from its start (imports, Ray, workers) to its exit."""
    name, _, concurrency = CONTENDERS[slug]
    out = root / f"{slug}-{trials}"
    load = os.getloadavg()[0]
    cpu0, steal0 = cpu_seconds()
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.short_trials", slug, str(trials), str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    cpu1, steal1 = cpu_seconds()
    if done.returncode != 0:
        lines = (done.stdout + done.stderr).strip().splitlines()
        return {"name": name, "error": lines[-1] if lines else f"exit code {done.returncode}", "load": load}
    times = json.loads((out / "times.json").read_text())
    return {
        "name": name,
        "trials": len(times),
        "wall": wall,
        "busy": sum(times),
        "load": load,
        "rate": 60 * len(times) / wall,
        "overhead": (wall * concurrency - sum(times)) / len(times),
        "cpu": (cpu1 - cpu0) / len(times),
        "steal": steal1 - steal0,
    }


def run(quick: bool) -> Section:
    trials = int(os.environ.get("RNNLAB_BENCH_SHORT_TRIALS", 20 if quick else 200))
    fresh = min(trials, int(os.environ.get("RNNLAB_BENCH_FRESH_TRIALS", 6 if quick else 20)))
    with tempfile.TemporaryDirectory() as tmp:
        rows = {slug: time_contender(slug, fresh if slug == "ray-fresh" else trials, Path(tmp)) for slug in CONTENDERS}
        few = time_contender("ray-empty", fresh, Path(tmp))  # with the 200-trial one: Ray Tune's fixed cost
    ours, loop = rows["rnnlab"], rows["loop"]
    goals = []
    if "error" not in ours and "error" not in loop:
        goals.append(
            Goal(
                f"rnnlab tune wall / in-process Optuna loop ({trials} ESN trials)",
                ours["wall"] / loop["wall"],
                "<= 1.0x",
            )
        )
        goals.append(Goal("rnnlab tune per-trial overhead, s", ours["overhead"], "<= 0.25"))
    if "error" not in ours and "error" not in rows["ray-reuse"]:  # what rnnlab adds to Ray Tune on the same trials
        goals.append(
            Goal(
                "rnnlab tune wall / plain Ray Tune + OptunaSearch, reuse_actors",
                ours["wall"] / rows["ray-reuse"]["wall"],
                "<= 1.0x",
            )
        )
    header = [
        "search",
        "trials",
        "wall s",
        "trials' own s",
        "trials/min",
        "overhead s/trial",
        "wall / loop's",
        "machine CPU s/trial",
        "steal s",
        "load (1 min)",
    ]
    lines = []
    for r in rows.values():
        if "error" in r:
            lines.append([r["name"], "-", "-", "-", "-", "-", f"did not run: {r['error'][:120]}", "-", "-", r["load"]])
            continue
        ratio = r["wall"] / loop["wall"] * (trials / r["trials"]) if "error" not in loop else float("nan")
        row = [r["name"], r["trials"], r["wall"], r["busy"], r["rate"], r["overhead"], ratio, r["cpu"], r["steal"]]
        lines.append([*row, r["load"]])
    note = f"\n\nFresh workers run {fresh} trials (a Ray worker each); their wall / loop's is scaled to {trials}."
    floor = rows["ray-empty"]
    if "error" not in floor and "error" not in loop:
        note += (
            f" Ray Tune alone, with trials that do nothing, takes {floor['wall'] / loop['wall']:.2f}x the loop's wall "
            f"({floor['overhead']:.3f} s of slot time per trial): the floor of any search that gives each "
            "configuration its own Ray trial."
        )
        if "error" not in few and trials > few["trials"]:
            slope = (floor["wall"] - few["wall"]) / (trials - few["trials"])
            fixed = floor["wall"] - slope * trials
            note += (
                f" Of its wall, {fixed:.1f} s is fixed (start, first workers, stop; {fixed / loop['wall']:.2f}x the "
                f"loop's whole wall) and {slope * 1000:.0f} ms per trial ({few['trials']} empty trials took "
                f"{few['wall']:.1f} s)."
            )
    return Section("Many short trials (ESN, Mackey-Glass)", goals, table(header, lines) + note)


if __name__ == "__main__":
    main(sys.argv[1:])
