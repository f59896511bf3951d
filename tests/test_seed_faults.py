"""Seed replicates (`search.seeds`) under faults in `rnnlab run`: a SIGTERM while an earlier seed trains ends the
run as stopped (exit 143, result.json naming the seed, no traceback), and `--resume` finishes every seed."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rnnlab.records import read_metrics

ROOT = Path(__file__).resolve().parent.parent
DIGITS = str(ROOT / "experiments" / "digits_lstm.py")
SHRINK = ["train.epochs=60", "train.max_batches=2", "model.hidden_size=8", "search.seeds=2", "tracking.mode=disabled"]


def rnnlab(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled"}
    return subprocess.Popen(
        [sys.executable, "-m", "rnnlab", *args], env=env, stderr=subprocess.PIPE, text=True, **kwargs
    )


@pytest.mark.slow
def test_sigterm_during_an_earlier_seed_stops_the_run_and_resume_finishes_it(tmp_path):
    import time

    out = tmp_path / "run"
    run = rnnlab("run", DIGITS, "--out", str(out), "--set", *SHRINK)
    deadline = time.monotonic() + 300
    while len(read_metrics(out / "seed_0" / "metrics.jsonl")) < 2 and time.monotonic() < deadline:
        assert run.poll() is None, run.stderr.read()[-2000:]
        time.sleep(0.05)
    run.send_signal(signal.SIGTERM)
    _, err = run.communicate(timeout=120)
    assert run.returncode == 143, err[-2000:]
    assert "Traceback" not in err, err[-2000:]
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "stopped" and result["reason"].startswith("seed 0: terminated by SIGTERM"), result
    seed_0 = json.loads((out / "seed_0" / "result.json").read_text())
    assert seed_0["status"] == "stopped" and not (out / "seed_1").exists()

    resumed = rnnlab("run", DIGITS, "--out", str(out), "--resume", "--set", *SHRINK)
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-2000:]
    result = json.loads((out / "result.json").read_text())
    seeds = [json.loads((out / f"seed_{i}" / "result.json").read_text()) for i in range(2)]
    assert result["status"] == "completed" and result["seeds"] == 2 and [s["seed"] for s in seeds] == [0, 1]
    assert result["seeds/val/acc"] == [s["val/acc"] for s in seeds]
    epochs = [r["epoch"] for r in read_metrics(out / "seed_0" / "metrics.jsonl")]
    assert epochs == list(range(1, len(epochs) + 1))  # seed 0 continued from its checkpoint, no epoch twice


ADDING = str(ROOT / "experiments" / "adding_lstm.py")
# one training batch of 256 sequences of 200 steps through a width-128 LSTM: ~100 MB of saved gates, over a 40 MB cap
HEAVY_BATCH = {
    "data.seq_len": 200,
    "data.num_samples": 400,
    "train.batch_size": 256,
    "train.epochs": 1,
    "train.max_batches": 1,
    "search.seeds": 3,
    "tracking.mode": "disabled",
}


def test_a_seed_out_of_memory_ends_the_replicates_as_out_of_memory_naming_it(tmp_path):
    """Seed 1 of 3 runs out of memory in training (a real allocation over a real RLIMIT_AS cap, as on a machine
    shared with other jobs), the others have room. Before: the loop went on to seed 2 and the combined result read
    "completed", with no reason and no mean of the metric (seed 1 had none). Now the replicates end at that seed:
    out_of_memory, the seed named, no mean pretending."""
    from rnnlab.experiment import load_experiment
    from rnnlab.registries import apply_overrides
    from rnnlab.replicates import run_replicates
    from rnnlab.trial import run_seed
    from rnnlab.tune.trainable import memory_cap

    cfg = apply_overrides(load_experiment(ADDING).config, HEAVY_BATCH)
    ran = []

    def run_seed_on_a_crowded_machine(seed_cfg, *args):
        ran.append(seed_cfg.seed)
        if seed_cfg.seed != 1:
            return run_seed(seed_cfg, *args)
        with memory_cap(40):
            return run_seed(seed_cfg, *args)

    result = run_replicates(run_seed_on_a_crowded_machine, cfg, out_dir=tmp_path / "trial")
    seed_1 = json.loads((tmp_path / "trial" / "seed_1" / "result.json").read_text())
    assert seed_1["status"] == "out_of_memory", seed_1
    assert ran == [0, 1], "no seed runs after one that ran out of memory"
    assert result["status"] == "out_of_memory" and result["reason"].startswith("seed 1: out of memory"), result
    assert "val/mse" not in result and json.loads((tmp_path / "trial" / "result.json").read_text()) == result


def test_run_with_every_seed_out_of_memory_says_which_seed_and_exits_1(tmp_path):
    """`rnnlab run --set search.seeds=2` in a process whose address space is capped: each seed's training batch
    fails to allocate. Before: seed 1 ran too, result.json had no reason and the command ended in a KeyError
    traceback. Now: exit 1, the first seed named, seed 1 not run."""
    import resource

    cap = 4 * 2**30  # the interpreter, torch and the data fit; a batch of 256 x 4000 steps of a width-512 LSTM not

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    heavier = {**HEAVY_BATCH, "search.seeds": 2, "data.seq_len": 4000, "model.hidden_size": 512}
    sets = [f"{k}={v}" for k, v in heavier.items()]  # each key once: a key given twice is refused
    out = tmp_path / "run"
    run = rnnlab("run", ADDING, "--out", str(out), "--set", *sets, preexec_fn=limit)
    _, err = run.communicate(timeout=300)
    assert run.returncode == 1 and "Traceback" not in err, err[-3000:]
    assert "seed 0: out of memory" in err, err[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "out_of_memory" and result["reason"].startswith("seed 0: out of memory"), result
    assert not (out / "seed_1").exists()


def test_a_scheduler_stop_of_the_last_seed_records_the_means_it_reported(tmp_path):
    """A scheduler stops a 2-seed configuration at the last seed's epoch 1 (the trainable's report raises
    TrialStopped, as for Ray's stop). Before: result.json held the mean of seed 0's final (best-epoch) metrics and
    seed 1's epoch 1 (val/acc 0.144 against the study's 0.119, the value reported), and no reason. Now: the mean
    row it reported, and the scheduler's reason."""
    from rnnlab.experiment import load_experiment
    from rnnlab.registries import apply_overrides
    from rnnlab.train import TrialStopped
    from rnnlab.trial import run_trial

    overrides = {"train.epochs": 3, "train.max_batches": 20, "optim.learning_rate": 0.02, "search.seeds": 2}
    cfg = apply_overrides(load_experiment(DIGITS).config, {**overrides, "tracking.mode": "disabled"})
    reported = []

    def report(metrics, checkpoint=None):
        reported.append(dict(metrics))
        raise TrialStopped(f"stopped by the scheduler after epoch {metrics['epoch']}")

    result = run_trial(cfg, report, tmp_path / "trial")
    assert result["status"] == "stopped" and result["reason"] == "stopped by the scheduler after epoch 1", result
    assert len(reported) == 1 and result["val/acc"] == reported[0]["val/acc"], (result, reported)
    seed_0 = json.loads((tmp_path / "trial" / "seed_0" / "result.json").read_text())
    epoch_1 = read_metrics(tmp_path / "trial" / "seed_0" / "metrics.jsonl")[0]
    seed_1 = json.loads((tmp_path / "trial" / "seed_1" / "result.json").read_text())
    assert seed_0["status"] == "completed" and seed_0["val/acc"] != epoch_1["val/acc"], "seed 0 learnt after epoch 1"
    assert result["val/acc"] == (epoch_1["val/acc"] + seed_1["val/acc"]) / 2
    assert result["seeds/val/acc"] == [seed_0["val/acc"], seed_1["val/acc"]]
    assert json.loads((tmp_path / "trial" / "result.json").read_text()) == result
