"""`tune --resume` on data that changed since the search's trials ran: refused before any work (before Ray starts),
naming the data, both fingerprints and the file that changed, the folder left as it was. Before, a resume (or a
`--samples N` extension) prepared the data as they are now and mixed trials on other data into one study."""

import json
import os
from pathlib import Path

import pytest

from rnnlab.api import plan_search
from rnnlab.cli import main
from rnnlab.config import ConfigError
from rnnlab.folder_lock import FolderLock
from rnnlab.resume import check_search_data, data_record, trials_fingerprints
from rnnlab.search_folder import JOURNAL_FILE, SEARCH_FILE, SearchSpec
from rnnlab.trial import prepare_data

ROOT = Path(__file__).resolve().parent.parent
REVIEWS = ROOT / "experiments" / "data" / "reviews.csv"
EXPERIMENT = """
from rnnlab.experiment import extend

config = extend({base!r}, {{
    "data.name": {csv!r}, "train.epochs": 1, "train.max_batches": 2, "model.hidden_size": 8,
    "model.embedding_size": 8, "search.samples": 2, "search.concurrency": 1, "search.sampler": "random",
    "search.scheduler": "none", "search.reuse_workers": False,
}})


def search_space(trial):
    return {{"optim.learning_rate": trial.suggest_float("optim.learning_rate", 1e-3, 1e-2, log=True)}}
"""


@pytest.fixture
def experiment(tmp_path) -> tuple[Path, Path]:
    """A search experiment on a local CSV of 200 reviews, both written here: (experiment file, csv)."""
    csv = tmp_path / "reviews.csv"
    csv.write_text("".join(REVIEWS.read_text().splitlines(keepends=True)[:201]))
    path = tmp_path / "search_reviews.py"
    path.write_text(EXPERIMENT.format(base=str(ROOT / "experiments" / "text_reviews_csv.py"), csv=str(csv)))
    return path, csv


def planned_search(experiment: Path, storage: Path, record: bool = True) -> SearchSpec:
    """A search folder as its launch leaves it before Ray starts (search.json with its data, a journal), no trial."""
    exp, spec = plan_search(experiment, {}, "s", storage)
    if record:
        spec.data = data_record(exp.config, prepare_data(exp.config))
    Path(spec.folder).mkdir(parents=True)
    spec.save()
    Path(spec.folder, JOURNAL_FILE).write_bytes(b'{"op_code": 0, "worker_id": "w", "study_name": "search"}\n')
    return spec


def records(folder: Path) -> dict[str, bytes]:
    return {name: Path(folder, name).read_bytes() for name in (SEARCH_FILE, JOURNAL_FILE)}


def no_ray(monkeypatch) -> None:
    """A resume that gets past its checks meets this at Ray's start: no Ray, no trial in these tests."""

    def connect(address):
        raise ConfigError("--address", "the checks passed: Ray would start here")

    monkeypatch.setattr("rnnlab.tune.driver.connect", connect)


def test_a_resume_on_edited_data_is_refused_before_ray_and_writes_nothing(experiment, tmp_path, capsys, monkeypatch):
    path, csv = experiment
    spec = planned_search(path, tmp_path / "searches")
    no_ray(monkeypatch)
    before = records(spec.folder)
    with csv.open("a") as f:
        f.write("a new review that was not there,positive\n")
    assert main(["tune", spec.folder, "--resume", "--samples", "3"]) == 2
    err = capsys.readouterr().err
    now = data_record(spec_config(spec), prepare_data(spec_config(spec)))["fingerprint"]
    assert "data: the data (data.source=local" in err and "Traceback" not in err, err
    assert f"fingerprint {spec.data['fingerprint']} -> {now}" in err, err
    assert f"train file {csv} changed (size" in err and "another --name" in err, err
    assert "Ray would start here" not in err, "refused before Ray starts"
    assert records(spec.folder) == before, "search.json and the journal as they were"
    with FolderLock(spec.folder, "--resume"):  # no lock left held
        pass


def spec_config(spec: SearchSpec):
    from rnnlab.experiment import load_experiment

    return load_experiment(spec.experiment, spec.overrides).config


def test_a_file_touched_or_copied_over_passes_and_one_edited_to_the_same_size_does_not(
    experiment, tmp_path, capsys, monkeypatch
):
    """The fingerprint keys a file's mtime (a fresh clone, a new head node change it): its content decides."""
    path, csv = experiment
    spec = planned_search(path, tmp_path / "searches")
    no_ray(monkeypatch)
    stat = csv.stat()
    os.utime(csv, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert main(["tune", spec.folder, "--resume"]) == 2
    assert "Ray would start here" in capsys.readouterr().err, "a touched file: the same data"
    copy = tmp_path / "copy.csv"
    copy.write_bytes(csv.read_bytes())
    os.replace(copy, csv)
    assert main(["tune", spec.folder, "--resume"]) == 2
    assert "Ray would start here" in capsys.readouterr().err, "a file copied over: the same data"
    csv.write_text(csv.read_text().replace("positive", "negative", 1))
    assert main(["tune", spec.folder, "--resume"]) == 2
    err = capsys.readouterr().err
    size = csv.stat().st_size
    assert f"train file {csv} changed (size {size} -> {size} bytes" in err and "Ray would" not in err, err


def test_a_resume_on_the_same_data_passes_and_an_old_search_json_gets_its_record(experiment, tmp_path, monkeypatch):
    path, _ = experiment
    spec = planned_search(path, tmp_path / "searches", record=False)
    stored = json.loads(Path(spec.folder, SEARCH_FILE).read_text())
    del stored["data"]  # saved before search.json recorded its data
    Path(spec.folder, SEARCH_FILE).write_text(json.dumps(stored))
    assert SearchSpec.load(spec.folder).data == {}
    given = []
    monkeypatch.setattr("rnnlab.tune.driver.connect", lambda address: given.append(address) or 1 / 0)
    with pytest.raises(ZeroDivisionError):
        main(["tune", spec.folder, "--resume"])
    assert given == [None], "the checks passed"


def trial(folder: str, trial_id: str, fingerprint: str, flat: dict) -> None:
    out = Path(folder, "trials", trial_id)
    out.mkdir(parents=True)
    (out / "result.json").write_text(json.dumps({"status": "completed", "data/fingerprint": fingerprint}))
    (out / "config.json").write_text(json.dumps({"flat": flat}))


def test_an_old_search_is_checked_against_its_trials_fingerprints(experiment, tmp_path, capsys, monkeypatch):
    """A search.json without its data record: the fingerprint most of its trials of the base data config hold."""
    path, csv = experiment
    spec = planned_search(path, tmp_path / "searches", record=False)
    cfg = spec_config(spec)
    was = data_record(cfg, prepare_data(cfg))["fingerprint"]
    trial(spec.folder, "a", was, spec.config)
    trial(spec.folder, "b", was, spec.config)
    trial(spec.folder, "c", "other-length", {**spec.config, "data.max_length": 5})  # a space varying data.*
    trial(spec.folder, "d", "other-seed", {**spec.config, "seed": 1})
    assert trials_fingerprints(Path(spec.folder), cfg) == {was: 2}
    no_ray(monkeypatch)
    before = records(spec.folder)
    csv.write_text(csv.read_text().replace("positive", "negative", 1))
    assert main(["tune", spec.folder, "--resume", "--samples", "3"]) == 2
    err = capsys.readouterr().err
    assert f"fingerprint {was} -> " in err and "held by 2 of its trials' result.json" in err, err
    assert records(spec.folder) == before


@pytest.mark.parametrize(
    "was, now, said",
    [
        ({"fingerprint": "a", "commit": "c1"}, {"fingerprint": "b", "commit": "c2"}, "from commit c1 to c2"),
        ({"fingerprint": "a"}, {"fingerprint": "b"}, "rnnlab's data preparation"),
        ({"fingerprint": "a", "content": "x"}, {"fingerprint": "b", "content": "y"}, "other data now (content x -> y)"),
        (
            {"fingerprint": "a", "files": [["train", "x.csv", 1, 0, "d"]], "code": "c1", "datasets": "3"},
            {"fingerprint": "b", "files": [["train", "x.csv", 1, 5, "d"]], "code": "c2", "datasets": "3"},
            "or the datasets library changed since (code c1 -> c2)",
        ),
        (
            {"fingerprint": "a", "files": [["train", "x.csv", 1, 0], ["test", "y.csv", 1, 0]]},
            {"fingerprint": "b", "files": [["train", "x.csv", 1, 0], ["test", "z.csv", 1, 0]]},
            "test file y.csv is gone; test file z.csv is new",
        ),
    ],
)
def test_the_refusal_says_what_changed(was, now, said):
    spec = SearchSpec(experiment="e.py", name="s", storage="st", folder="/nowhere", data=was)
    cfg = type("Cfg", (), {"data": type("Data", (), {"source": "hub", "name": "d"})})()
    with pytest.raises(ConfigError) as err:
        check_search_data(spec, cfg, now)
    assert err.value.field == "data" and said in err.value.message and "fingerprint a -> b" in err.value.message
    check_search_data(spec, cfg, {**now, "fingerprint": "a"})  # the same data: passes


@pytest.mark.slow
def test_a_real_search_refuses_a_resume_on_edited_data_and_extends_on_restored_data(experiment, tmp_path):
    """A 2-trial search on a real local Ray; the CSV edited: --resume --samples 3 refused, the folder as it was;
    the CSV restored (content and time): the same resume runs its third trial on the data of the first two."""
    import ray

    from rnnlab.search_folder import load_study

    path, csv = experiment
    storage = tmp_path / "searches"
    try:
        assert main(["tune", str(path), "--storage", str(storage), "--name", "s"]) == 0
        folder = storage / "s"
        spec = SearchSpec.load(folder)
        assert spec.data["fingerprint"] and spec.data["files"][0][1] == str(csv)
        results = [json.loads(p.read_text()) for p in folder.glob("trials/*/result.json")]
        assert [r["data/fingerprint"] for r in results] == [spec.data["fingerprint"]] * 2
        text, stat = csv.read_bytes(), csv.stat()
        csv.write_bytes(text.replace(b"positive", b"negative", 1))
        before = {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".rnnlab.lock"}
        assert main(["tune", str(folder), "--resume", "--samples", "3"]) == 2
        after = {p: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".rnnlab.lock"}
        assert after == before, "a refused resume changes nothing in the folder"
        csv.write_bytes(text)
        os.utime(csv, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert main(["tune", str(folder), "--resume", "--samples", "3"]) == 0
    finally:
        ray.shutdown()
    study = load_study(folder)
    assert len(study.trials) == 3 and all(t.state.name == "COMPLETE" for t in study.trials)
    results = [json.loads(p.read_text()) for p in folder.glob("trials/*/result.json")]
    assert [r["data/fingerprint"] for r in results] == [spec.data["fingerprint"]] * 3


def test_other_code_preparing_the_same_data_passes_and_other_data_do_not(experiment, tmp_path, capsys, monkeypatch):
    """Before: a search launched by one rnnlab could not be resumed by any rnnlab whose data modules differ at all
    (an upgrade, a refactor that moved a function): the fingerprint keys their source, so the resume was refused as
    'rnnlab's data preparation changed'. Now search.json records the prepared data's digest: other code preparing
    the same data, value for value, passes; other code preparing other data is refused, naming both digests."""
    from rnnlab.data import cache

    path, csv = experiment
    spec = planned_search(path, tmp_path / "searches")
    assert len(spec.data["content"]) == 32
    no_ray(monkeypatch)
    code_hash = cache.code_hash
    monkeypatch.setattr(cache, "code_hash", lambda task=None: "another rnnlab " + code_hash(task))
    assert main(["tune", spec.folder, "--resume"]) == 2
    assert "Ray would start here" in capsys.readouterr().err, "the same data, prepared by other code"
    csv.write_text(csv.read_text().replace("positive", "negative", 1))
    before = records(spec.folder)
    assert main(["tune", spec.folder, "--resume"]) == 2
    err = capsys.readouterr().err
    assert "Ray would start here" not in err and f"train file {csv} changed" in err, err
    assert records(spec.folder) == before


def test_a_run_resumed_by_other_code_on_the_same_data_passes(tmp_path):
    """`rnnlab run --resume`'s data check (provenance.json): the prepared data's digest decides when the
    fingerprint differs, as for a search."""
    from rnnlab.resume import check_resume_data

    (tmp_path / "provenance.json").write_text(json.dumps({"data.fingerprint": "f1", "data.content": "c1"}))
    check_resume_data(tmp_path, "f2", "c1")  # other code, the same data
    check_resume_data(tmp_path, "f1", "")  # the same fingerprint
    for content in ("c2", ""):
        with pytest.raises(ConfigError, match="fingerprint f1 -> f2"):
            check_resume_data(tmp_path, "f2", content)
