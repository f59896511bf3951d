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
