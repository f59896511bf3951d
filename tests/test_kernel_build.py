"""The IndRNN kernel's build under faults from outside: a build killed midway, a lock held by another process, a
venv whose bin/ (and so `ninja`) is not on PATH. Each case runs fresh processes on an empty extension dir."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rnnlab.models import indrnn_kernel

# Train two steps of a small IndRNN with logging on stderr; print which recurrence ran.
TRAIN = (
    "import logging, torch; logging.basicConfig(format='%(message)s'); "
    "from rnnlab.models import indrnn_kernel; from rnnlab.models.indrnn import IndRNN; "
    "from rnnlab.models import model_config; "
    "model = IndRNN(model_config('indrnn', hidden_size=4), 2); x = torch.randn(3, 5, 2); "
    "[model(x, torch.full((3,), 5))[0].sum().backward() for _ in range(2)]; "
    "print('kernel:', 'cpp' if indrnn_kernel._module is not None else 'python')"
)
BUILD = "from rnnlab.models import indrnn_kernel; indrnn_kernel.load()"


def fresh_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path / "ext"), **extra}
    env.pop("RNNLAB_INDRNN_KERNEL", None)
    return env


def kernel_folder(env: dict[str, str], monkeypatch) -> Path:
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", env["TORCH_EXTENSIONS_DIR"])
    return indrnn_kernel.build_directory()


def indrnn_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "IndRNN" in line and "recurrence runs" in line]


@pytest.mark.slow
def test_a_build_killed_midway_then_a_new_process_builds_it_in_bounded_time(tmp_path, monkeypatch):
    """SIGKILL a process in the middle of the first build: torch's lock file stays behind (its loader would wait
    on it forever). The next process builds the kernel (or falls back, saying why) within a bounded time, with a
    PATH that holds no `ninja`: the one of the installed package is found."""
    env = fresh_env(tmp_path, PATH="/usr/bin:/bin")
    torch_lock = kernel_folder(env, monkeypatch) / "lock"
    first = subprocess.Popen([sys.executable, "-c", BUILD], env=env)
    deadline = time.monotonic() + 120
    while not torch_lock.exists():  # torch's loader creates it when the compilation starts
        assert first.poll() is None, "the first build ended before it could be killed"
        assert time.monotonic() < deadline, "the first build never started"
        time.sleep(0.05)
    time.sleep(1.0)  # the compiler is running
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert torch_lock.exists(), "the killed build left no lock: the fault this test is about did not happen"

    start = time.monotonic()
    second = subprocess.run([sys.executable, "-c", TRAIN], env=env, capture_output=True, text=True, timeout=300)
    elapsed = time.monotonic() - start
    assert second.returncode == 0, second.stderr
    ran = second.stdout.split("kernel:")[-1].strip()
    lines = indrnn_lines(second.stderr)
    print(f"\n[kernel build after a kill] {ran} in {elapsed:.1f} s; {lines}")
    if ran == "cpp":
        assert lines == [], second.stderr
    else:  # no compiler on this machine: one line, naming why
        assert len(lines) == 1 and "could not be built: " in lines[0], second.stderr
        return
    # What the search driver does before its trials start (prepare_kernel); a later process finds it built
    code = "import time; t = time.time(); from rnnlab.models.indrnn import prepare_kernel; "
    code += "print(prepare_kernel(), time.time() - t)"
    third = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    ready, seconds = third.stdout.split()
    assert ready == "True" and not indrnn_lines(third.stderr), third.stderr
    print(f"[kernel] found built by a later process in {float(seconds):.1f} s (imports included)")


def test_a_build_lock_held_by_another_process_times_out_to_python_with_one_line(tmp_path, monkeypatch):
    """Another live process holds the build lock (a build that takes too long): after RNNLAB_INDRNN_BUILD_TIMEOUT
    seconds the trial trains on the Python loop and says why in one line."""
    env = fresh_env(tmp_path, RNNLAB_INDRNN_BUILD_TIMEOUT="2")
    folder = kernel_folder(env, monkeypatch)
    folder.parent.mkdir(parents=True)
    lock = folder.with_name(folder.name + ".lock")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import fcntl, time; f = open({str(lock)!r}, 'a'); fcntl.flock(f, fcntl.LOCK_EX); "
            "print('held', flush=True); time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        start = time.monotonic()
        done = subprocess.run([sys.executable, "-c", TRAIN], env=env, capture_output=True, text=True, timeout=120)
        elapsed = time.monotonic() - start
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("kernel:")[-1].strip() == "python"
    lines = indrnn_lines(done.stderr)
    assert len(lines) == 1, done.stderr
    assert "could not be built: TimeoutError: another process has been building it for over 2 s" in lines[0]
    assert "RNNLAB_INDRNN_BUILD_TIMEOUT" in lines[0]
    assert elapsed < 60, f"waited {elapsed:.0f} s for a 2 s timeout"


def test_ninja_is_found_from_the_installed_package_when_not_on_path(tmp_path, monkeypatch):
    """With a PATH that holds no ninja, the binary of the installed `ninja` package is put on PATH for the build
    only, and PATH is restored after."""
    monkeypatch.setenv("PATH", str(tmp_path))
    found = indrnn_kernel.ninja_dir()
    assert found is not None
    binary = Path(found, "ninja")
    assert binary.is_file() and binary.stat().st_mode & stat.S_IXUSR
    with indrnn_kernel.ninja_on_path():
        assert os.environ["PATH"].split(os.pathsep)[0] == found
        assert subprocess.run(["ninja", "--version"], capture_output=True, text=True).returncode == 0
    assert os.environ["PATH"] == str(tmp_path)


def test_a_bad_build_timeout_is_named(monkeypatch):
    monkeypatch.setenv("RNNLAB_INDRNN_BUILD_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="RNNLAB_INDRNN_BUILD_TIMEOUT='soon': expected a number of seconds"):
        indrnn_kernel.build_timeout()


@pytest.mark.slow
def test_a_search_builds_the_kernel_in_its_driver_before_its_trials_start(tmp_path, monkeypatch):
    """`rnnlab tune` over IndRNN on an empty extension dir: the driver builds the kernel before Ray starts the
    trials, so they find it built (its binary is older than every trial's config.json) and none falls back."""
    base = Path(__file__).resolve().parents[1] / "experiments" / "indrnn_adding.py"
    experiment = tmp_path / "indrnn_search.py"
    experiment.write_text(
        "from rnnlab.experiment import extend\n"
        f"config = extend({str(base)!r}, {{'data.num_samples': 200, 'train.epochs': 1, 'train.max_batches': 2}})\n"
        "def search_space(trial):\n"
        "    return {'optim.learning_rate': trial.suggest_float('optim.learning_rate', 1e-3, 1e-2, log=True)}\n"
    )
    env = fresh_env(tmp_path, WANDB_MODE="disabled")
    folder = kernel_folder(env, monkeypatch)
    cmd = [
        sys.executable,
        "-m",
        "rnnlab.cli",
        "tune",
        str(experiment),
        "--storage",
        str(tmp_path / "searches"),
        "--name",
        "k",
        "--samples",
        "2",
        "--set",
        "search.scheduler=none",
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    built = sorted(folder.glob("*.so"))
    assert built, f"no kernel in {folder}"
    trials = sorted((tmp_path / "searches" / "k" / "trials").iterdir())
    assert len(trials) == 2
    assert all(json.loads((t / "result.json").read_text())["status"] == "completed" for t in trials)
    started = min((t / "config.json").stat().st_mtime for t in trials)  # written as a trial starts, before training
    assert max(so.stat().st_mtime for so in built) < started
    assert "Python recurrence runs" not in done.stdout + done.stderr
