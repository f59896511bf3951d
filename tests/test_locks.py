"""One holder per run folder and per search folder: a second process is refused (exit 2, holder named), a lock left
by a dead process is taken over, a start that fails leaves no folder behind."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rnnlab.cli import main
from rnnlab.folder_lock import LOCK_FILE, read_holder

ROOT = Path(__file__).resolve().parent.parent
DIGITS = str(ROOT / "experiments" / "digits_lstm.py")
SEARCH_DIGITS = str(ROOT / "experiments" / "search_digits.py")
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled"}
HOLD = (
    "import sys, time; from rnnlab.folder_lock import FolderLock; FolderLock(sys.argv[1], '--out').acquire(); "
    "print('held', flush=True); time.sleep(600)"
)


def hold_from_another_process(folder: Path) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], env=ENV, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def wait_for(predicate, timeout: float = 120.0) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "timed out"
        time.sleep(0.2)


def test_second_run_is_refused_naming_the_holder(tmp_path, capsys):
    out = tmp_path / "run"
    holder = hold_from_another_process(out)
    try:
        assert main(["run", DIGITS, "--out", str(out), "--set", "train.epochs=1"]) == 2
        err = capsys.readouterr().err
        assert f"pid {holder.pid} on {socket.gethostname()}" in err and "--out" in err
        assert os.listdir(out) == [LOCK_FILE]  # nothing written beside the holder's lock
    finally:
        holder.kill()
        holder.wait()


def test_lock_of_a_dead_process_is_taken_over(tmp_path, capsys):
    out = tmp_path / "run"
    holder = hold_from_another_process(out)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert read_holder(out)["pid"] == holder.pid  # its name is still there; its flock died with it
    code = main(["run", DIGITS, "--out", str(out), "--set", "train.epochs=1", "train.max_batches=2"])
    assert code == 0, capsys.readouterr().err
    assert read_holder(out)["pid"] == os.getpid()
    assert (out / "result.json").is_file()


def test_failed_start_leaves_no_folder(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", DIGITS, "--out", str(out), "--set", "data.name=nosuch"]) == 2
    assert not out.exists()  # the same command, fixed, is not refused as "already holds a run"


@pytest.mark.slow
def test_concurrent_runs_on_one_folder(tmp_path):
    """Two `rnnlab run --out X` at once, data not cached yet: one runs, the other is refused; epochs are whole."""
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "rnnlab.cli",
        "run",
        DIGITS,
        "--out",
        str(out),
        "--set",
        "train.epochs=12",  # long enough to outlast the second's start-up
        "train.batch_size=16",
    ]
    first = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: read_holder(out).get("pid") == first.pid)
    second = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=120)
    assert second.returncode == 2 and f"pid {first.pid}" in second.stderr
    assert "Traceback" not in second.stderr
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-2000:]
    epochs = [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == list(range(1, 13))


@pytest.mark.slow
def test_second_driver_on_a_search_is_refused(tmp_path):
    """While a search runs, `--resume` of it and a new search of the same name are refused; it ends whole."""
    cmd = [
        sys.executable,
        "-m",
        "rnnlab.cli",
        "tune",
        SEARCH_DIGITS,
        "--storage",
        str(tmp_path),
        "--name",
        "s",
        "--samples",
        "2",
        "--set",
        "train.epochs=2",
        "train.max_batches=3",
        "search.scheduler=none",
    ]
    first = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    folder = tmp_path / "s"
    wait_for(lambda: read_holder(folder).get("pid") == first.pid and (folder / "search.json").is_file())
    for again in ([sys.executable, "-m", "rnnlab.cli", "tune", str(folder), "--resume", "--samples", "4"], cmd):
        refused = subprocess.run(again, env=ENV, capture_output=True, text=True, timeout=120)
        assert refused.returncode == 2 and f"pid {first.pid}" in refused.stderr, refused.stderr[-2000:]
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-2000:]
    from rnnlab.search_folder import SearchSpec, load_study

    assert SearchSpec.load(folder).ray_runs == ["ray"]
    trials = load_study(folder).trials
    assert len(trials) == 2 and all(t.state.name == "COMPLETE" for t in trials)


def test_runs_started_in_one_second_each_get_a_default_folder(tmp_path):
    """`for lr in ...; do rnnlab run EXP --set ... & done`: runs without --out started in the same second shared the
    default folder runs/NAME-TIMESTAMP, and all but one were refused ("in use", or "already holds a run"). Now
    each takes the next free one (NAME-TIMESTAMP-2, -3, ...); a run found there is left as it was."""
    esn = str(ROOT / "experiments" / "esn_mackey_glass.py")
    start = time.time()
    stamps = [time.strftime("%Y%m%d-%H%M%S", time.localtime(start + s)) for s in range(60)]
    for stamp in stamps:  # the default folder of each of the next 60 s holds a run already
        Path(tmp_path, "runs", f"esn_mackey_glass-{stamp}").mkdir(parents=True)
        Path(tmp_path, "runs", f"esn_mackey_glass-{stamp}", "config.json").write_text("{}")
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "rnnlab", "run", esn, "--set", f"model.esn.leak_rate={rate}"],
            cwd=tmp_path,
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rate in (0.3, 0.5, 0.7)
    ]
    errors = [run.communicate(timeout=300)[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], errors
    assert time.time() - start < 60, "the runs outlived the folders made for them"
    made = sorted(p for p in Path(tmp_path, "runs").iterdir() if (p / "result.json").exists())
    assert len(made) == 3 and all(p.name.rsplit("-", 1)[-1] in ("2", "3", "4") for p in made), made
    rates = {json.loads((p / "config.json").read_text())["flat"]["model.esn.leak_rate"] for p in made}
    assert rates == {0.3, 0.5, 0.7}
    assert all(Path(tmp_path, "runs", f"esn_mackey_glass-{s}", "config.json").read_text() == "{}" for s in stamps)
