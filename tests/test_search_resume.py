"""`tune --resume` on a real local Ray and a real Optuna journal: what a resume may change (and what it refuses
before any work), a journal whose last record was torn by a kill, and the SIGINT handler a search leaves behind."""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rnnlab.cli import main
from rnnlab.records import read_metrics
from rnnlab.search_folder import JOURNAL_FILE, SearchSpec, load_study

ROOT = Path(__file__).resolve().parent.parent
SEARCH_DIGITS = str(ROOT / "experiments" / "search_digits.py")
TINY = ["train.epochs=2", "train.max_batches=2", "search.grace_period=1", "search.sampler=random"]


@pytest.fixture(scope="module")
def local_ray():
    import ray

    from rnnlab.tune import connect

    connect(None)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def finished_search(tmp_path_factory, local_ray):
    """A finished 2-trial search, copied by each test that changes it."""
    storage = tmp_path_factory.mktemp("searches")
    before = signal.getsignal(signal.SIGINT)
    args = ["tune", SEARCH_DIGITS, "--storage", str(storage), "--name", "s", "--samples", "2", "--set", *TINY]
    assert main(args) == 0
    # Tune's SIGINT handler, left installed, swallowed a SIGINT after the search (the report, a resume's second
    # launch): the driver went on and exited 0
    assert signal.getsignal(signal.SIGINT) is before, "the search put back the SIGINT handler it found"
    return storage / "s"


def copy_search(folder: Path, tmp_path: Path) -> Path:
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy)
    return copy


def records(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (folder / "search.json", folder / JOURNAL_FILE)}


@pytest.mark.slow
@pytest.mark.parametrize(
    "flags, named",
    [
        (["--set", "optim.weight_decay=0.5"], "optim.weight_decay"),
        (["--set", "train.epochs=3"], "train.epochs"),
        (["--samples", "3", "--set", "search.scheduler=none", "seed=4"], "search.scheduler"),
        (["--device", "cpu", "--set", "data.val_fraction=0.3"], "data.val_fraction"),
    ],
)
def test_resume_refuses_a_change_of_what_was_computed(finished_search, tmp_path, capsys, caplog, flags, named):
    folder = copy_search(finished_search, tmp_path)
    before = records(folder)
    assert main(["tune", str(folder), "--resume", *flags]) == 2
    said = capsys.readouterr().err + caplog.text
    assert named in said and "computed with other values" in said
    if "seed=4" in flags:
        assert "seed (0 -> 4)" in said, "every differing field is named"
    assert records(folder) == before, "refused before any work: nothing written"
    assert len(load_study(folder).trials) == 2


@pytest.mark.slow
def test_resume_applies_the_fields_that_extend_or_observe(finished_search, tmp_path):
    folder = copy_search(finished_search, tmp_path)
    code = main(
        ["tune", str(folder), "--resume", "--samples", "3", "--concurrency", "1"] + ["--set", "tracking.mode=disabled"]
    )
    assert code == 0
    spec = SearchSpec.load(folder)
    assert spec.overrides["tracking.mode"] == "disabled" and spec.overrides["search.concurrency"] == "1"
    assert spec.config["tracking.mode"] == "disabled" and spec.config["search.samples"] == 3
    study = load_study(folder)
    assert len(study.trials) == 3 and all(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials)
    new = study.trials[-1].user_attrs["ray_trial_id"]
    config = json.loads((folder / "trials" / new / "config.json").read_text())["flat"]
    assert config["tracking.mode"] == "disabled", "the new trial ran with the new tracking"
    first = json.loads((folder / "trials" / study.trials[0].user_attrs["ray_trial_id"] / "config.json").read_text())
    assert first["flat"]["tracking.mode"] == "offline", "the trials before the resume kept theirs"


@pytest.mark.slow
def test_a_trial_whose_end_was_in_a_torn_journal_tail_is_told_from_its_result(finished_search, tmp_path):
    folder = copy_search(finished_search, tmp_path)
    whole = {t.number: t for t in load_study(folder).trials}
    journal = folder / JOURNAL_FILE
    data = journal.read_bytes()
    journal.write_bytes(data[: data.rstrip(b"\n").rfind(b"\n") + 1 + 20])  # the last record cut after 20 bytes
    torn = {t.number: t for t in load_study(folder).trials}
    lost = [n for n in whole if torn[n].state != whole[n].state]
    assert lost and all(torn[n].state.name == "RUNNING" for n in lost), "the tear took a trial's end with it"

    assert main(["tune", str(folder), "--resume"]) == 0
    assert list(folder.glob(f"{JOURNAL_FILE}.torn-*")), "the torn tail is set aside"
    study = {t.number: t for t in load_study(folder).trials}
    assert len(study) == 2
    for n in lost:  # the study equals the trial's result.json (and the study before the tear)
        t, out = study[n], folder / "trials" / study[n].user_attrs["ray_trial_id"]
        result = json.loads((out / "result.json").read_text())
        assert t.state == whole[n].state, (t.state, whole[n].state, result)
        assert {"completed": "COMPLETE", "early_stopped": "COMPLETE", "stopped": "PRUNED"}[
            result["status"]
        ] == t.state.name
        assert t.user_attrs.get("reason") == whole[n].user_attrs.get("reason")
        epochs = {row["epoch"]: row["val/acc"] for row in read_metrics(out / "metrics.jsonl")}
        assert t.intermediate_values == pytest.approx(epochs), "every epoch's value, as metrics.jsonl has it"
        assert t.value == pytest.approx(whole[n].value)
        if t.state.name == "COMPLETE":
            assert math.isclose(t.value, result["val/acc"])


@pytest.mark.slow
def test_resume_after_a_driver_killed_mid_append_takes_its_journal_lock_over(finished_search, tmp_path, capsys):
    """The lock Optuna's writer leaves on the journal when its driver is killed mid-append, a minute old: the resume
    removes it, says so, and extends the search (before: 30 s waiting in Optuna's quieted log)."""
    from optuna.storages.journal import JournalFileSymlinkLock

    folder = copy_search(finished_search, tmp_path)
    JournalFileSymlinkLock(str(folder / JOURNAL_FILE)).acquire()
    lock = folder / f"{JOURNAL_FILE}.lock"
    then = time.time() - 60
    os.utime(lock, (then, then), follow_symlinks=False)
    assert main(["tune", str(folder), "--resume", "--samples", "3"]) == 0
    assert f"removed the lock on {JOURNAL_FILE} that a writer which died left 60 s ago" in capsys.readouterr().err
    assert not os.path.lexists(lock)
    study = load_study(folder)
    assert len(study.trials) == 3 and all(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials)


@pytest.mark.slow
def test_resume_of_a_launch_ray_saved_nothing_of(finished_search, tmp_path):
    """A driver killed before Ray first wrote its launch's state (no ray/ folder): the resume takes
    the launch up again under its name from the trials the study holds (it crashed in Tuner.restore: exit 1 and
    every RUNNING trial failed as "the driver failed")."""
    folder = copy_search(finished_search, tmp_path)
    shutil.rmtree(folder / "ray")  # killed between search.json naming the launch and the Tuner's first write
    held = {t.user_attrs["ray_trial_id"]: t.value for t in load_study(folder).trials}
    assert main(["tune", str(folder), "--resume", "--samples", "3"]) == 0
    study = load_study(folder).trials
    assert len(study) == 3 and all(t.state.name in ("COMPLETE", "PRUNED") for t in study)
    assert {t.user_attrs["ray_trial_id"]: t.value for t in study[:2]} == held, "the trials held were not run again"
    assert SearchSpec.load(folder).ray_runs == ["ray"]


SAVE_ON_A_FULL_DISK = """
import json, sys
from pathlib import Path
from rnnlab.config import ConfigError
from rnnlab.search_folder import SearchSpec

folder = Path(sys.argv[1]) / "s"
folder.mkdir()
spec = SearchSpec(experiment="e.py", name="s", storage=str(folder.parent), folder=str(folder))
spec.save()
with open(folder.parent / "filler", "wb", buffering=0) as f:  # the disk full
    try:
        while True:
            f.write(b"x" * 4096)
    except OSError:
        pass
spec.ray_runs.append("ray-2")
spec.overrides = {"model.name": "x" * 200_000}  # more than the disk has left
try:
    spec.save()
except OSError as err:
    print("refused", err.errno)
try:
    print("runs", json.dumps(SearchSpec.load(folder).ray_runs))
except ConfigError as err:
    print("unreadable", err)
"""


def test_search_json_is_written_whole_on_a_full_disk(tmp_path):
    """A full disk (a 1 MiB tmpfs in a mount namespace of the test's own) while search.json is rewritten: the
    previous one stays whole (it was truncated and left torn: the search could no longer be resumed)."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs unshare and root to mount a small tmpfs")
    mount = tmp_path / "disk"
    mount.mkdir()
    shell = f'mount -t tmpfs -o size=1m tmpfs {mount} && exec {sys.executable} -c "$0" {mount}'
    done = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", shell, SAVE_ON_A_FULL_DISK],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "refused 28" in done.stdout, done.stdout  # ENOSPC
    assert 'runs ["ray"]' in done.stdout, done.stdout
