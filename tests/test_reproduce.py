"""Reproduce any trial exactly: for every registered family, deep and bidirectional where it has them, a trial's
record (a real `rnnlab run`) replayed with `rnnlab replay` from another working folder gives the same metrics,
every one of every epoch, and the same result.json: not only the monitored metric the replay prints."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from rnnlab.cli import main
from rnnlab.models import MODELS
from rnnlab.search_folder import SearchSpec
from rnnlab.trial import read_metrics

ROOT = Path(__file__).resolve().parent.parent
SHRINK = ["train.epochs=2", "train.max_batches=2", "train.batch_size=16", "tracking.mode=disabled"]
# a family -> the experiment its trial comes from, and what shrinks it (deep and bidirectional where it can be)
DEEP = ["model.hidden_size=8", "model.num_layers=2", "model.bidirectional=true", "data.num_samples=200"]
CASES = {
    "elman": ("digits_lstm", ["model.family=elman", *DEEP]),
    "lstm": ("digits_lstm", DEEP),
    "gru": ("digits_gru", DEEP),
    "indrnn": ("digits_lstm", ["model.family=indrnn", *DEEP]),
    "mingru": ("digits_lstm", ["model.family=mingru", *DEEP]),
    "minlstm": ("digits_lstm", ["model.family=minlstm", *DEEP]),
    "esn": ("esn_mackey_glass", ["model.num_layers=2", "model.esn.units=30", "model.esn.washout=20"]),
    "hopfield": ("hopfield_capacity", []),
    "hopfield_pool": ("hopfield_pool_digits", ["model.hidden_size=8", "model.bidirectional=true"]),
}

# and the other data paths: a local CSV (its path relative to the experiment file), a series-to-series task
DATA_CASES = {
    "local_csv": ("text_reviews_csv", ["model.hidden_size=8"]),
    "series": ("esn_narma10", ["model.esn.units=30", "model.esn.washout=20", "data.num_samples=400"]),
}


def untimed(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.startswith("time/")}


def trial_folder_of_a_run(tmp_path: Path, experiment: str, overrides: list[str], record_data: bool = False) -> Path:
    """A search folder whose trial t1 is a real `rnnlab run`'s record (a replay reads only files); `record_data`:
    its search.json holds the run's config and its data record, as a search's driver writes them at launch."""
    run = tmp_path / "run"
    assert main(["run", experiment, "--out", str(run), "--set", *SHRINK, *overrides]) == 0
    folder = tmp_path / "s"
    flat = json.loads((run / "config.json").read_text())["flat"]
    path = str(ROOT / "experiments" / f"{experiment}.py")
    spec = SearchSpec(experiment=path, name="s", storage=str(tmp_path), folder=str(folder), metric=flat["metric"])
    if record_data:
        from rnnlab.registries import from_flat_dict
        from rnnlab.resume import data_record
        from rnnlab.trial import prepare_data

        cfg = from_flat_dict(flat)
        spec.config, spec.data = flat, data_record(cfg, prepare_data(cfg))
    spec.save()
    shutil.copytree(run, folder / "trials" / "t1")
    return folder


def test_every_family_has_a_case():
    assert set(CASES) == set(MODELS)


@pytest.mark.parametrize("case", [*CASES, *DATA_CASES])
def test_a_replay_equals_the_trial_value_for_value(case, tmp_path, monkeypatch, capsys):
    experiment, overrides = {**CASES, **DATA_CASES}[case]
    monkeypatch.setenv("RNNLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    folder = trial_folder_of_a_run(tmp_path, experiment, overrides)
    run = folder / "trials" / "t1"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # a replay does not depend on the folder it is started from
    capsys.readouterr()
    assert main(["replay", str(folder), "t1", "--out", str(tmp_path / "replay")]) == 0, capsys.readouterr().out
    recorded, replayed = read_metrics(run / "metrics.jsonl"), read_metrics(tmp_path / "replay" / "metrics.jsonl")
    assert len(recorded) >= 1 and [untimed(r) for r in replayed] == [untimed(r) for r in recorded]
    result = json.loads((run / "result.json").read_text())
    again = json.loads((tmp_path / "replay" / "result.json").read_text())
    assert untimed(again) == untimed(result)


def reviews_trial(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    """A search folder holding a trial on a copy of the reviews CSV, its search.json with the data's record."""
    monkeypatch.setenv("RNNLAB_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "reviews.csv"
    shutil.copy(ROOT / "experiments" / "data" / "reviews.csv", data)
    overrides = ["model.hidden_size=8", f"data.name={data}"]
    return trial_folder_of_a_run(tmp_path, "text_reviews_csv", overrides, record_data=True), data


def test_a_replay_on_changed_data_says_so(tmp_path, monkeypatch, capsys):
    """The trial's CSV was edited after it ran, and the trial ran on a GPU. Before: the replay said only "DIFFERS".
    Now it also says why: the data's fingerprints and the file that changed, and the device."""
    folder, data = reviews_trial(tmp_path, monkeypatch)
    lines = data.read_text().splitlines()
    data.write_text("\n".join([lines[0], "an edited review of a thing,positive", *lines[2:]]) + "\n")
    provenance = folder / "trials" / "t1" / "provenance.json"  # and the trial ran on a GPU
    provenance.write_text(json.dumps({**json.loads(provenance.read_text()), "device": "cuda:0"}))
    assert main(["replay", str(folder), "t1", "--out", str(tmp_path / "replay")]) == 1
    out = capsys.readouterr().out
    assert "DIFFERS" in out and "the replay's data differ from the trial's (fingerprint" in out, out
    assert f"train file {data} changed (size" in out, out
    assert "the replay ran elsewhere than the trial (device cuda:0 -> cpu)" in out, out
    assert out.rstrip().endswith("replay differs beyond rel_tol=0.001; its data differ too (above)"), out


def drop_content_digest(folder: Path) -> None:
    """The trial's result.json as rnnlab wrote it before it recorded the prepared data's digest (data/content)."""
    path = folder / "trials" / "t1" / "result.json"
    path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k != "data/content"}))


@pytest.mark.parametrize("digest", ["data/content", "files"])
def test_a_replay_on_data_only_touched_says_they_are_the_trials(tmp_path, monkeypatch, capsys, digest):
    """The trial's CSV copied over with its content unchanged (a checkout, a copy, a touch): its fingerprint, which
    keys its modification time, differs. The replay said "the replay's data differ from the trial's" right above
    "replay reproduces the recorded metrics"; now it says the data are the trial's, by the prepared data's digest or,
    for a trial that did not record it, by the files' content digests search.json recorded at launch."""
    folder, data = reviews_trial(tmp_path, monkeypatch)
    if digest == "files":
        drop_content_digest(folder)
    stat = data.stat()
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert main(["replay", str(folder), "t1", "--out", str(tmp_path / "replay")]) == 0
    out = capsys.readouterr().out
    assert "the replay's data fingerprint differs from the trial's (" in out and ", not its data: " in out, out
    said = "the prepared data's digest" if digest == "data/content" else "every file's content (sha256)"
    assert said in out, out
    assert "data differ" not in out and out.rstrip().endswith("replay reproduces the recorded metrics"), out


def test_a_replay_whose_data_were_not_recorded_says_it_cannot_tell(tmp_path, monkeypatch, capsys):
    """A search.json without the data's record and a trial without its data's digest (older searches): a fingerprint
    that differs may be a touch or an edit, and the verdict says that it does not know which."""
    folder, data = reviews_trial(tmp_path, monkeypatch)
    drop_content_digest(folder)
    spec = SearchSpec.load(folder)
    spec.data = {}
    spec.save()
    stat = data.stat()
    os.utime(data, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert main(["replay", str(folder), "t1", "--out", str(tmp_path / "replay")]) == 0
    out = capsys.readouterr().out
    assert "the search recorded no content digest of the trial's data" in out, out
    assert out.rstrip().endswith("whether on the trial's data is not known (above)"), out


def test_a_replay_compares_every_value_not_only_the_monitored_metric(tmp_path, monkeypatch, capsys):
    """A recorded train/loss and test/loss that the replay does not give again: the replay compared the monitored
    metric (and its test/ twin) alone and said "replay reproduces the recorded metrics", exit 0; now every number of
    every epoch and of result.json but times is compared, and the two values that differ are named."""
    monkeypatch.setenv("RNNLAB_CACHE", str(tmp_path / "cache"))
    folder = trial_folder_of_a_run(tmp_path, "digits_lstm", ["model.hidden_size=8", "data.num_samples=200"])
    trial = folder / "trials" / "t1"
    rows = read_metrics(trial / "metrics.jsonl")
    rows[0]["train/loss"] += 0.5
    (trial / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = json.loads((trial / "result.json").read_text())
    (trial / "result.json").write_text(json.dumps({**result, "test/loss": result["test/loss"] * 2}))
    assert main(["replay", str(folder), "t1", "--out", str(tmp_path / "replay")]) == 1
    out = capsys.readouterr().out
    lines = [line.split()[:3] for line in out.splitlines() if line.endswith("DIFFERS")]
    assert lines == [["epoch", "1", "train/loss"], ["result", "test/loss", f"{result['test/loss'] * 2:.5g}"]], out
    assert " equal bit for bit, 0 within rel_tol=0.001, 2 beyond" in out, out
    assert out.rstrip().endswith("replay differs beyond rel_tol=0.001"), out
