"""A search whose --storage is a URI lives whole in the bucket (rnnlab/storage.py), against a real S3 server
(SeaweedFS on 127.0.0.1, tests/s3server.py): the trials' records and W&B runs, the journal, search.json and the
report reach it, and a machine that never held the search reports, replays and extends it from the bucket alone."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from s3server import seaweedfs

from rnnlab.storage import join, redact

REPO = Path(__file__).resolve().parent.parent
SHRUNK = [
    "--concurrency",
    "2",
    "--set",
    "train.epochs=2",
    "train.max_batches=2",
    "data.num_samples=200",
    "search.scheduler=none",
]


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


def test_a_trial_folder_upload_sends_only_what_changed(s3, monkeypatch, tmp_path):
    from rnnlab.storage import FolderUpload

    for key, value in s3.env.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "model.pt").write_bytes(b"weights" * 1000)
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1}\n')
    upload = FolderUpload(tmp_path, s3.uri("upload/t1"))
    upload()
    assert s3.files("upload/t1") == ["ckpt/model.pt", "metrics.jsonl"]
    s3.filesystem().delete_file(f"{s3.bucket}/upload/t1/ckpt/model.pt")  # an unchanged file is not sent again
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 2}\n')
    upload()
    assert s3.files("upload/t1") == ["metrics.jsonl"]
    with s3.filesystem().open_input_stream(f"{s3.bucket}/upload/t1/metrics.jsonl") as f:
        assert f.read().decode().splitlines() == ['{"epoch": 1}', '{"epoch": 2}']


def test_a_new_search_never_overwrites_one_in_the_bucket(s3, monkeypatch, tmp_path, capsys):
    from rnnlab.cli import main

    for key, value in s3.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    with s3.filesystem().open_output_stream(f"{s3.bucket}/searches/taken/search.json") as f:
        f.write(b'{"name": "taken"}')
    code = main(["tune", "search_digits", "--storage", s3.uri("searches"), "--name", "taken", "--samples", "1"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--name" in err and "already holds a search" in err and s3.env["AWS_SECRET_ACCESS_KEY"] not in err, err
    assert s3.files("searches/taken") == ["search.json"]  # untouched
    assert not (tmp_path / "searches" / "taken" / "search.json").exists()


def rnnlab(args: list[str], cwd: Path, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, "-m", "rnnlab", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
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
    fs = s3.filesystem()
    for path in s3.files("searches/b1"):  # Ray's state included: no key of the bucket in anything it holds
        with fs.open_input_stream(f"{s3.bucket}/searches/b1/{path}") as f:
            data = f.read()
        assert (
            s3.env["AWS_SECRET_ACCESS_KEY"].encode() not in data and s3.env["AWS_ACCESS_KEY_ID"].encode() not in data
        ), path

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


# --- across machines: each worker node in its own mount namespace, one removed mid-search ----------------------


def start_node(command: list[str], env: dict, log: Path, private: list[Path] = (), cwd=None) -> subprocess.Popen:
    """A Ray node; with `private` folders, in its own mount namespace with a fresh tmpfs over /tmp and over each
    of them, so it sees no other node's files (and the tmpfs is discarded when its processes die)."""
    if private:
        mounts = [f"mkdir -p {p} && mount -t tmpfs tmpfs {p}" for p in ["/tmp", *map(str, private)]]
        if REPO.is_relative_to("/tmp"):  # a clone under /tmp (as CI's may be): the node keeps its copy of the code,
            # as a real node has one, by a bind through /mnt (in this namespace only) around the tmpfs over /tmp
            mounts = [f"mount --bind {REPO} /mnt", *mounts, f"mkdir -p {REPO} && mount --bind /mnt {REPO}"]
        command = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            f"{' && '.join(mounts)} && exec {' '.join(command)}",
        ]
    with open(log, "w") as f:
        return subprocess.Popen(command, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True, cwd=cwd)


def kill_session(sid: int) -> None:
    """SIGKILL every process of the session `sid` (a node started with start_new_session): only ours."""
    import signal
    import time

    for _ in range(20):
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.getsid(int(entry.name)) == sid:
                        pids.append(int(entry.name))
                except OSError:
                    continue
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                continue
        time.sleep(0.5)


def node_files(pid: int, folder: Path) -> dict[str, int]:
    """The files under `folder` as the node of `pid` sees them (its mount namespace, through /proc), with sizes."""
    root = Path(f"/proc/{pid}/root{folder}")
    return {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_search_survives_a_node_removed_and_lives_in_the_bucket(s3, tmp_path, monkeypatch):
    import time

    from ports import free_ports

    for key, value in s3.env.items():
        monkeypatch.setenv(key, value)
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs unshare and root for a mount namespace per node")
    env = search_env(s3, tmp_path)
    env.update(RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    head_dir = tmp_path / "head"
    head_dir.mkdir()
    temp = Path(tempfile.mkdtemp(prefix="rnnlab-ray-"))
    gcs, dash, agent, metrics, runtime = free_ports(5)
    ray = shutil.which("ray")
    common = ["--block", "--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    head = [
        ray,
        "start",
        "--head",
        *common,
        "--num-cpus=0",
        f"--port={gcs}",
        "--include-dashboard=false",
        f"--dashboard-agent-listen-port={agent}",
        f"--metrics-export-port={metrics}",
        f"--runtime-env-agent-port={runtime}",
        f"--temp-dir={temp}",
    ]
    nodes = [start_node(head, env, temp / "head.log")]
    time.sleep(8)
    for i in range(2):
        agent, metrics, runtime, manager, obj = free_ports(5)
        worker = [
            ray,
            "start",
            *common,
            f"--address=127.0.0.1:{gcs}",
            "--num-cpus=1",
            f"--dashboard-agent-listen-port={agent}",
            f"--metrics-export-port={metrics}",
            f"--runtime-env-agent-port={runtime}",
            f"--node-manager-port={manager}",
            f"--object-manager-port={obj}",
            f"--temp-dir=/tmp/ray-node{i}",
        ]
        nodes.append(start_node(worker, env, temp / f"node{i}.log", private=[tmp_path]))
    name, samples = "multi", 6
    search = head_dir / "searches" / name
    driver = nodes[0]
    try:
        time.sleep(10)
        driver = start_node(
            [
                sys.executable,
                "-m",
                "rnnlab",
                "tune",
                "search_digits",
                "--samples",
                str(samples),
                *[item for item in SHRUNK if not item.startswith("train.epochs=")],  # each --set key once
                "--set",
                "train.epochs=3",
                "search.cpus_per_trial=1",
                "--address",
                f"127.0.0.1:{gcs}",
                "--storage",
                s3.uri("searches"),
                "--name",
                name,
            ],
            env,
            temp / "driver.log",
            cwd=head_dir,
        )
        deadline = time.time() + 600
        while not any(f.endswith("metrics.jsonl") for f in s3.files(f"searches/{name}")):
            assert driver.poll() is None and time.time() < deadline, (temp / "driver.log").read_text()[-5000:]
            time.sleep(1)
        kill_session(nodes[1].pid)  # node 0 goes away mid-search, its private tmpfs with it
        assert driver.wait(timeout=900) == 0, (temp / "driver.log").read_text()[-5000:]
        retried = [line for line in (temp / "driver.log").read_text().splitlines() if "retrying" in line]
        print(f"after the node's removal: {len(retried)} trial(s) retried on the other node")
        trials = check_bucket(s3, name, samples)
        study = study_of(s3, name, tmp_path)
        assert len(study.trials) == samples
        assert sorted(t.user_attrs["ray_trial_id"] for t in study.trials) == trials
        assert all(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials), [t.state for t in study.trials]
        bucket = {f: None for f in s3.files(f"searches/{name}")}
        left = node_files(nodes[2].pid, search)  # what the surviving worker node holds of the search
        assert left, "the surviving node ran no trial"
        only_there = [f for f in left if f not in bucket and not f.endswith(".lock")]
        assert only_there == [], only_there
    finally:
        for proc in [driver, *reversed(nodes)]:
            kill_session(proc.pid)
        shutil.rmtree(temp, ignore_errors=True)

    shutil.rmtree(head_dir)  # the old head's disk is gone; a new folder and a new (local) Ray
    new = tmp_path / "new"
    new.mkdir()
    uri = s3.uri(f"searches/{name}")
    rnnlab(["report", uri], new, env)
    assert (new / "searches" / name / "report" / "report.html").is_file()
    rnnlab(["replay", uri, trials[0]], new, env)
    rnnlab(["tune", uri, "--resume", "--samples", str(samples + 2)], new, env)
    assert len(check_bucket(s3, name, samples + 2)) == samples + 2
    assert len(study_of(s3, name, tmp_path).trials) == samples + 2
