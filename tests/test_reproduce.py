"""Reproduce any trial exactly: for every registered family, deep and bidirectional where it has them, a trial's
record (a real `rnnlab run`) replayed with `rnnlab replay` from another working folder gives the same metrics,
every one of every epoch, and the same result.json: not only the monitored metric the replay prints."""

from __future__ import annotations

import json
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


def trial_folder_of_a_run(tmp_path: Path, experiment: str, overrides: list[str]) -> Path:
    """A search folder whose trial t1 is a real `rnnlab run`'s record (a replay reads only files)."""
    run = tmp_path / "run"
    assert main(["run", experiment, "--out", str(run), "--set", *SHRINK, *overrides]) == 0
    folder = tmp_path / "s"
    metric = json.loads((run / "config.json").read_text())["flat"]["metric"]
    path = str(ROOT / "experiments" / f"{experiment}.py")
    SearchSpec(experiment=path, name="s", storage=str(tmp_path), folder=str(folder), metric=metric).save()
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


def test_a_replay_on_changed_data_says_so(tmp_path, monkeypatch, capsys):
    """The trial's CSV was edited after it ran, and the trial ran on a GPU. Before: the replay said only "DIFFERS".
    Now it also says why: the data's fingerprints, and the device."""
    monkeypatch.setenv("RNNLAB_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "reviews.csv"
    shutil.copy(ROOT / "experiments" / "data" / "reviews.csv", data)
    folder = trial_folder_of_a_run(tmp_path, "text_reviews_csv", ["model.hidden_size=8", f"data.name={data}"])
    lines = data.read_text().splitlines()
    data.write_text("\n".join([lines[0], "an edited review of a thing,positive", *lines[2:]]) + "\n")
    provenance = folder / "trials" / "t1" / "provenance.json"  # and the trial ran on a GPU
    provenance.write_text(json.dumps({**json.loads(provenance.read_text()), "device": "cuda:0"}))
    assert main(["replay", str(folder), "t1", "--out", str(tmp_path / "replay")]) == 1
    out = capsys.readouterr().out
    assert "DIFFERS" in out and "the replay's data differ from the trial's (fingerprint" in out, out
    assert "the replay ran elsewhere than the trial (device cuda:0 -> cpu)" in out, out
