"""search.json records its format and the version of the rnnlab that wrote it. One that a newer rnnlab wrote (a field
this one does not know, a format past its own) is refused by every command that reads it, run from outside: exit 2
naming both versions and saying to upgrade, every file and folder of the search as it was (bytes and mtimes).
Before: 'not a valid search.json (SearchSpec.__init__() got an unexpected keyword argument ...)', which told the
user nothing true; and ignoring the field instead could corrupt the record (a resume skipping what it asks)."""

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ports import free_ports

from rnnlab.cli import main
from rnnlab.search_folder import (
    SEARCH_FILE,
    SEARCH_FORMAT,
    STUDY_NAME,
    NewerSearch,
    SearchSpec,
    open_study_storage,
    running_version,
)

ROOT = Path(__file__).resolve().parent.parent
ESN = str(ROOT / "experiments" / "esn_mackey_glass.py")  # a closed-form fit: a real run of about a second


def state(root: Path) -> dict[str, tuple]:
    """Every file and folder under `root`: its bytes (None for a folder) and its mtime."""
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture(scope="module")
def run_record(tmp_path_factory) -> Path:
    """A real `rnnlab run`'s record: the trial of the search below."""
    run = tmp_path_factory.mktemp("record") / "run"
    assert main(["run", ESN, "--out", str(run), "--set", "tracking.mode=disabled"]) == 0
    return run


def make_search(root: Path, record: Path) -> Path:
    """A search folder as a search leaves it: search.json, an Optuna journal whose one trial is t1, its record."""
    import optuna

    folder = root / "s"
    SearchSpec(experiment=ESN, name="s", storage=str(root), folder=str(folder), metric="train/rmse").save()
    shutil.copytree(record, folder / "trials" / "t1")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name=STUDY_NAME, storage=open_study_storage(folder))
    trial = study.ask()
    trial.set_user_attr("ray_trial_id", "t1")
    study.tell(trial, json.loads((folder / "trials" / "t1" / "result.json").read_text())["train/rmse"])
    return folder


def rewrite(folder: Path, **fields) -> None:
    """search.json with `fields` set (None: left out), as another rnnlab would have saved it."""
    path = folder / SEARCH_FILE
    record = {key: value for key, value in {**json.loads(path.read_text()), **fields}.items() if value is not None}
    path.write_text(json.dumps(record, indent=2) + "\n")


def rnnlab(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rnnlab", *argv], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_search_json_records_its_format_and_the_rnnlab_that_wrote_it(tmp_path):
    spec = SearchSpec(experiment=ESN, name="s", storage=str(tmp_path), folder=str(tmp_path / "s"))
    (tmp_path / "s").mkdir()
    spec.save()
    record = json.loads((tmp_path / "s" / SEARCH_FILE).read_text())
    assert (record["format"], record["rnnlab_version"]) == (SEARCH_FORMAT, running_version())
    assert list(record)[:2] == ["format", "rnnlab_version"]  # what a reader meets first
    assert SearchSpec.load(tmp_path / "s") == spec


def test_a_field_added_to_search_json_raises_its_format():
    """An older rnnlab refuses a search.json by its format: the fields of each format, so that adding one without
    raising SEARCH_FORMAT fails here, not in a user's resume."""
    fields = {
        1: "experiment name storage folder overrides metric mode objectives ray_runs config search_id data uri",
    }
    assert " ".join(f.name for f in dataclasses.fields(SearchSpec)) == fields[SEARCH_FORMAT], (
        "SearchSpec's fields changed: raise SEARCH_FORMAT and list the new format's fields here"
    )


def test_an_older_search_json_without_them_still_loads(tmp_path):
    """A search.json saved before it recorded its format and writer (nor its search_id, data, uri) loads as before."""
    folder = tmp_path / "s"
    folder.mkdir()
    old = {"experiment": ESN, "name": "s", "storage": str(tmp_path), "folder": str(folder), "overrides": {"a.b": "1"}}
    (folder / SEARCH_FILE).write_text(json.dumps(old))
    spec = SearchSpec.load(folder)
    assert (spec.overrides, spec.search_id, spec.data, spec.uri) == ({"a.b": "1"}, "", {}, "")


@pytest.mark.parametrize(
    "newer, said",
    [
        (
            {"format": SEARCH_FORMAT + 1, "rnnlab_version": "9.9.9"},
            f"written by rnnlab 9.9.9 (search.json format {SEARCH_FORMAT + 1})",
        ),
        ({"leash": 3, "rnnlab_version": None}, "written by an rnnlab that did not record its version"),
        ({"format": "2b"}, "(search.json format '2b')"),
    ],
    ids=["later-format", "field-without-version", "format-no-number"],
)
def test_a_newer_search_json_is_refused_in_python_too(newer, said, tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    SearchSpec(experiment=ESN, name="s", storage=str(tmp_path), folder=str(folder)).save()
    rewrite(folder, **newer)
    with pytest.raises(NewerSearch, match="upgrade rnnlab") as err:
        SearchSpec.load(folder)
    assert said in str(err.value) and f"this is rnnlab {running_version()}" in str(err.value)
    assert ("leash" in str(err.value)) == ("leash" in newer)


COMMANDS = {
    "tune-resume": ["tune", "{f}", "--resume", "--samples", "2"],
    "replay": ["replay", "{f}", "t1"],
    "report": ["report", "{f}"],
    "dashboard": ["dashboard", "{f}", "--port", "{port}"],
    "sync": ["sync", "{f}"],
    "sync-trial": ["sync", "{f}/trials/t1"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_refuses_a_search_json_of_a_newer_rnnlab(command, run_record, tmp_path):
    folder = make_search(tmp_path / "store", run_record)
    rewrite(folder, format=SEARCH_FORMAT + 1, rnnlab_version="9.9.9", checked_at_resume={"tokenizer": "bpe"})
    before = state(tmp_path)
    [port] = free_ports(1)
    argv = [a.replace("{f}", str(folder)).replace("{port}", str(port)) for a in COMMANDS[command]]
    child = rnnlab(*argv, cwd=tmp_path)
    assert child.returncode == 2, child.stderr[-3000:]
    err = " ".join(child.stderr.split())  # the message as one line, whatever the terminal width
    assert f"{folder / SEARCH_FILE} was written by rnnlab 9.9.9 (search.json format {SEARCH_FORMAT + 1})" in err, err
    assert f"this is rnnlab {running_version()}, which reads format {SEARCH_FORMAT} and older" in err, err
    assert "does not know its field(s) checked_at_resume" in err and "upgrade rnnlab to 9.9.9 or later" in err, err
    assert "Traceback" not in child.stderr and "not a valid" not in err, err
    assert state(tmp_path) == before  # nothing written, nothing touched: the search, and the folder run from


def test_the_same_search_without_the_new_field_is_reported(run_record, tmp_path):
    """The search of the test above is a real one: without what the newer rnnlab added, report reads it."""
    folder = make_search(tmp_path / "store", run_record)
    child = rnnlab("report", str(folder), cwd=tmp_path)
    assert child.returncode == 0, child.stderr[-3000:]
    assert (folder / "report" / "report.html").is_file()


@pytest.fixture(scope="module")
def s3():
    from s3server import seaweedfs

    with seaweedfs() as server:
        yield server


@pytest.fixture
def bucket(s3, monkeypatch, tmp_path):
    """The S3 server's keys in the environment, the current folder a fresh one (where ./searches/ would go)."""
    for key, value in s3.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    return s3


def test_a_bucket_search_of_a_newer_rnnlab_is_refused_before_it_is_downloaded(bucket, run_record, tmp_path, capsys):
    """A search in a bucket is read from there first: refused before ./searches/ is written, the bucket as it was."""
    import pyarrow.fs

    folder = make_search(tmp_path / "made", run_record)
    rewrite(folder, format=SEARCH_FORMAT + 1, rnnlab_version="9.9.9", checked_at_resume={"tokenizer": "bpe"})
    fs = bucket.filesystem()
    pyarrow.fs.copy_files(str(folder), f"{bucket.bucket}/runs/s", pyarrow.fs.LocalFileSystem(), fs)
    shutil.rmtree(tmp_path / "made")
    files = bucket.files("runs/s")
    before = {name: fs.get_file_info(f"{bucket.bucket}/runs/s/{name}").mtime_ns for name in files}
    uri = bucket.uri("runs/s")
    for argv in (["tune", uri, "--resume"], ["replay", uri, "t1"], ["report", uri], ["dashboard", uri], ["sync", uri]):
        assert main(argv) == 2, argv
        err = " ".join(capsys.readouterr().err.split())
        assert f"the search.json of {uri} was written by rnnlab 9.9.9" in err and "upgrade rnnlab to 9.9.9" in err, err
    assert bucket.files("runs/s") == files
    assert {name: fs.get_file_info(f"{bucket.bucket}/runs/s/{name}").mtime_ns for name in files} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing downloaded into ./searches/


def test_a_newer_search_where_a_bucket_search_would_be_downloaded_is_not_overwritten(bucket, run_record, tmp_path):
    """./searches/s holding a newer rnnlab's search.json: whose search it is, this rnnlab cannot tell (a torn one is
    downloaded over); the download of a bucket search there is refused, both as they were."""
    import pyarrow.fs

    from rnnlab.storage import localize

    made = make_search(tmp_path / "made", run_record)
    pyarrow.fs.copy_files(str(made), f"{bucket.bucket}/other/s", pyarrow.fs.LocalFileSystem(), bucket.filesystem())
    files = bucket.files("other/s")
    local = make_search(tmp_path / "searches", run_record)
    rewrite(local, rnnlab_version="9.9.9", checked_at_resume={"tokenizer": "bpe"})
    before = state(local)
    with pytest.raises(NewerSearch, match=f"{local / SEARCH_FILE} was written by rnnlab 9.9.9"):
        localize(bucket.uri("other/s"))
    assert state(local) == before and bucket.files("other/s") == files
