"""A trial the scheduler stops has its final record (result.json, status "stopped") before Optuna calls it PRUNED,
so a worker killed right after the stop leaves a consistent record. Before, a reused worker wrote result.json only
when Ray handed it its next trial: a kill in between left a PRUNED trial with no result.json, for good."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SEARCH_DIGITS = str(ROOT / "experiments" / "search_digits.py")

# trial 0 learns, later ones cannot (ASHA stops them after epoch 1); the space takes 5 s to draw trial 2, which
# holds the worker idle between trial 1's stop and its next trial: the window the kill lands in
SPACE = f"""
import time

from rnnlab.experiment import extend

config = extend({SEARCH_DIGITS!r}, {{"search.sampler": "random", "search.scheduler": "asha", "search.grace_period": 1,
                                     "train.epochs": 3, "train.max_batches": 6, "model.hidden_size": 16}})


def search_space(trial):
    search = trial.study.study_name == "search"
    if search and trial.number == 2:
        time.sleep(5)
    rate = 3e-2 if not search or trial.number == 0 else 1e-9
    return {{"optim.learning_rate": trial.suggest_float("optim.learning_rate", rate, rate), "model.family": "lstm"}}
"""


def journal_ops(path: Path) -> list[dict]:
    """The journal's whole lines, read without Optuna (which would set a torn tail aside under the live driver)."""
    ops = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            ops.append(json.loads(line))
        except ValueError:
            break
    return ops


def pruned_trials(ops: list[dict]) -> list[str]:
    ray_ids = {
        op["trial_id"]: op["user_attr"]["ray_trial_id"]
        for op in ops
        if op["op_code"] == 8 and "ray_trial_id" in op["user_attr"]
    }
    return [ray_ids[op["trial_id"]] for op in ops if op["op_code"] == 6 and op.get("state") == 2]


@pytest.mark.slow
def test_a_stopped_trial_is_recorded_before_optuna_hears_of_it(tmp_path):
    from rnnlab.search_folder import load_study

    experiment = tmp_path / "stops.py"
    experiment.write_text(textwrap.dedent(SPACE))
    folder = tmp_path / "s"
    env = {**os.environ, "WANDB_MODE": "disabled", "RNNLAB_CACHE": str(tmp_path / "cache")}
    command = [sys.executable, "-m", "rnnlab", "tune", str(experiment), "--storage", str(tmp_path), "--name", "s"]
    driver = subprocess.Popen(
        [*command, "--samples", "3", "--concurrency", "1"], env=env, stderr=subprocess.PIPE, text=True
    )
    seen_missing, killed = [], None
    deadline = time.monotonic() + 600
    while driver.poll() is None and killed is None and time.monotonic() < deadline:
        for trial_id in pruned_trials(journal_ops(folder / "optuna.journal")):
            trial_dir = folder / "trials" / trial_id
            if not (trial_dir / "result.json").exists():
                seen_missing.append(trial_id)
            os.kill(int((trial_dir / "pid").read_text()), signal.SIGKILL)  # the stopped trial's worker, at once
            killed = trial_id
            break
        time.sleep(0.05)
    _, err = driver.communicate(timeout=600)
    assert driver.returncode == 0, err[-3000:]
    assert killed is not None, "no trial was stopped by ASHA"
    assert not seen_missing, f"Optuna held PRUNED trials {seen_missing} before their result.json existed"
    trials = {t.user_attrs["ray_trial_id"]: t for t in load_study(folder).trials}
    stopped = trials[killed]  # the killed worker's trial stays recorded as what it was: stopped by ASHA
    result = json.loads((folder / "trials" / killed / "result.json").read_text())
    assert stopped.state.name == "PRUNED", stopped.state
    assert result["status"] == "stopped" and result["reason"] == stopped.user_attrs["reason"], result
    assert result["epoch"] == max(stopped.intermediate_values) and stopped.value == result["val/acc"], result
    first = trials[next(t for t, v in trials.items() if v.number == 0)]
    assert first.state.name == "COMPLETE"  # the trial that learned ran to its end
