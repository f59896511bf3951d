"""optuna-dashboard on a search's journal, checked in a real headless Chromium: the page lists the study's trials.

The study is written with Optuna directly into a journal (no Ray search needed); `rnnlab dashboard SEARCH_DIR` serves
it on 127.0.0.1. Needs optuna-dashboard (`.[dev]`) and Chromium (`scripts/install_system_deps.sh`); skipped without.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from rnnlab.search_folder import STUDY_NAME, SearchSpec, open_study_storage

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
TRIALS = 4

pytest.importorskip("optuna_dashboard", reason="optuna-dashboard is not installed: pip install -e '.[dev]'")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH: run scripts/install_system_deps.sh (apt chromium chromium-driver)"
)


def make_study(folder: Path) -> None:
    import optuna

    folder.mkdir(parents=True)
    SearchSpec(
        experiment=str(ROOT / "experiments" / "search_digits.py"),
        name="dash",
        storage=str(folder.parent),
        folder=str(folder),
        metric="val/acc",
        mode="max",
    ).save()
    study = optuna.create_study(study_name=STUDY_NAME, storage=open_study_storage(folder), direction="maximize")
    for number in range(TRIALS):
        trial = study.ask()
        learning_rate = trial.suggest_float("optim.learning_rate", 1e-3, 1e-1, log=True)
        trial.set_user_attr("ray_trial_id", f"trial{number}")
        study.tell(trial, 0.5 + 0.1 * number - learning_rate)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, timeout: float) -> None:
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            if time.time() > deadline:
                raise
        time.sleep(0.5)


def test_dashboard_lists_the_trials_of_the_search(tmp_path):
    folder = tmp_path / "dash"
    make_study(folder)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "rnnlab.cli", "dashboard", str(folder), "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{base}/api/studies", timeout=120)  # a shared 2-core machine can take a while to import it all
        cmd = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'chromium'}",
            "--virtual-time-budget=20000",
            "--dump-dom",
            f"{base}/dashboard/studies/0/trials",
        ]
        page = subprocess.run(cmd, capture_output=True, text=True, timeout=180).stdout
    finally:
        server.terminate()
        log = server.communicate(timeout=30)[0]
    assert "Optuna Dashboard" in page, log[-2000:]
    for number in range(TRIALS):  # the React app rendered the trial list from the journal
        assert f"Trial {number}" in page
    assert "optim.learning_rate" in page and "Complete" in page
    assert f"optuna-dashboard on {folder / 'optuna.journal'}" in log
