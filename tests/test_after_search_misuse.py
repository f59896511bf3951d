"""Misuse of the commands a user runs after or around a search (replay, report, dashboard, fields) and of the
Python API: refused before any work with exit 2 (a ConfigError from Python) naming the argument and the valid
choices, and every search folder, its trials and its journal as they were. No Ray: the search folders are built."""

import shutil
from pathlib import Path

import pytest

from rnnlab.cli import main

ROOT = Path(__file__).resolve().parent.parent
ESN = str(ROOT / "experiments" / "esn_mackey_glass.py")  # a closed-form fit: a real run of about a second


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def run_record(tmp_path_factory) -> Path:
    """A real `rnnlab run`'s record, the trial folder of the searches below."""
    run = tmp_path_factory.mktemp("record") / "run"
    assert main(["run", ESN, "--out", str(run), "--set", "tracking.mode=disabled"]) == 0
    return run


def search_with_trial(root: Path, name: str, record: Path) -> Path:
    """A search folder under `root` whose trial t1 is `record` (replay reads only files)."""
    from rnnlab.search_folder import SearchSpec

    folder = root / name
    SearchSpec(experiment=ESN, name=name, storage=str(root), folder=str(folder), metric="train/rmse").save()
    shutil.copytree(record, folder / "trials" / "t1")
    return folder


@pytest.mark.parametrize(
    "trial_id",
    ["../../other/trials/t1", "../../other", "t1/../t1", "t1/seed_0", "t1/seed_x", "a/b", "..", ".", "/t1", "nope"],
)
def test_replay_of_a_trial_id_that_is_no_trial_of_the_search(trial_id, run_record, tmp_path, capsys):
    """Before: the id was joined to trials/ as a path: '../../other/trials/t1' replayed another search's trial and
    wrote the replay into that search's trials/ (a new 't1-TIMESTAMP' folder, a trial of its own to its report),
    and left an empty replays/ in this one. Now: exit 2 naming trial_id and the valid ids; nothing read or written
    outside the search, both searches as they were."""
    mine, other = search_with_trial(tmp_path, "mine", run_record), search_with_trial(tmp_path, "other", run_record)
    before = {"mine": snapshot(mine), "other": snapshot(other)}
    assert main(["replay", str(mine), trial_id]) == 2
    err = capsys.readouterr().err
    assert "trial_id: no trial" in err and "valid:" in err and "t1" in err and "Traceback" not in err, err[-2000:]
    assert {"mine": snapshot(mine), "other": snapshot(other)} == before
    assert sorted(p.name for p in mine.iterdir()) == ["search.json", "trials"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "other"]


def test_replay_of_one_seed_of_a_replicated_trial_is_still_taken(run_record, tmp_path, capsys):
    """ID/seed_<i> names one seed of a trial of seed replicates: the one id with a / that is valid."""
    mine = search_with_trial(tmp_path, "mine", run_record)
    trial = mine / "trials" / "t1"
    trial.rename(mine / "trials" / "seed_1")
    trial.mkdir()
    (mine / "trials" / "seed_1").rename(trial / "seed_1")
    out = tmp_path / "replay"
    assert main(["replay", str(mine), "t1/seed_1", "--out", str(out)]) == 0, capsys.readouterr().err[-2000:]
    assert "replay reproduces the recorded metrics" in capsys.readouterr().out
    assert (out / "result.json").is_file()
