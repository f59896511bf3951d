"""Many tiny trials on reused workers, with faults from outside: ASHA stops, a worker SIGKILLed mid-trial, the
driver SIGKILLed and resumed. Every trial is in Optuna, has its folder, result.json and one W&B run, exactly once,
and the study's value of each equals its result.json's."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rnnlab.search_folder import SearchSpec, load_study
from rnnlab.tracking.search import TABLE_KEY, search_run_id
from rnnlab.tracking.wandb_log import read_history, read_records, run_logs
from rnnlab.trial import read_metrics

sys.path.insert(0, str(Path(__file__).parent))
from gates import Gates, live_trial  # noqa: E402
from test_faults import cli, env, history_rows, search_record, wait_for, wandb_run_ids  # noqa: E402

TRIALS = 24
# tests/gates.py: the faults land at known points of the search, never racing 24 trials that may all end in 2 s.
# The worker kill while the driver holds before one of trials 6-10: at a gate the trial drawn before it may not have
# started yet (Ray's loop is held too), so each gate waits a few seconds for a live trial, then lets the driver go on
# to the next. The driver kill while it holds before trial 16.
KILL_GATES = (6, 7, 8, 9, 10)
DRIVER_GATE = 16
GATES = (*KILL_GATES, DRIVER_GATE)
SEARCH = [
    "--samples",
    str(TRIALS),
    "--concurrency",
    "2",
    "--set",
    "train.epochs=4",
    "train.max_batches=2",
    "search.grace_period=1",
    "search.sampler=random",
    "search.scheduler=asha",
]
STATES = {"completed": "COMPLETE", "early_stopped": "COMPLETE", "stopped": "PRUNED"}


def finished(folder: Path) -> int:
    return len(list(folder.glob("trials/*/result.json")))


@pytest.mark.slow
def test_many_tiny_trials_survive_a_worker_kill_and_a_driver_kill(tmp_path):
    gates = Gates(tmp_path)
    gates.hold(*GATES)
    folder = tmp_path / "many"
    driver = subprocess.Popen(
        cli("tune", str(gates.experiment), "--storage", str(tmp_path), "--name", "many", *SEARCH),
        env=env(),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        victim = None
        for gate in KILL_GATES:
            if victim is None:
                wait_for(gates.held(gate).exists, 600, f"the driver holding before trial {gate}", driver)
                # a trial begun before it trains on a reused worker, waiting in `tune.report` for the held driver
                victim = live_trial(folder, 10)
                if victim is not None:
                    killed = int((victim / "pid").read_text())
                    os.kill(killed, signal.SIGKILL)  # the worker, which ran trials before this one
                    count = finished(folder)
            gates.release(gate)  # past the kill, the later kill gates no longer hold
        assert victim is not None, f"no trial was running at any of the gates {KILL_GATES}"
        wait_for(gates.held(DRIVER_GATE).exists, 600, f"the driver holding before trial {DRIVER_GATE}", driver)
        assert finished(folder) >= count + 4, "trials after the worker kill"
        assert driver.poll() is None, "the search ended before the driver could be killed"
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)  # the driver and the local Ray it started
        driver.wait()
    gates.release(DRIVER_GATE)
    said = []
    for _ in range(3):  # resume until the search is done
        resumed = subprocess.run(
            cli("tune", str(folder), "--resume"), env=env(), timeout=900, capture_output=True, text=True
        )
        said.append(resumed.stderr[-3000:])
        if resumed.returncode == 0:
            break
    assert len(said) == 1 and resumed.returncode == 0, said

    # the record is the study and the trial folders: Ray's state, saved every 10 s or so, misses the trials begun
    # after its last save before the kill (those that ended are done; those that were running are orphaned)
    ids, started = search_record(folder)
    assert len(ids) == TRIALS, f"{len(ids)} trials ran for samples {TRIALS} ({len(started)} orphaned)"
    study = load_study(folder)
    ran = {t.user_attrs["ray_trial_id"]: t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")}
    # retried on another worker (Ray's num_failures may predate the driver kill: its state is saved periodically)
    retried = int((victim / "pid").read_text()) != killed or victim.name in started  # or lost with the driver
    assert retried, "the killed trial finished on another worker"
    pids = {(folder / "trials" / trial_id / "pid").read_text() for trial_id in ran}
    assert len(pids) < TRIALS / 2, f"{len(pids)} workers ran {TRIALS} trials: they were reused"
    runs = wandb_run_ids(folder)
    assert sorted(runs) == sorted([*ran, *started]), "a folder per trial, no other"
    statuses = []
    for trial_id, optuna_trial in ran.items():
        out = folder / "trials" / trial_id
        result = json.loads((out / "result.json").read_text())
        statuses.append(result["status"])
        assert optuna_trial.state.name == STATES[result["status"]], (trial_id, result)
        assert math.isclose(optuna_trial.value, result["val/acc"]), (trial_id, optuna_trial.value, result)
        assert runs[trial_id] == {f"many-{trial_id}"}, f"{trial_id}: one W&B run, continued after a kill"
        epochs = [row["epoch"] for row in read_metrics(out / "metrics.jsonl")]
        assert epochs == list(range(1, len(epochs) + 1)), (trial_id, epochs)
        logged = sorted(e for run in out.glob("wandb/offline-run-*") for e in history_rows(run))
        assert logged == epochs, f"{trial_id}: every epoch in W&B exactly once"
    assert "stopped" in statuses and "completed" in statuses, statuses
    for trial_id in [*ran, *started]:  # each W&B run ended, an orphan's too (failed, as its result.json says)
        out = folder / "trials" / trial_id
        logs = run_logs(out, f"many-{trial_id}")
        exits = [r.exit.exit_code for r in read_records(logs[-1]) if r.WhichOneof("record_type") == "exit"]
        assert exits == [1 if trial_id in started else 0], (trial_id, exits, len(logs))
        epochs = [row["epoch"] for row in read_metrics(out / "metrics.jsonl")]
        assert sorted(row["epoch"] for log in logs for row in read_history(log)) == epochs, trial_id
    # the search's own W&B run, logged in a thread while the report draws: its Table has a row per trial of the study
    [*_, log] = run_logs(folder, search_run_id(SearchSpec.load(folder)))
    [table] = [row for row in read_history(log) if any(k.startswith(TABLE_KEY) for k in row)]
    nrows = table[TABLE_KEY]["nrows"] if isinstance(table.get(TABLE_KEY), dict) else table[f"{TABLE_KEY}/nrows"]
    assert nrows == len(study.trials), (nrows, len(study.trials))
