"""Errors cross the Ray boundary intact: picklable with field and message, a deterministic one not retried, a late
failure or a raising search space ends that trial FAIL with its reason while the search goes on, no trial of the
study stays RUNNING, the printed replay command works, a trial no node can hold fails before launch."""

import json
import os
import pickle
import textwrap
from pathlib import Path

import pytest

from rnnlab.cli import main
from rnnlab.config import ConfigError
from rnnlab.data import DataError
from rnnlab.search_folder import SearchSpec, load_study

ROOT = Path(__file__).resolve().parent.parent
SEARCH_DIGITS = str(ROOT / "experiments" / "search_digits.py")

# trial #1 asks for a width of 0 (a ConfigError in its worker), #2 makes the space raise, #3 outlives its time limit;
# only in the search's own study ("search"): the pre-launch check of the space draws from a throwaway one
FAULTY_SPACE = f"""
from rnnlab.experiment import extend

config = extend({SEARCH_DIGITS!r}, {{"search.sampler": "random", "search.scheduler": "none", "search.max_failures": 2,
                                     "train.epochs": 2, "train.max_batches": 3}})


def search_space(trial):
    space = {{"optim.learning_rate": trial.suggest_float("optim.learning_rate", 1e-3, 1e-2, log=True)}}
    if trial.study.study_name == "search" and trial.number == 1:
        space["model.hidden_size"] = 0
    if trial.study.study_name == "search" and trial.number == 2:
        raise ValueError("no such branch")
    if trial.study.study_name == "search" and trial.number == 3:
        space.update({{"search.trial_time_limit_s": 10.0, "train.epochs": 20000, "train.max_batches": 3}})
    return space
"""


@pytest.mark.parametrize("error", [ConfigError("model.hidden_size", "must be > 0"), DataError("data.x", "empty")])
def test_errors_pickle_with_field_and_message(error):
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error) and copy.field == error.field and str(copy) == str(error)
    assert copy.message == error.message


def test_unreported_objective_is_refused_before_launch(tmp_path, capsys):
    code = main(
        [
            "tune",
            SEARCH_DIGITS,
            "--storage",
            str(tmp_path),
            "--name",
            "o",
            "--set",
            "search.objectives=[val/nosuch:max]",
        ]
    )
    assert code == 2 and "search.objectives" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def local_ray():
    import ray

    from rnnlab.tune import connect

    connect(None)
    yield
    ray.shutdown()


def test_trial_larger_than_any_node_fails_before_launch(tmp_path, local_ray, capsys):
    code = main(
        ["tune", SEARCH_DIGITS, "--storage", str(tmp_path), "--name", "big", "--set", "search.cpus_per_trial=512"]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "search.cpus_per_trial" in err and "512" in err
    assert not (tmp_path / "big").exists()  # nothing written: the same command works once fixed


@pytest.mark.slow
def test_failures_end_their_trials_and_the_search_goes_on(tmp_path, local_ray, capsys):
    from ray.tune import ExperimentAnalysis

    experiment = tmp_path / "faulty.py"
    experiment.write_text(textwrap.dedent(FAULTY_SPACE))
    code = main(
        ["tune", str(experiment), "--storage", str(tmp_path), "--name", "f", "--samples", "5", "--concurrency", "2"]
    )
    out = capsys.readouterr()
    assert code == 0, out.err[-2000:]
    folder = tmp_path / "f"
    study = load_study(folder)
    by_number = {t.number: t for t in study.trials}
    assert not [t for t in study.trials if t.state.name == "RUNNING"]
    ray_trials = {t.trial_id: t for t in ExperimentAnalysis(str(folder / "ray")).trials}

    width = by_number[1]  # deterministic: not retried, the reason names the field, result.json agrees
    width_id = width.user_attrs["ray_trial_id"]
    assert width.state.name == "FAIL" and "model.hidden_size" in width.user_attrs["reason"]
    assert ray_trials[width_id].run_metadata.num_failures == 0
    result = json.loads((folder / "trials" / width_id / "result.json").read_text())
    assert result["status"] == "failed" and result["reason"] == width.user_attrs["reason"]

    space = by_number[2]  # the space raised: that draw fails, no Ray trial for it
    assert space.state.name == "FAIL" and "no such branch" in space.user_attrs["reason"]
    assert "ray_trial_id" not in space.user_attrs

    slow = by_number[3]  # late: after some epochs, ended by its time limit
    slow_id = slow.user_attrs["ray_trial_id"]
    result = json.loads((folder / "trials" / slow_id / "result.json").read_text())
    assert slow.state.name == "FAIL" and "search.trial_time_limit_s=10" in slow.user_attrs["reason"]
    assert result["status"] == "failed" and result["reason"] == slow.user_attrs["reason"]
    assert result["epoch"] >= 1 and slow.intermediate_values  # its epochs are on record
    assert sum(t.state.name == "COMPLETE" for t in study.trials) == 3  # the rest of the search ran: 5 Ray trials
    assert len(ray_trials) == 5

    # the replay command works for a failed trial: it reproduces the error in-process, with the field
    assert main(["replay", str(folder), width_id, "--out", str(tmp_path / "replay")]) == 2
    assert "model.hidden_size" in capsys.readouterr().err
    spec = SearchSpec.load(folder)
    assert spec.metric == "val/acc"


# trial #0 ends at once; the draw of #2 (after #0's end) waits for #1 to be mid-training, then exits the driver
EXITING_SPACE = """
import json, sys, time
from pathlib import Path

from rnnlab.experiment import extend

config = extend({base!r}, {{"search.sampler": "random", "search.scheduler": "none", "train.max_batches": 2}})
TRIALS = Path({trials!r})


def training(folder):
    rows = folder / "metrics.jsonl"
    return rows.is_file() and rows.read_text().strip() and not (folder / "result.json").exists()


def search_space(trial):
    space = {{"optim.learning_rate": trial.suggest_float("optim.learning_rate", 1e-3, 1e-2, log=True)}}
    if trial.study.study_name != "search":
        return space
    if trial.number == 2:
        deadline = time.monotonic() + 300
        while not any(training(f) for f in TRIALS.glob("*")) and time.monotonic() < deadline:
            time.sleep(0.1)
        sys.exit("the search space exits the driver")
    return {{**space, "train.epochs": 1 if trial.number == 0 else 2000}}
"""


@pytest.mark.slow
def test_a_driver_that_fails_leaves_each_running_trial_a_failed_result(tmp_path):
    """The driver dies of an error it cannot catch (here the search space exits it) while a trial trains. Before:
    the study closed that trial FAIL ("the driver failed ...") but its folder had no result.json, so the folder
    read as a trial still running (report, replay) and disagreed with the study. Now result.json says the same."""
    import subprocess
    import sys

    folder = tmp_path / "x"
    experiment = tmp_path / "exiting.py"
    experiment.write_text(EXITING_SPACE.format(base=SEARCH_DIGITS, trials=str(folder / "trials")))
    argv = [sys.executable, "-m", "rnnlab", "tune", str(experiment), "--storage", str(tmp_path), "--name", "x"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline"}
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode != 0, done.stderr[-3000:]
    study = load_study(folder).trials
    failed = [t for t in study if "the driver failed" in t.user_attrs.get("reason", "") and t.number == 1]
    assert failed, [(t.number, t.state.name, t.user_attrs) for t in study]  # #2, never a Ray trial, has no folder
    assert not [t for t in study if t.state.name == "RUNNING"]
    for t in failed:
        assert t.state.name == "FAIL"
        result = json.loads((folder / "trials" / t.user_attrs["ray_trial_id"] / "result.json").read_text())
        assert result["status"] == "failed" and result["reason"] == t.user_attrs["reason"], result
        assert result["epoch"] >= 1, "its last epoch's metrics, as metrics.jsonl has them"


# every trial of the search's own study fails in its worker (a width of 0), none in the pre-launch draws
FAILING_SPACE = """
from rnnlab.experiment import extend

config = extend({base!r}, {{"train.epochs": 2, "train.max_batches": 2, "tracking.mode": "disabled"}})


def search_space(trial):
    space = {{"optim.learning_rate": trial.suggest_float("optim.learning_rate", 1e-3, 1e-2, log=True)}}
    if trial.study.study_name == "search":
        space["model.hidden_size"] = 0
    return space
"""


@pytest.mark.slow
def test_a_trial_that_fails_of_its_own_is_told_with_its_reason(tmp_path):
    """Before: its line said "finished (val/acc=nan)" and counted it done, numpy warned "All-NaN slice encountered"
    (ASHA's cutoff over the failed trials' NaN), and the summary said "failed trial ID: failed". Now each line and
    the summary name the reason."""
    import subprocess
    import sys

    experiment = tmp_path / "failing.py"
    experiment.write_text(FAILING_SPACE.format(base=SEARCH_DIGITS))
    argv = ["tune", str(experiment), "--storage", str(tmp_path), "--name", "f", "--samples", "2"]
    done = subprocess.run([sys.executable, "-m", "rnnlab", *argv], capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stderr[-2000:]  # no trial completed
    ids = sorted(p.name for p in (tmp_path / "f" / "trials").iterdir())
    assert len(ids) == 2
    for trial_id in ids:
        assert f"<- {trial_id} failed: ConfigError: model.hidden_size" in done.stderr, done.stderr[-2000:]
        assert f"failed trial {trial_id}: ConfigError: model.hidden_size" in done.stdout, done.stdout[-2000:]
    assert "finished" not in done.stderr and "All-NaN" not in done.stderr and "errored 2" in done.stderr
