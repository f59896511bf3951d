"""A search whose --storage is a URI lives whole in the bucket (rnnlab/storage.py), against a real S3 server
(SeaweedFS on 127.0.0.1, tests/s3server.py): the trials' records and W&B runs, the journal, search.json and the
report reach it, and a machine that never held the search reports, replays and extends it from the bucket alone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from s3server import seaweedfs

from rnnlab.storage import join, redact

REPO = Path(__file__).resolve().parent.parent
SHRUNK = ["--concurrency", "2", "--set", "train.epochs=2", "train.max_batches=2", "data.num_samples=200",
          "search.scheduler=none"]  # fmt: skip


def test_join_keeps_the_query_last():
    uri = "s3://bucket/searches?endpoint_override=127.0.0.1:9000&scheme=http"
    assert join(uri, "name", "ray") == "s3://bucket/searches/name/ray?endpoint_override=127.0.0.1:9000&scheme=http"
    assert join("gs://bucket", "a/") == "gs://bucket/a"
    assert redact("s3://key:secret@bucket/x") == "s3://bucket/x"


@pytest.fixture(scope="module")
def s3():
    with seaweedfs() as server:
        yield server


def test_files_round_trip_through_the_server(s3, monkeypatch, tmp_path):
    from rnnlab.storage import pull, push

    for key, value in s3.env.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f.txt").write_text("hello")
    push(tmp_path / "a", s3.uri("round/a"))
    assert s3.files("round") == ["a/b/f.txt"]
    assert pull(s3.uri("round/a"), tmp_path / "back")
    assert (tmp_path / "back" / "b" / "f.txt").read_text() == "hello"
    assert not pull(s3.uri("round/none"), tmp_path / "none")


def rnnlab(args: list[str], cwd: Path, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "rnnlab", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip
    assert done.returncode == 0, f"rnnlab {' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done


def search_env(s3, tmp_path: Path) -> dict:
    env = {**os.environ, **s3.env, "WANDB_MODE": "offline", "PYTHONPATH": str(REPO)}
    env.pop("RAY_ADDRESS", None)
    return env


def check_bucket(s3, name: str, samples: int) -> list[str]:
    """Every trial's record and W&B run in the bucket, and Optuna's count equal to the trials': the trial ids."""
    files = s3.files(f"searches/{name}")
    trials = sorted({f.split("/")[1] for f in files if f.startswith("trials/") and f.endswith("/result.json")})
    assert len(trials) == samples, files
    for trial in trials:
        mine = [f for f in files if f.startswith(f"trials/{trial}/")]
        assert f"trials/{trial}/metrics.jsonl" in mine and f"trials/{trial}/config.json" in mine, mine
        assert any("offline-run-" in f and f.endswith(".wandb") for f in mine), mine
    assert "search.json" in files and "optuna.journal" in files
    return trials


def study_of(s3, name: str, tmp_path: Path):
    from rnnlab.search_folder import load_study
    from rnnlab.storage import pull

    folder = tmp_path / "study-check"
    shutil.rmtree(folder, ignore_errors=True)
    pull(s3.uri(f"searches/{name}"), folder, skip=("ray", "trials"))
    return load_study(folder)


@pytest.mark.slow
def test_search_in_a_bucket_is_reported_replayed_and_extended_from_the_bucket_alone(s3, tmp_path, monkeypatch):
    for key, value in s3.env.items():  # this process reads the bucket too
        monkeypatch.setenv(key, value)
    env = search_env(s3, tmp_path)
    head = tmp_path / "head"
    head.mkdir()
    storage = s3.uri("searches")
    rnnlab(["tune", "search_digits", "--samples", "2", *SHRUNK, "--storage", storage, "--name", "b1"], head, env)
    trials = check_bucket(s3, "b1", 2)
    study = study_of(s3, "b1", tmp_path)
    assert sorted(t.user_attrs["ray_trial_id"] for t in study.trials) == trials
    assert "best_overrides.txt" in s3.files("searches/b1")  # the end of the search, pushed by the driver

    shutil.rmtree(head)  # the old head's disk is gone
    new = tmp_path / "new-head"
    new.mkdir()
    uri = s3.uri("searches/b1")
    done = rnnlab(["report", uri], new, env)
    assert (new / "searches" / "b1" / "report" / "report.html").is_file(), done.stdout
    assert "report/report.html" in s3.files("searches/b1")
    rnnlab(["replay", uri, trials[0]], new, env)
    assert any(f.startswith(f"replays/{trials[0]}-") for f in s3.files("searches/b1"))

    shutil.rmtree(new)
    newer = tmp_path / "newer-head"
    newer.mkdir()
    rnnlab(["tune", uri, "--resume", "--samples", "4"], newer, env)
    extended = check_bucket(s3, "b1", 4)
    assert set(trials) < set(extended)
    study = study_of(s3, "b1", tmp_path)
    assert len(study.trials) == 4
    old = {t.user_attrs["ray_trial_id"]: t for t in study.trials}
    metric = json.loads((newer / "searches" / "b1" / "search.json").read_text())["metric"]
    for trial in trials:  # the first two kept their history
        result = json.loads((newer / "searches" / "b1" / "trials" / trial / "result.json").read_text())
        assert old[trial].state.name == "COMPLETE"
        assert old[trial].value == pytest.approx(result[metric])
