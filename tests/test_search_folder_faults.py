"""A search folder under faults: a torn journal tail is read, set aside and never appended to; a copied folder is a
search of its own; extending a search draws configurations it does not hold yet."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rnnlab.search_folder import JOURNAL_FILE, SearchSpec, load_study

ROOT = Path(__file__).resolve().parent.parent
SEARCH_DIGITS = str(ROOT / "experiments" / "search_digits.py")
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled"}


def rnnlab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rnnlab.cli", *args], env=ENV, capture_output=True, text=True, timeout=900
    )


def configs(folder: Path) -> list[str]:
    return [json.dumps(t.params, sort_keys=True) for t in load_study(folder).trials]


@pytest.mark.slow
def test_torn_journal_copy_and_extension(tmp_path):
    shrink = ["train.epochs=1", "train.max_batches=2", "search.sampler=random", "search.scheduler=none"]
    done = rnnlab("tune", SEARCH_DIGITS, "--storage", str(tmp_path), "--name", "s", "--samples", "2", "--set", *shrink)
    assert done.returncode == 0, done.stderr[-2000:]
    original = tmp_path / "s"
    first = configs(original)

    copy = tmp_path / "copy"  # a copied search extends itself, never the original
    shutil.copytree(original, copy, ignore=shutil.ignore_patterns(".rnnlab.lock"))
    journal_before = (original / JOURNAL_FILE).read_bytes()
    extended = rnnlab("tune", str(copy), "--resume", "--samples", "4")
    assert extended.returncode == 0, extended.stderr[-2000:]
    assert (original / JOURNAL_FILE).read_bytes() == journal_before
    assert SearchSpec.load(copy).folder == str(copy.resolve())
    assert len({p.parent.name for p in copy.glob("trials/*/result.json")}) == 4
    assert not (original / "ray-2").exists()
    later = configs(copy)
    assert len(later) == 4 and later[:2] == first
    assert not set(later[2:]) & set(first)  # the extension drew new configurations, not the first launch's again

    journal = copy / JOURNAL_FILE  # a kill mid-append: the last record torn
    os.truncate(journal, journal.stat().st_size - 25)
    assert len(load_study(copy).trials) == 4  # readers (report, dashboard, replay) still read it
    report = rnnlab("report", str(copy))
    assert report.returncode == 0, report.stderr[-2000:]
    resumed = rnnlab("tune", str(copy), "--resume", "--samples", "5")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "torn record" in resumed.stderr
    assert list(copy.glob(f"{JOURNAL_FILE}.torn-*"))
    lines = journal.read_bytes().split(b"\n")
    assert lines[-1] == b"" and all(json.loads(line) for line in lines[:-1])  # every record whole
    assert len(load_study(copy).trials) == 5


def test_a_torn_tail_is_set_aside_only_under_the_journals_lock(tmp_path):
    """Another Optuna process (a notebook's study.enqueue_trial, optuna-dashboard) appending to the journal while a
    resume starts: its record half written, the journal's lock held. Before: the resume cut the half off as a torn
    tail without waiting for the lock, the writer then wrote the rest, and the journal held a line that was no
    record (its trial lost, the next append 'corrupted inside'). Now the resume waits for the lock; the record is
    whole and nothing is set aside."""
    import threading
    import time

    import optuna
    from optuna.storages.journal import JournalFileSymlinkLock

    from rnnlab.search_folder import STUDY_NAME, open_study_storage, set_aside_torn_tail

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=STUDY_NAME, storage=open_study_storage(tmp_path))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    journal = tmp_path / JOURNAL_FILE
    record = json.dumps({"op_code": 2, "worker_id": "other", "study_id": 0, "user_attr": {"note": "x" * 200}})
    lock = JournalFileSymlinkLock(str(journal))  # the other writer, mid-append
    lock.acquire()
    with open(journal, "ab") as f:
        f.write(record[:100].encode())
    setting_aside = threading.Thread(target=set_aside_torn_tail, args=(tmp_path,))
    setting_aside.start()
    time.sleep(1.0)
    with open(journal, "ab") as f:
        f.write((record[100:] + "\n").encode())
    lock.release()
    setting_aside.join(timeout=60)
    assert not setting_aside.is_alive()
    lines = journal.read_bytes().split(b"\n")
    assert lines[-1] == b"" and json.loads(lines[-2]) == json.loads(record), lines[-2][:120]
    assert not list(tmp_path.glob(f"{JOURNAL_FILE}.torn-*"))
    assert load_study(tmp_path).user_attrs["note"] == "x" * 200  # a study attr, as a notebook may set


def test_a_dead_writers_journal_lock_is_removed_and_a_live_ones_waited_for(tmp_path):
    """A driver killed while it appended to the journal leaves Optuna's lock on it: the resume's writer then waited
    30 s for it without a word (Optuna's log is quieted). Now a lock older than Optuna's grace period is removed at
    once, and said; a younger one, maybe a live writer's (a notebook, optuna-dashboard), is waited for, and said."""
    import threading
    import time

    from optuna.storages.journal import JournalFileSymlinkLock

    from rnnlab.journal import STALE_S, clear_stale_lock

    journal = str(tmp_path / JOURNAL_FILE)
    said: list[str] = []
    dead = JournalFileSymlinkLock(journal)  # taken, never released: its writer was killed
    dead.acquire()
    lock = tmp_path / f"{JOURNAL_FILE}.lock"
    assert lock.is_symlink(), "Optuna's lock is where clear_stale_lock looks"
    then = time.time() - STALE_S - 5
    os.utime(lock, (then, then), follow_symlinks=False)
    clear_stale_lock(journal, said.append)
    assert not os.path.lexists(lock)
    assert said == [f"removed the lock on {JOURNAL_FILE} that a writer which died left {STALE_S + 5:.0f} s ago"]

    said.clear()
    live = JournalFileSymlinkLock(journal)
    live.acquire()
    releasing = threading.Timer(1.5, live.release)  # a live writer, done a moment later
    releasing.start()
    clear_stale_lock(journal, said.append)
    releasing.join()
    assert not releasing.is_alive() and not os.path.lexists(lock)
    assert len(said) == 1 and said[0].startswith(f"{JOURNAL_FILE} is locked (another process writing it"), said
    clear_stale_lock(journal, said.append)  # no lock: nothing to say
    assert len(said) == 1
