"""The search end to end on a real local Ray and a real Optuna journal: trials, identity, report, replay, resume."""

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rnnlab.cli import main
from rnnlab.search_folder import SearchSpec, load_study

sys.path.insert(0, str(Path(__file__).parent))
from gates import Gates, live_trial  # noqa: E402
from test_faults import search_record, wait_for  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SEARCH_DIGITS = str(ROOT / "experiments" / "search_digits.py")
SHRINK = ["train.epochs=2", "train.max_batches=5", "search.grace_period=1"]


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module: starting it takes a while on a shared 2-core machine."""
    import ray

    from rnnlab.tune import connect

    connect(None)
    yield
    ray.shutdown()


def ray_trial_ids(folder: Path) -> list[str]:
    from ray.tune import ExperimentAnalysis

    spec = SearchSpec.load(folder)
    return [t.trial_id for run in spec.ray_runs for t in ExperimentAnalysis(str(folder / run)).trials]


def test_search_runs_conditional_space_and_replays_best(tmp_path, local_ray, capsys):
    code = main(
        [
            "tune",
            SEARCH_DIGITS,
            "--storage",
            str(tmp_path),
            "--name",
            "s",
            "--samples",
            "6",
            "--concurrency",
            "2",
            "--set",
            *SHRINK,
        ]
    )
    assert code == 0
    folder = tmp_path / "s"
    study = load_study(folder)
    ray_ids = ray_trial_ids(folder)
    assert len(study.trials) == len(ray_ids) == 6
    assert sorted(t.user_attrs["ray_trial_id"] for t in study.trials) == sorted(ray_ids)
    assert {t.params["model.family"] for t in study.trials} <= {"lstm", "gru"}
    for t in study.trials:  # conditional: only GRU trials ask for hidden_size, only LSTM ones for num_layers
        assert ("model.hidden_size" in t.params) == (t.params["model.family"] == "gru")
        assert t.state.name in ("COMPLETE", "PRUNED")
        if t.state.name == "COMPLETE":
            result = json.loads((folder / "trials" / t.user_attrs["ray_trial_id"] / "result.json").read_text())
            assert math.isclose(result["val/acc"], t.value)
    for trial_id in ray_ids:
        assert (folder / "trials" / trial_id / "metrics.jsonl").is_file()
        config = json.loads((folder / "trials" / trial_id / "config.json").read_text())["flat"]
        assert config["train.threads"] == 1 and config["train.epochs"] == 2
    out = capsys.readouterr().out
    assert "best trial" in out and (folder / "best_overrides.txt").read_text().startswith("--set ")
    assert (folder / "optimization_history.png").is_file()

    best = study.best_trial.user_attrs["ray_trial_id"]
    assert main(["replay", str(folder), best, "--out", str(tmp_path / "replay")]) == 0
    assert "replay reproduces the recorded metrics" in capsys.readouterr().out


def test_diverged_and_stopped_trials_are_pruned_with_reason(tmp_path):
    """The searcher alone (no Ray run): how it tells Optuna a trial ended, into a real journal."""
    from rnnlab.experiment import load_experiment
    from rnnlab.tune import make_searcher
    from rnnlab.tune.trainable import FINAL_KEY

    experiment = load_experiment(SEARCH_DIGITS)
    searcher = make_searcher(experiment.search_space, experiment.config, tmp_path)
    for trial_id in ("aaa", "bbb", "ccc"):
        assert "model.family" in searcher.suggest(trial_id)
    searcher.on_trial_complete(
        "aaa", {FINAL_KEY: True, "status": "diverged", "reason": "train/loss became nan", "val/acc": math.nan}
    )
    searcher.on_trial_complete("bbb", {"epoch": 1, "val/acc": 0.2})
    searcher.on_trial_complete("ccc", {FINAL_KEY: True, "status": "completed", "val/acc": 0.5})
    trials = {t.user_attrs["ray_trial_id"]: t for t in load_study(tmp_path).trials}
    assert trials["aaa"].state.name == "PRUNED" and "train/loss became nan" in trials["aaa"].user_attrs["reason"]
    assert trials["bbb"].state.name == "PRUNED" and "scheduler" in trials["bbb"].user_attrs["reason"]
    assert trials["ccc"].state.name == "COMPLETE" and trials["ccc"].value == 0.5


def test_bad_storage_exits_2(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["tune", SEARCH_DIGITS, "--storage", str(blocker / "sub"), "--name", "x"]) == 2
    assert main(["tune", SEARCH_DIGITS, "--storage", "nosuchscheme://bucket/path", "--name", "x"]) == 2


@pytest.mark.slow
def test_resume_after_driver_kill(tmp_path):
    """SIGKILL the driver mid-search (held before trial 4, tests/gates.py): --resume ends with exactly N trials,
    none run twice, the study intact."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled"}
    samples, gate = 10, 4
    gates = Gates(tmp_path)
    gates.hold(gate)
    cmd = [
        sys.executable,
        "-m",
        "rnnlab.cli",
        "tune",
        str(gates.experiment),
        "--storage",
        str(tmp_path),
        "--name",
        "k",
        "--samples",
        str(samples),
        "--set",
        "train.epochs=4",
        "train.max_batches=10",
        "search.scheduler=none",
    ]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    driver = subprocess.Popen(cmd, env=env, start_new_session=True, **quiet)
    folder = tmp_path / "k"
    deadline = time.time() + 600
    while time.time() < deadline and not gates.held(gate).exists() and driver.poll() is None:
        time.sleep(0.2)
    assert gates.held(gate).exists(), "the driver never reached the gate"
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the local Ray it started
    driver.wait()
    gates.release(gate)
    finished_before = {p.parent.name for p in folder.glob("trials/*/result.json")}
    # two slots: the driver draws trial 4 once at most one of trials 0-3 is still running
    assert 3 <= len(finished_before) < samples

    resumed = subprocess.run(
        [sys.executable, "-m", "rnnlab.cli", "tune", str(folder), "--resume"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    ids, _ = search_record(folder)  # the study's record: Ray's saved state misses trials begun after its last save
    assert len(ids) == samples
    study = load_study(folder)
    ran = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    configs = [json.dumps(t.params, sort_keys=True) for t in ran]
    assert len(set(configs)) == len(configs)
    for trial_id in finished_before:  # finished trials were not trained again
        rows = (folder / "trials" / trial_id / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(r)["epoch"] for r in rows] == [1, 2, 3, 4]


@pytest.mark.slow
def test_resume_restores_a_checkpoint_ray_deleted_after_its_last_save(tmp_path):
    """Ray deletes a trial's older checkpoints as it registers newer ones and uploads its state (naming the latest)
    later: a driver killed in between leaves a state naming a deleted checkpoint. Made here: the driver killed while a
    trial trains (held before trial 2, tests/gates.py), then the checkpoint Ray's state names for it deleted.
    --resume continues that trial from a checkpoint Ray kept: exactly N trials, all complete, each epoch once."""
    import shutil

    from ray.tune import ExperimentAnalysis

    from rnnlab.trial import read_metrics

    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled"}
    samples, epochs, gate = 4, 10, 2
    gates = Gates(tmp_path)
    gates.hold(gate)
    folder = tmp_path / "lost"
    args = ["--samples", str(samples), "--concurrency", "2", "--set", f"train.epochs={epochs}", "train.max_batches=30"]
    cmd = [sys.executable, "-m", "rnnlab.cli", "tune", str(gates.experiment), "--storage", str(tmp_path)]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    driver = subprocess.Popen(
        [*cmd, "--name", "lost", *args, "search.scheduler=none"], env=env, start_new_session=True, **quiet
    )
    try:
        wait_for(gates.held(gate).exists, 600, f"the driver holding before trial {gate}", driver)
        live = live_trial(folder, 10)  # the other of trials 0 and 1, its report waiting for the held driver
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and the local Ray it started
        driver.wait()
    gates.release(gate)
    assert live is not None, "no trial was training at the gate"
    [state] = [t for t in ExperimentAnalysis(str(folder / "ray")).trials if t.trial_id == live.name]
    assert state.status != "TERMINATED" and state.checkpoint is not None, (state.status, state.checkpoint)
    shutil.rmtree(state.checkpoint.path)

    resumed = subprocess.run([*cmd[:4], str(folder), "--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    ids, _ = search_record(folder)  # every FAIL orphaned (trial 2, asked at the gate), none errored
    assert len(ids) == samples and live.name in ids, ids
    assert [row["epoch"] for row in read_metrics(live / "metrics.jsonl")] == list(range(1, epochs + 1))
    assert f"{Path(state.checkpoint.path).name}, deleted after that state was saved" in resumed.stderr, resumed.stderr


@pytest.mark.slow
def test_trial_survives_losing_its_node(tmp_path):
    """A head (no CPUs) and two 1-CPU workers: both trials run, one per worker; killing a worker mid-trial makes
    that trial continue on the other worker from its last checkpoint (earlier epochs are kept, not re-run)."""
    import threading

    import ray
    from ray.cluster_utils import Cluster

    from rnnlab.experiment import load_experiment
    from rnnlab.tune import run_search

    if ray.is_initialized():
        ray.shutdown()
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    cluster = Cluster(initialize_head=True, connect=True, head_node_args={"num_cpus": 0})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    overrides = {
        "search.samples": "2",
        "search.concurrency": "2",
        "search.scheduler": "none",
        "train.epochs": "6",
        "train.batch_size": "8",
        "tracking.mode": "disabled",
    }
    experiment = load_experiment(SEARCH_DIGITS, overrides)
    folder = tmp_path / "m"
    spec = SearchSpec(
        experiment=SEARCH_DIGITS,
        name="m",
        storage=str(tmp_path),
        folder=str(folder),
        overrides=overrides,
        metric="val/acc",
        mode="max",
    )
    search = threading.Thread(target=run_search, args=(experiment, spec))
    search.start()
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            logs = list(folder.glob("trials/*/metrics.jsonl"))
            if len(logs) == 2 and all(len(p.read_text().splitlines()) >= 1 for p in logs):
                break
            time.sleep(0.5)
        before = {p.parent.name: p.read_text().splitlines() for p in folder.glob("trials/*/metrics.jsonl")}
        assert len(before) == 2, "both trials should run at once, one per worker"
        cluster.remove_node(workers[0], allow_graceful=False)
        search.join(timeout=600)
        assert not search.is_alive()
    finally:
        ray.shutdown()
        cluster.shutdown()
    from ray.tune import ExperimentAnalysis

    trials = ExperimentAnalysis(str(folder / "ray")).trials
    assert [t.status for t in trials] == ["TERMINATED", "TERMINATED"]
    assert sorted(t.run_metadata.num_failures for t in trials) == [0, 1]
    for trial_id, rows_before in before.items():
        rows = (folder / "trials" / trial_id / "metrics.jsonl").read_text().splitlines()
        assert [json.loads(r)["epoch"] for r in rows] == [1, 2, 3, 4, 5, 6]
        kept = [json.loads(r) for r in rows_before[:-1]]  # the last row may be the epoch the kill interrupted
        assert [json.loads(r) for r in rows[: len(kept)]] == kept  # continued from a checkpoint, not restarted


@pytest.mark.slow
def test_hyperband_trials_are_told_as_their_records_say(tmp_path, local_ray, capsys):
    """HyperBand pauses a trial at each milestone, after its summary row too, and stops some paused, which Ray tells
    the searcher without a result: 8 of 16 trials that had completed (the best among them) were PRUNED "after epoch
    0" in the study, and the report's best was not the best. Now each is told what its result.json says."""
    from rnnlab.search_folder import read_json

    sets = ["search.scheduler=hyperband", "train.max_batches=5", "tracking.mode=disabled"]
    argv = ["tune", SEARCH_DIGITS, "--samples", "16", "--storage", str(tmp_path), "--name", "hb", "--set", *sets]
    assert main(argv) == 0, capsys.readouterr().err[-3000:]
    study = load_study(tmp_path / "hb")
    assert len(study.trials) == 16
    for t in study.trials:
        result = read_json(tmp_path / "hb" / "trials" / t.user_attrs["ray_trial_id"] / "result.json")
        if result["status"] == "completed":
            assert t.state.name == "COMPLETE" and t.value == result["val/acc"], (t, result)
        else:
            assert result["status"] == "stopped" and t.state.name == "PRUNED", (t, result)
            assert t.user_attrs["reason"] == result["reason"], (t, result)  # the epoch it stopped after
    best = max((t for t in study.trials if t.state.name == "COMPLETE"), key=lambda t: t.value)
    assert study.best_trial.number == best.number
