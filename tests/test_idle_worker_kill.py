"""A reused worker SIGKILLed while Ray holds it idle between trials: the trial Ray next hands it never ran a step,
so it is retried on a fresh worker (a transient fault, search.max_failures), not failed; every trial's record (its
Optuna state and reason, result.json, folder) is true, each trial once."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rnnlab.search_folder import load_study

sys.path.insert(0, str(Path(__file__).parent))
from gates import Gates  # noqa: E402
from test_faults import ROOT, cli, env, wait_for  # noqa: E402

TRIALS = 4
# tests/gates.py over experiments/search_esn_mackey_glass.py (one closed-form fit a trial), one trial at a time: while
# the driver holds before it draws trial 1, trial 0 has ended and its worker, killed then, waits idle in Ray's cache
SEARCH_ESN = str(ROOT / "experiments" / "search_esn_mackey_glass.py")
GATE = 1


@pytest.mark.slow
@pytest.mark.parametrize("max_failures", [2, 0])
def test_a_reused_worker_killed_while_idle_costs_no_trial(tmp_path, max_failures):
    gates = Gates(tmp_path, SEARCH_ESN)
    gates.hold(GATE)
    folder = tmp_path / "idle"
    args = ["--samples", str(TRIALS), "--concurrency", "1", "--set", "data.num_samples=600"]
    args += [f"search.max_failures={max_failures}"]
    with (tmp_path / "driver.log").open("w") as log:
        driver = subprocess.Popen(
            cli("tune", str(gates.experiment), "--storage", str(tmp_path), "--name", "idle", *args),
            env=env(),
            start_new_session=True,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(gates.held(GATE).exists, 600, f"the driver holding before trial {GATE}", driver)
        [first] = [p.parent for p in folder.glob("trials/*/result.json")]  # trial 0 ended; its worker waits idle
        victim = int((first / "pid").read_text())
        os.kill(victim, signal.SIGKILL)
        gates.release(GATE)
        assert driver.wait(timeout=600) == 0, (tmp_path / "driver.log").read_text()[-3000:]
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    trials = sorted(load_study(folder).trials, key=lambda t: t.number)
    ray_ids = [t.user_attrs["ray_trial_id"] for t in trials]
    assert [t.number for t in trials] == list(range(TRIALS)) and len(set(ray_ids)) == TRIALS, ray_ids  # each once
    lost = trials[1]  # handed the dead worker
    ran = trials if max_failures else [t for t in trials if t is not lost]
    assert sorted(p.name for p in folder.glob("trials/*")) == sorted(t.user_attrs["ray_trial_id"] for t in ran)
    for t in ran:  # every trial that ran: COMPLETE in Optuna with its result.json's value, on a live worker
        out = folder / "trials" / t.user_attrs["ray_trial_id"]
        result = json.loads((out / "result.json").read_text())
        assert t.state.name == "COMPLETE" and result["status"] == "completed", (t.number, t.user_attrs, result)
        assert math.isclose(t.value, result["val/rmse"]), (t.number, t.value, result)
        assert int((out / "pid").read_text()) != victim or t.number == 0, (t.number, victim)
    if not max_failures:  # no retry allowed: it failed, for the reason that it did, and never ran
        assert lost.state.name == "FAIL", lost.user_attrs
        reason = lost.user_attrs["reason"]
        assert reason.startswith("ActorDiedError: The actor died") and "replay" not in reason, reason
