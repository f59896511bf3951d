"""Secrets stay out of every file a run or a search writes; the local Ray binds to loopback with token auth on."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SEARCH_DIGITS = str(ROOT / "experiments" / "search_digits.py")
SHRINK = ["train.epochs=2", "train.max_batches=3", "search.scheduler=none", "tracking.log_checkpoints=true"]


def files_holding(folder: Path, needles: list[bytes]) -> list[str]:
    """Every file under `folder` (binary too) that contains one of `needles`."""
    return [str(p) for p in folder.rglob("*") if p.is_file() and any(n in p.read_bytes() for n in needles)]


@pytest.mark.slow
def test_planted_secrets_reach_no_file_and_ray_is_local_with_token_auth(tmp_path):
    """A search with Ray's token authentication on, in a fresh process (Ray reads its auth mode at import), and a
    run: neither the planted W&B key, the Ray token nor the cloud keys reach any file they write, Ray's own logs
    (Ray Tune used to copy AWS_* into each trial's runtime env, which Ray's runtime env agent logs), nor their
    output."""
    wandb_key, ray_token = secrets.token_hex(20), secrets.token_hex(32)
    cloud = {name: secrets.token_hex(16) for name in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")}
    needles = [wandb_key.encode(), ray_token.encode(), *(v.encode() for v in cloud.values())]
    ray_tmp = Path(tempfile.mkdtemp(prefix="rt-", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    env = {
        **os.environ,
        "WANDB_API_KEY": wandb_key,
        "WANDB_MODE": "offline",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": ray_token,
        "RAY_TMPDIR": str(ray_tmp),
        **cloud,
    }
    search = [
        sys.executable,
        "-m",
        "rnnlab.cli",
        "tune",
        SEARCH_DIGITS,
        "--storage",
        str(tmp_path / "searches"),
        "--name",
        "s",
        "--samples",
        "2",
        "--set",
        *SHRINK,
    ]
    run = [sys.executable, "-m", "rnnlab.cli", "run", SEARCH_DIGITS, "--out", str(tmp_path / "run"), "--set", *SHRINK]
    try:
        searched = subprocess.run(search, env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
        assert searched.returncode == 0, "a search runs with token authentication on:\n" + searched.stdout[-3000:]
        sessions = list(ray_tmp.rglob("session_*/logs"))
        assert sessions, "the search started its own local Ray with token auth"
        dashboard = [line for f in ray_tmp.rglob("dashboard*.log") for line in f.read_text().splitlines()]
        assert not any("0.0.0.0" in line for line in dashboard), "the dashboard binds to loopback only"
        assert [f for f in sessions for f in files_holding(f, needles)] == [], "a secret is in Ray's logs"
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    ran = subprocess.run(run, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stderr[-3000:]
    written = [tmp_path / "searches", tmp_path / "run"]
    assert sum(1 for folder in written for p in folder.rglob("*") if p.is_file()) > 20
    leaks = [f for folder in written for f in files_holding(folder, needles)]
    assert leaks == [], f"secrets written to {leaks}"
    for output in (searched.stdout, searched.stderr, ran.stdout, ran.stderr):
        assert not any(n.decode() in output for n in needles), "a secret was printed"
