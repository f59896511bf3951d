"""SIGTERM to the driver of `rnnlab tune` (a batch scheduler's time limit or preemption, `kill`) stops the search as
Ctrl-C does: Tune saves its state, the running trials record where they stopped, exit 143, and `--resume` finishes
them. Before, Ray's own SIGTERM handler raised SystemExit inside Tune's loop: no state saved, every running trial
ended FAIL in the study ("the driver failed (SystemExit: 15)"), counted in the budget and never resumed, exit 15."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from test_faults import SEARCH_DIGITS, cli, env, wait_for, wandb_run_ids  # noqa: E402
from test_user_faults import slow_space_experiment  # noqa: E402

from rnnlab.records import read_metrics  # noqa: E402
from rnnlab.search_folder import load_study, read_json  # noqa: E402


def test_sigterm_before_the_search_starts_leaves_nothing(tmp_path):
    """SIGTERM while the driver checks its space (its folder held). Before: killed at once (-15), the search folder
    left behind holding only its lock. Now: one line, exit 143, no folder."""
    experiment, marker = slow_space_experiment(tmp_path)
    argv = cli("tune", str(experiment), "--storage", str(tmp_path), "--name", "s")
    child = subprocess.Popen(argv, env=env(), stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not marker.exists():
        time.sleep(0.1)
    child.send_signal(signal.SIGTERM)
    err = child.communicate(timeout=60)[1]
    assert child.returncode == 143, err[-2000:]
    assert "Traceback" not in err and "terminated by SIGTERM before the search started" in err, err[-2000:]
    assert not (tmp_path / "s").exists()


# The first trial runs LONG epochs (tens of ms each: seconds in all, on any machine), the others 2, so the signal
# finds the first mid-training. Before, the test polled for a trial with 1-3 of 6 epochs, and on a fast machine every
# trial ended between two polls; holding the driver before the third draw did not help, as the long trial could
# start late, after the short one, and end in the moment the driver took to reach its hold.
LONG = 300
TWO_LENGTHS = """
from rnnlab.experiment import extend, load_experiment

config = extend({base!r})
_space = load_experiment({base!r}).search_space


def search_space(trial):
    return {{**_space(trial), "train.epochs": {long} if trial.number == 0 else 2}}
"""


def long_trial_mid_training(folder: Path) -> Path | None:
    """The long trial, once it has a few epochs recorded and no end yet."""
    for log in folder.glob("trials/*/metrics.jsonl"):
        long = read_json(log.parent / "params.json").get("train.epochs") == LONG
        if long and len(read_metrics(log)) >= 5 and not (log.parent / "result.json").exists():
            return log.parent
    return None


@pytest.mark.slow
@pytest.mark.parametrize("group", [False, True], ids=["driver", "process-group"])
def test_sigterm_stops_the_search_and_resume_finishes_it(tmp_path, group):
    """SIGTERM to the driver alone (`kill PID`): a clean stop, exit 143. To its whole process group (`kill -TERM
    -PGID`, SLURM at a time limit): Ray's own processes die with it; before, the driver waited 60 s for its dead
    Ray and exited 1; now it exits 143 once Ray is gone, saying so. Either way the trials recorded where they
    stopped and `--resume` finishes them."""
    folder = tmp_path / "s"
    experiment = tmp_path / "two_lengths.py"
    experiment.write_text(TWO_LENGTHS.format(base=SEARCH_DIGITS, long=LONG))
    args = ["--samples", "3", "--concurrency", "2", "--set", "train.max_batches=20"]
    argv = cli("tune", str(experiment), "--storage", str(tmp_path), "--name", "s", *args, "search.scheduler=none")
    driver = subprocess.Popen(
        argv, env=env(), start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(lambda: long_trial_mid_training(folder) is not None, 600, "the long trial mid-training", driver)
        victim = long_trial_mid_training(folder)
        if group:
            os.killpg(driver.pid, signal.SIGTERM)  # the driver, its Ray and Ray's workers
        else:
            driver.send_signal(signal.SIGTERM)  # the driver alone, as `kill PID` does
        _, err = driver.communicate(timeout=300)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == 143 and "Traceback" not in err, err[-3000:]
    assert f"Continue it (or write its report) with: rnnlab tune {folder} --resume" in err, err[-3000:]
    if group:
        assert "search stopped by SIGTERM, which reached its local Ray too" in err, err[-3000:]
        assert "Failed to connect to GCS" not in err, err[-3000:]  # Ray's own end, 60 s later
    else:
        assert "stopped by SIGTERM; its state is saved" in err, err[-3000:]
        reasons = {t.number: t.user_attrs.get("reason") for t in load_study(folder).trials if t.state.name == "FAIL"}
        assert not reasons, f"trials failed for the driver's stop: {reasons}"
    stopped = json.loads((victim / "result.json").read_text())
    assert stopped["status"] == "stopped", stopped  # it recorded where it stopped, as on Ctrl-C
    assert stopped["reason"].startswith("stopped by Ray after epoch"), stopped  # was "by the scheduler", with none
    before = read_metrics(victim / "metrics.jsonl")

    resume = cli("tune", str(folder), "--resume")
    resumed = subprocess.run(resume, env=env(), capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    trials = load_study(folder).trials
    ids = [t.user_attrs["ray_trial_id"] for t in trials]
    assert len(trials) == 3 and len(set(ids)) == 3, ids
    assert all(t.state.name == "COMPLETE" for t in trials), [(t.number, t.state.name, t.user_attrs) for t in trials]
    assert victim.name in ids  # resumed, not replaced
    result = json.loads((victim / "result.json").read_text())
    rows = read_metrics(victim / "metrics.jsonl")
    epochs = [r["epoch"] for r in rows]
    assert result["status"] == "completed" and epochs == list(range(1, LONG + 1)), (result, epochs)
    if not group:  # from the checkpoint of the last epoch Ray heard of (the one after it, if any, is run again)
        assert rows[0] == before[0], "it went on from a checkpoint; it did not start over"
    runs = wandb_run_ids(folder)
    assert sorted(runs) == sorted(ids) and all(len(r) == 1 for r in runs.values()), runs  # one W&B run per trial
