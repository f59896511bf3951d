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


def study_search(root: Path) -> Path:
    """A search folder with a real Optuna journal of three trials."""
    import optuna

    from rnnlab.search_folder import STUDY_NAME, SearchSpec, open_study_storage

    folder = root / "s"
    SearchSpec(experiment=ESN, name="s", storage=str(root), folder=str(folder), metric="train/rmse").save()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=STUDY_NAME, storage=open_study_storage(folder))
    study.optimize(lambda t: t.suggest_float("model.esn.ridge", 1e-9, 1e-2, log=True), n_trials=3)
    return folder


@pytest.mark.parametrize("journal", ["missing", "empty", "corrupted inside"])
def test_dashboard_of_a_search_without_a_readable_study(journal, tmp_path):
    """Before: a missing journal was created (empty) by the dashboard, which then served an empty study until
    stopped; one corrupted inside failed in the server with a JSONDecodeError traceback. Now: exit 2 naming the
    journal, before anything listens, the folder as it was. A subprocess: the old dashboard never returned."""
    import subprocess
    import sys

    from ports import free_ports

    folder = study_search(tmp_path)
    path = folder / "optuna.journal"
    if journal == "missing":
        path.unlink()
    elif journal == "empty":
        path.write_bytes(b"")
    else:
        lines = path.read_bytes().split(b"\n")
        lines[1] = lines[1][:10]  # a record damaged in the middle
        path.write_bytes(b"\n".join(lines))
    before = snapshot(folder)
    [port] = free_ports(1)
    argv = [sys.executable, "-m", "rnnlab", "dashboard", str(folder), "--port", str(port)]
    child = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert child.returncode == 2, child.stderr[-2000:]
    said = "is corrupted inside" if journal == "corrupted inside" else "holds no Optuna study yet"
    assert said in child.stderr and "Traceback" not in child.stderr, child.stderr[-2000:]
    assert snapshot(folder) == before and path.exists() == (journal != "missing")


def test_a_journal_removed_after_its_search_syncs_without_a_traceback(tmp_path):
    """`rnnlab.search(...)` in a script, then its folder removed (a temporary folder's cleanup). Before: at exit the
    journal's last sync failed, 'Exception ignored in atexit callback' and a FileNotFoundError traceback. Now: a
    journal that is gone has nothing to make durable."""
    from rnnlab.journal import JournalFile

    journal = JournalFile(str(tmp_path / "optuna.journal"))
    journal.append_logs([{"op_code": 0, "worker_id": "w", "study_name": "s", "directions": [1]}])
    (tmp_path / "optuna.journal").unlink()
    journal.sync()  # as the atexit hook and the timer call it


@pytest.mark.parametrize(
    "command",
    [["report", "{f}"], ["replay", "{f}", "t1"], ["dashboard", "{f}"], ["sync", "{f}"], ["tune", "{f}", "--resume"]],
    ids=lambda c: c[0] + ("_resume" if "--resume" in c else ""),
)
def test_a_search_json_given_for_its_folder_names_the_folder(command, run_record, tmp_path, capsys):
    """The path of a search's search.json given where its folder is asked: "holds no search.json: not a search
    folder" (of the file), or for tune --resume "no search in searches". Now exit 2 naming the folder to give; the
    search as it was."""
    folder = search_with_trial(tmp_path, "mine", run_record)
    before = snapshot(folder)
    given = str(folder / "search.json")
    assert main([c.replace("{f}", given) for c in command]) == 2
    err = capsys.readouterr().err
    assert f"{given} is the search's search.json: give its folder {folder}, not the file" in err, err
    assert "Traceback" not in err and snapshot(folder) == before


def test_a_search_json_given_as_an_experiment_says_how_to_continue_the_search(run_record, tmp_path, capsys):
    """`rnnlab tune S/search.json` (no --resume) and `rnnlab run S/search.json` were an AttributeError traceback
    (a module spec of no .py file); now exit 2 naming the experiment and the resume command."""
    folder = search_with_trial(tmp_path, "mine", run_record)
    for command in (["tune", str(folder / "search.json")], ["run", str(folder / "search.json")]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert "experiment: " in err and f"rnnlab tune {folder} --resume" in err and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


@pytest.mark.parametrize("resume", [True, False], ids=["resume", "new"])
def test_rnnlab_run_into_a_trials_folder_is_refused(resume, tmp_path, capsys):
    """`rnnlab run EXP --out S/trials/ID --resume --set train.epochs=3` ("continue the best trial") was taken: the
    trial's config.json, metrics.jsonl and result.json became a 3-epoch run's while the study, the report's tables
    and the search's agreement checks held the trial's own 2 epochs (its replay then ran 3). A new run there put a
    folder in trials/ that is no trial of the study. Now exit 2 naming the search and the ways on, the folder as it
    was."""
    from test_user_faults import DIGITS, SHRINK

    record = tmp_path / "record"
    assert main(["run", DIGITS, "--out", str(record), "--set", *SHRINK, "train.epochs=2"]) == 0
    mine = search_with_trial(tmp_path, "mine", record)
    before = snapshot(mine)
    out = mine / "trials" / ("t1" if resume else "t2")
    argv = ["run", DIGITS, "--out", str(out), "--set", *SHRINK, "train.epochs=3", *(["--resume"] if resume else [])]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"is in the search {mine}" in err and f"rnnlab replay {mine}" in err and "Traceback" not in err, err
    assert snapshot(mine) == before and not (mine / "trials" / "t2").exists()


def test_a_replay_into_a_searchs_trials_folder_is_refused(run_record, tmp_path, capsys):
    """`rnnlab replay S t1 --out S/trials/t1-again` wrote a run folder among the trials: a trial id to replay, to
    sync and to the resume's data checks that the study never held. Now exit 2, nothing written."""
    mine = search_with_trial(tmp_path, "mine", run_record)
    before = snapshot(mine)
    assert main(["replay", str(mine), "t1", "--out", str(mine / "trials" / "t1-again")]) == 2
    err = capsys.readouterr().err
    assert f"is in the search {mine}" in err and "another --out" in err and "Traceback" not in err, err
    assert snapshot(mine) == before and sorted(p.name for p in (mine / "trials").iterdir()) == ["t1"]
