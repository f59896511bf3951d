"""Secrets stay out of every file a run or a search writes; the local Ray binds to loopback with token auth on."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from pathlib import Path

import pytest

from rnnlab.cli import main

ROOT = Path(__file__).resolve().parent.parent
SEARCH_DIGITS = str(ROOT / "experiments" / "search_digits.py")
SHRINK = ["train.epochs=2", "train.max_batches=3", "search.scheduler=none", "tracking.log_checkpoints=true"]


def files_holding(folder: Path, needles: list[bytes]) -> list[str]:
    """Every file under `folder` (binary too) that contains one of `needles`."""
    return [str(p) for p in folder.rglob("*") if p.is_file() and any(n in p.read_bytes() for n in needles)]


@pytest.mark.slow
def test_planted_secrets_reach_no_file_and_ray_is_local_with_token_auth(tmp_path, monkeypatch):
    import ray

    from rnnlab.tune import connect

    wandb_key, ray_token = secrets.token_hex(20), secrets.token_hex(32)
    monkeypatch.setenv("WANDB_API_KEY", wandb_key)
    monkeypatch.setenv("RAY_AUTH_MODE", "token")  # Ray 2.60's token authentication, as the cluster configs use
    monkeypatch.setenv("RAY_AUTH_TOKEN", ray_token)
    monkeypatch.setenv("WANDB_MODE", "offline")
    ray_tmp = Path(tempfile.mkdtemp(prefix="rt-", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    monkeypatch.setenv("RAY_TMPDIR", str(ray_tmp))
    if ray.is_initialized():
        ray.shutdown()
    connect(None)
    try:
        webui = ray._private.worker._global_node.address_info.get("webui_url")
        assert not webui or webui.startswith("127.0.0.1"), f"dashboard reachable beyond loopback: {webui}"
        code = main(["tune", SEARCH_DIGITS, "--storage", str(tmp_path / "searches"), "--name", "s", "--samples", "2",
                     "--set", *SHRINK])  # fmt: skip
        assert code == 0, "a search runs with token authentication on"
    finally:
        ray.shutdown()
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert main(["run", SEARCH_DIGITS, "--out", str(tmp_path / "run"), "--set", *SHRINK]) == 0
    written = [tmp_path / "searches", tmp_path / "run"]
    assert sum(1 for folder in written for p in folder.rglob("*") if p.is_file()) > 20
    needles = [wandb_key.encode(), ray_token.encode()]
    leaks = [f for folder in written for f in files_holding(folder, needles)]
    assert leaks == [], f"secrets written to {leaks}"
    assert os.environ["RAY_AUTH_TOKEN"] == ray_token  # the test planted what it grepped for
