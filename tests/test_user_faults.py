"""A user's mistake or a fault of the machine gives a message naming the cause and the way out, never a raw
traceback: exit 2 for bad input, 1 for the environment; nothing left that blocks the next attempt."""

import json
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from rnnlab.cli import main
from rnnlab.config import ConfigError
from rnnlab.records import read_metrics

ROOT = Path(__file__).resolve().parent.parent
DIGITS = str(ROOT / "experiments" / "digits_lstm.py")
SHRINK = ["train.max_batches=2", "tracking.mode=disabled"]  # with train.epochs: each --set key is given once
EPOCHS_2 = [*SHRINK, "train.epochs=2"]


def test_out_naming_a_file(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    assert main(["run", DIGITS, "--out", str(target), "--set", *EPOCHS_2]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "is a file" in err and "Traceback" not in err
    assert target.read_text() == "x"


def test_a_model_too_large_for_memory(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", DIGITS, "--out", str(out), "--set", *EPOCHS_2, "model.hidden_size=200000"]) == 1
    err = capsys.readouterr().err
    assert "out of memory" in err and "model.hidden_size" in err
    assert not out.exists()  # neither a rerun nor --resume is blocked by a half-made folder
    assert main(["run", DIGITS, "--out", str(out), "--set", *EPOCHS_2]) == 0


def test_data_too_large_for_memory_names_the_data(tmp_path, capsys):
    """Generated data numpy cannot allocate: the hint named the model (model.hidden_size, ...), not the data."""
    adding = ["data.name=adding", "data.task=regression", "metric=val/loss", "mode=min", f"data.seq_len={10**11}"]
    assert main(["run", DIGITS, "--out", str(tmp_path / "run"), "--set", *EPOCHS_2, *adding]) == 1
    err = capsys.readouterr().err
    assert "out of memory" in err and "data.seq_len" in err and "model.hidden_size" not in err, err
    assert "Traceback" not in err and not (tmp_path / "run").exists()


@pytest.fixture
def tiny_disk(tmp_path):
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode()[:200]}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=True)


def test_a_full_disk(tiny_disk, tmp_path, capsys):
    out = tiny_disk / "run"
    code = main(["run", DIGITS, "--out", str(out), "--set", *EPOCHS_2])
    err = capsys.readouterr().err
    assert code == 1, err[-2000:]
    assert "No space left on device" in err and "free space" in err and "Traceback" not in err
    moved = tmp_path / "moved"  # the way out: space elsewhere; the same command there works
    shutil.rmtree(out, ignore_errors=True)
    assert main(["run", DIGITS, "--out", str(moved), "--set", *EPOCHS_2]) == 0


def test_torn_metrics_log(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", DIGITS, "--out", str(out), "--set", *EPOCHS_2]) == 0
    log = out / "metrics.jsonl"
    whole = log.read_text()
    log.write_text(whole + whole.splitlines()[0][:30])  # a kill in the middle of an append
    assert [r["epoch"] for r in read_metrics(log)] == [1, 2]
    code = main(["run", DIGITS, "--out", str(out), "--resume", "--set", *SHRINK, "train.epochs=3"])
    assert code == 0, capsys.readouterr().err[-2000:]
    assert [json.loads(line)["epoch"] for line in log.read_text().splitlines()] == [1, 2, 3]
    lines = log.read_text().splitlines()
    log.write_text("\n".join([lines[0], "{not json", *lines[1:]]) + "\n")  # corrupted inside: named, not guessed
    with pytest.raises(ConfigError, match="line 2"):
        read_metrics(log)


def make_search(tmp_path: Path) -> Path:
    """A search folder with a real Optuna journal of three trials (no Ray: report and replay read only files)."""
    import optuna

    from rnnlab.search_folder import STUDY_NAME, SearchSpec, open_study_storage

    folder = tmp_path / "s"
    folder.mkdir()
    SearchSpec(
        experiment=DIGITS, name="s", storage=str(tmp_path), folder=str(folder), metric="val/acc", mode="max"
    ).save()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # its handler would outlive this test's captured stderr
    study = optuna.create_study(study_name=STUDY_NAME, storage=open_study_storage(folder), direction="maximize")
    study.optimize(lambda t: t.suggest_float("optim.learning_rate", 1e-3, 1e-2), n_trials=3)
    return folder


@pytest.mark.parametrize("under", ["", "sub/report"])  # --out a file, or a folder below one (NotADirectoryError)
@pytest.mark.parametrize("command", ["report", "replay"])
def test_report_and_replay_out_naming_a_file(tmp_path, capsys, command, under):
    folder = make_search(tmp_path)
    target = tmp_path / "file"
    target.write_text("x")
    out = target / under if under else target
    argv = [command, str(folder), *(["abc"] if command == "replay" else []), "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"--out: {target} is a file" in err and "Traceback" not in err
    assert target.read_text() == "x"


def test_report_on_a_full_disk(tiny_disk, tmp_path, capsys):
    """A figure that could not be saved for lack of space was kept as drawn, and the page then failed to embed it
    with a FileNotFoundError traceback."""
    folder = make_search(tmp_path)
    assert main(["report", str(folder), "--out", str(tiny_disk / "report")]) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "choose another --out" in err and "Traceback" not in err, err
    assert main(["report", str(folder), "--out", str(tmp_path / "report")]) == 0  # with space, the same command


def test_dashboard_port_out_of_range(tmp_path, capsys):
    assert main(["dashboard", str(make_search(tmp_path)), "--port", "99999"]) == 2  # was bind()'s OverflowError
    err = capsys.readouterr().err
    assert "--port" in err and "1..65535" in err and "Traceback" not in err


def test_journal_corrupted_inside_is_named(tmp_path, capsys):
    folder = make_search(tmp_path)
    journal = folder / "optuna.journal"
    lines = journal.read_bytes().split(b"\n")
    lines[2] = lines[2][:10]  # a record damaged in the middle: no torn tail to set aside, nothing to guess
    journal.write_bytes(b"\n".join(lines))
    assert main(["report", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "optuna.journal is corrupted inside" in err and "restore" in err and "Traceback" not in err


@pytest.mark.parametrize("name, text", [("params.json", "{not json"), ("config.json", '{"nested": {}}')])
def test_replay_of_a_trial_whose_record_is_corrupted_is_refused(name, text, tmp_path, capsys):
    """A trial that failed before its config.json, its params.json corrupted (or a config.json without its flat
    config). Before: read as empty, replay ran the search's base config and reported "replay differs" (exit 1),
    blaming reproducibility; a config.json without "flat" was a KeyError traceback. Now: exit 2 naming the file."""
    from rnnlab.search_folder import SearchSpec

    folder = tmp_path / "s"
    SearchSpec(experiment=DIGITS, name="s", storage=str(tmp_path), folder=str(folder)).save()
    (folder / "trials" / "t1").mkdir(parents=True)
    (folder / "trials" / "t1" / name).write_text(text)
    out = tmp_path / "replay"
    assert main(["replay", str(folder), "t1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{folder / 'trials' / 't1' / name} is unreadable" in err and "Traceback" not in err, err[-2000:]
    assert not out.exists()


def test_out_naming_a_folder_of_other_files(tmp_path, capsys):
    """Before: "already holds a run; pass --resume", which then failed ("no checkpoints"). Now: says it holds no run."""
    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("x")
    assert main(["run", DIGITS, "--out", str(other), "--set", *EPOCHS_2]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "is not empty and holds no run" in err and "--resume" not in err, err[-2000:]
    assert [p.name for p in other.iterdir()] == ["todo.txt"]


def test_rnnlab_cache_naming_a_file(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "cache"
    blocker.write_text("x")
    monkeypatch.setenv("RNNLAB_CACHE", str(blocker))
    out = tmp_path / "run"
    assert main(["run", DIGITS, "--out", str(out), "--set", *EPOCHS_2]) == 2  # was a FileExistsError, data prepared
    err = capsys.readouterr().err
    assert "RNNLAB_CACHE" in err and "is a file" in err and "Traceback" not in err
    assert not out.exists() and blocker.read_text() == "x"


def test_device_cuda_without_cuda(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "run"
    assert main(["run", DIGITS, "--out", str(out), "--device", "cuda", "--set", *EPOCHS_2]) == 2
    err = capsys.readouterr().err  # was torch's AssertionError after config.json and the W&B run were written
    assert "train.device" in err and "valid: auto, cpu" in err and "Traceback" not in err
    assert not out.exists()
    assert main(["run", DIGITS, "--out", str(out), "--device", "cpu", "--set", *EPOCHS_2]) == 0


def test_ctrl_c_in_run_then_resume(tmp_path):
    """SIGINT mid-run: no traceback, exit 130, a hint that resumes (with the same --set), every epoch kept once."""
    import signal
    import sys
    import time

    out = tmp_path / "run"
    sets = ["train.epochs=15", "model.hidden_size=16", "tracking.mode=disabled"]
    argv = [sys.executable, "-m", "rnnlab", "run", DIGITS, "--out", str(out), "--set", *sets]
    child = subprocess.Popen(
        argv, stderr=subprocess.PIPE, text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)
    )
    deadline = time.time() + 60
    while time.time() < deadline and len(read_metrics(out / "metrics.jsonl")) < 2:  # a few epochs in, then Ctrl-C
        time.sleep(0.1)
    child.send_signal(signal.SIGINT)
    err = child.communicate(timeout=60)[1]
    assert child.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err[-2000:]
    hint = err.strip().splitlines()[-1].split("continue it with: ")[1]
    assert hint.startswith("rnnlab run ") and "model.hidden_size=16" in hint and hint.endswith("--resume")
    kept = len(read_metrics(out / "metrics.jsonl"))
    assert 2 <= kept < 15
    done = subprocess.run([sys.executable, "-m", *shlex.split(hint)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [row["epoch"] for row in read_metrics(out / "metrics.jsonl")] == list(range(1, 16))
    assert json.loads((out / "result.json").read_text())["status"] == "completed"


def trial_of_a_run(tmp_path: Path, epochs: int = 2) -> tuple[Path, Path]:
    """A search folder whose trial t1 is a real run's record (no Ray: replay reads only files)."""
    from rnnlab.search_folder import SearchSpec

    run = tmp_path / "run"
    assert main(["run", DIGITS, "--out", str(run), "--set", *SHRINK, f"train.epochs={epochs}"]) == 0
    folder = tmp_path / "s"
    SearchSpec(experiment=DIGITS, name="s", storage=str(tmp_path), folder=str(folder), metric="val/acc").save()
    shutil.copytree(run, folder / "trials" / "t1")
    return folder, folder / "trials" / "t1"


def test_replay_into_a_folder_that_holds_a_run_is_refused(tmp_path, capsys):
    """Before: the replay wrote its config, metrics and result over the run in --out (an earlier replay's, say)
    and reported success. Now: exit 2 before any work, every file of the folder as it was."""
    folder, trial = trial_of_a_run(tmp_path)
    held = tmp_path / "held"
    shutil.copytree(trial, held)
    before = {p.relative_to(held): p.read_bytes() for p in held.rglob("*") if p.is_file()}
    assert main(["replay", str(folder), "t1", "--out", str(held)]) == 2
    err = capsys.readouterr().err
    assert "--out" in err and "is not empty" in err and "Traceback" not in err, err[-2000:]
    assert {p.relative_to(held): p.read_bytes() for p in held.rglob("*") if p.is_file()} == before
    out = tmp_path / "replay"  # a new folder: the replay equals the trial, value for value
    assert main(["replay", str(folder), "t1", "--out", str(out)]) == 0
    untimed = lambda row: {k: v for k, v in row.items() if not k.startswith("time/")}  # noqa: E731
    assert [untimed(r) for r in read_metrics(out / "metrics.jsonl")] == [
        untimed(r) for r in read_metrics(trial / "metrics.jsonl")
    ]
    assert untimed(json.loads((out / "result.json").read_text())) == untimed(
        json.loads((trial / "result.json").read_text())
    )


def time_limit_reason() -> str:
    from rnnlab.tune.time_limit import TimeLimit

    return TimeLimit(4.0).reason  # the words a trial's time limit records


def orphan_reason() -> str:
    from rnnlab.search_folder import LOST_REASON

    return LOST_REASON


@pytest.mark.parametrize(
    "status,reason",
    [
        ("stopped", lambda: "stopped by the scheduler after epoch 1"),
        ("failed", time_limit_reason),
        ("failed", orphan_reason),
        ("failed", lambda: "the driver failed (SystemExit: 3); not finished"),
    ],
    ids=["scheduler", "time_limit", "orphan", "driver_failed"],
)
def test_replay_of_a_trial_stopped_early_stops_where_it_did(tmp_path, capsys, status, reason):
    """A trial ASHA stopped after epoch 1 of 3, or whose search.trial_time_limit_s ended it during epoch 2 (its
    record: epoch 1, status failed with the limit's reason), or that its driver's death or failure left after
    epoch 1 (an orphan). Before: the replay ran all 3 epochs (past the limit) and compared a longer run's final
    val/acc with the trial's epoch-1 value: "replay differs", exit 1, though every epoch matched (an orphan's
    replay ran on to a completed run the trial never was). Now: it stops after epoch 1 too, its record is the
    trial's (its status and reason)."""
    reason = reason()
    folder, trial = trial_of_a_run(tmp_path, epochs=3)
    rows = read_metrics(trial / "metrics.jsonl")[:1]
    (trial / "metrics.jsonl").write_text(json.dumps(rows[0]) + "\n")
    (trial / "result.json").write_text(json.dumps({**rows[0], "status": status, "reason": reason}))
    out = tmp_path / "replay"
    assert main(["replay", str(folder), "t1", "--out", str(out)]) == 0, capsys.readouterr().out[-2000:]
    assert "replay reproduces the recorded metrics" in capsys.readouterr().out
    assert [r["val/acc"] for r in read_metrics(out / "metrics.jsonl")] == [rows[0]["val/acc"]]
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == status and reason in result["reason"] and result["val/acc"] == rows[0]["val/acc"]


def test_replay_of_a_trial_its_time_limit_ended_before_any_epoch_stops_at_that_limit(tmp_path, capsys):
    """Its time limit (1 s) ended the trial during epoch 1 of 500, so it recorded no epoch. Before: the replay had
    no limit and trained all 500 epochs. Now: it stops at the trial's limit, recorded as the trial was."""
    folder, trial = trial_of_a_run(tmp_path, epochs=1)
    config = json.loads((trial / "config.json").read_text())
    config["flat"].update({"train.epochs": 500, "train.max_batches": 0, "search.trial_time_limit_s": 1.0})
    (trial / "config.json").write_text(json.dumps(config))
    (trial / "metrics.jsonl").write_text("")
    (trial / "result.json").write_text(json.dumps({"status": "failed", "reason": time_limit_reason()}))
    out = tmp_path / "replay"
    started = time.monotonic()
    assert main(["replay", str(folder), "t1", "--out", str(out)]) == 1  # nothing to compare
    assert time.monotonic() - started < 120, "the replay ran past the trial's time limit"
    assert "nothing to compare" in capsys.readouterr().out
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "failed" and "time limit" in result["reason"], result
    assert len(read_metrics(out / "metrics.jsonl")) < 500


def test_resume_of_a_run_whose_config_was_removed_names_the_way_out(tmp_path, capsys):
    """Before: --resume said "run without --resume", which then said "already holds a run; pass --resume"."""
    out = tmp_path / "run"
    assert main(["run", DIGITS, "--out", str(out), "--set", *EPOCHS_2]) == 0
    (out / "config.json").unlink()
    rows = (out / "metrics.jsonl").read_text()
    assert main(["run", DIGITS, "--out", str(out), "--resume", "--set", *SHRINK, "train.epochs=3"]) == 2
    err = capsys.readouterr().err
    assert "holds no config.json" in err and "another --out" in err and "without --resume" not in err, err[-2000:]
    assert (out / "metrics.jsonl").read_text() == rows


def slow_space_experiment(tmp_path: Path) -> tuple[Path, Path]:
    """A search experiment whose space, once sampled, touches a marker file and sleeps 120 s: a signal sent once the
    marker exists lands in the driver's checks before launch. (experiment file, marker)."""
    marker = tmp_path / "sampling"
    experiment = tmp_path / "slow_space.py"
    experiment.write_text(
        f"from rnnlab.experiment import extend\n\nconfig = extend({DIGITS!r})\n\n\n"
        "def search_space(trial):\n"
        f"    open({str(marker)!r}, 'w').close()\n"
        "    import time\n\n    time.sleep(120)\n"
        "    return {'model.hidden_size': trial.suggest_int('model.hidden_size', 4, 8)}\n"
    )
    return experiment, marker


def test_ctrl_c_in_tune_before_the_search_starts(tmp_path):
    """SIGINT while `rnnlab tune` checks its space (or prepares data) before launch. Before: a KeyboardInterrupt
    traceback and exit 1. Now: one line, exit 130, no search folder left behind."""
    import signal
    import sys
    import time

    experiment, marker = slow_space_experiment(tmp_path)
    argv = [sys.executable, "-m", "rnnlab", "tune", str(experiment), "--storage", str(tmp_path), "--name", "s"]
    child = subprocess.Popen(
        argv, stderr=subprocess.PIPE, text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)
    )
    deadline = time.time() + 60
    while time.time() < deadline and not marker.exists():
        time.sleep(0.1)
    child.send_signal(signal.SIGINT)
    err = child.communicate(timeout=60)[1]
    assert child.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "interrupted before the search started" in err, err[-2000:]
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("journal", [None, b""])  # a search whose driver has not yet (or never) created its study
@pytest.mark.parametrize("command", ["report", "replay"])
def test_report_and_replay_of_a_search_without_its_study_yet(tmp_path, capsys, command, journal):
    """Before: a KeyError traceback ("Record does not exist."), and the reader had created an empty optuna.journal
    in the search's folder (replay listed "valid: " and nothing). Now: exit 2 saying the search holds no study or no
    trial yet, the folder as it was."""
    from rnnlab.search_folder import SearchSpec

    folder = tmp_path / "s"
    SearchSpec(experiment=DIGITS, name="s", storage=str(tmp_path), folder=str(folder)).save()
    if journal is not None:
        (folder / "optuna.journal").write_bytes(journal)
    before = sorted(p.name for p in folder.iterdir())
    argv = [command, str(folder), *(["abc"] if command == "replay" else []), "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    said = "holds no Optuna study yet" if command == "report" else "holds no trial yet"
    assert said in err and "Traceback" not in err, err[-2000:]
    assert sorted(p.name for p in folder.iterdir()) == before and not (tmp_path / "out").exists()


@pytest.mark.parametrize("flag", ["--host", "--port"])
def test_dashboard_that_cannot_listen(tmp_path, capsys, flag):
    """Before: a socket.gaierror (an unknown --host) or an OSError (a --port in use) traceback. Now: exit 2 naming
    the flag."""
    import socket

    folder = make_search(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        host = "no-such-host.invalid" if flag == "--host" else "127.0.0.1"
        assert main(["dashboard", str(folder), "--host", host, "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"{flag}:" in err and "Traceback" not in err, err[-2000:]


@pytest.mark.parametrize("command", ["tune", "preflight"])
def test_an_address_where_no_ray_answers(tmp_path, capsys, command):
    """Before: ray.init retried for minutes, printing Ray's own connection warnings. Now: exit 2 naming --address
    within seconds, Ray not started, no search folder."""
    import time

    import ray
    from ports import free_ports

    [port] = free_ports(1)  # nothing listens there
    argv = [command, "search_digits", "--address", f"127.0.0.1:{port}", "--storage", str(tmp_path)]
    t0 = time.time()
    assert main([*argv, *(["--name", "s"] if command == "tune" else [])]) == 2
    err = capsys.readouterr().err
    assert "--address: nothing answers at 127.0.0.1:" in err and "Traceback" not in err, err[-2000:]
    assert time.time() - t0 < 30 and not ray.is_initialized() and not (tmp_path / "s").exists()


def test_report_of_a_search_whose_trials_all_failed(tmp_path, capsys):
    """Before: Optuna's own warnings ("[W ...] There are no complete trials.", three of them) on stderr and empty
    plots. Now: the report says once per plot that no trial completed, and stderr holds no library warning."""
    import optuna

    from rnnlab.search_folder import STUDY_NAME, SearchSpec, open_study_storage

    folder = tmp_path / "s"
    folder.mkdir()
    SearchSpec(experiment=DIGITS, name="s", storage=str(tmp_path), folder=str(folder), metric="val/acc").save()
    study = optuna.create_study(study_name=STUDY_NAME, storage=open_study_storage(folder), direction="maximize")
    for _ in range(2):
        trial = study.ask({"optim.learning_rate": optuna.distributions.FloatDistribution(1e-3, 1e-2)})
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    assert main(["report", str(folder)]) == 0
    err = capsys.readouterr().err
    assert "[W " not in err and "complete" not in err, err[-2000:]
    summary = (folder / "report" / "report.md").read_text()
    assert "not drawn (no trial completed)" in summary and not list((folder / "report").glob("optimization_history*"))
