"""Series data that would leave a split nothing to score is refused before any work, through the CLI: exit 2, the
field, the split and its length named, no run folder left. Before: a washout as long as the train split gave a raw
traceback or status `diverged`, one as long as the test split NaN test metrics in result.json."""

import json
from pathlib import Path

import pytest

from rnnlab.cli import main

ROOT = Path(__file__).resolve().parent.parent
NARMA = str(ROOT / "experiments" / "esn_narma10.py")
MEMORY = str(ROOT / "experiments" / "esn_memory_capacity.py")
SMALL = ["tracking.mode=disabled", "model.esn.units=20"]
# 2000 steps: train 1200, val 200, test 600 (data.test_fraction=0.3)
NARMA_2000 = ["data.num_samples=2000", "data.test_fraction=0.3"]


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNLAB_CACHE", str(tmp_path / "cache"))


CASES = {
    "washout_of_the_train_split": (
        [*NARMA_2000, "model.esn.washout=1200"],
        ["model.esn.washout", "train split", "1200 steps"],
    ),
    "washout_longer_than_the_val_split": (
        [*NARMA_2000, "model.esn.washout=300"],
        ["model.esn.washout", "val split", "200 steps"],
    ),
    "washout_longer_than_the_test_split": (
        ["data.num_samples=2000", "data.test_fraction=0.05", "model.esn.washout=150"],
        ["model.esn.washout", "test split", "100 steps"],
    ),
    "washout_as_long_as_every_window": (
        [*NARMA_2000, "data.window=50", "model.esn.washout=50"],
        ["model.esn.washout", "train split", "50 steps"],
    ),
    "window_longer_than_the_series": (
        [*NARMA_2000, "data.window=5000", "model.esn.washout=10"],
        ["data.window", "longer than", "train"],
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_series_split_with_nothing_to_score_is_refused(case, tmp_path, capsys):
    sets, words = CASES[case]
    out = tmp_path / "run"
    code = main(["run", NARMA, "--out", str(out), "--set", *SMALL, *sets])
    err = capsys.readouterr().err
    assert code == 2, err[-2000:]
    assert all(w in err for w in words) and "Traceback" not in err, err[-2000:]
    assert not out.exists()


def test_a_washout_just_below_every_split_runs_and_scores_each(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["run", NARMA, "--out", str(out), "--set", *SMALL, *NARMA_2000, "model.esn.washout=190"])
    assert code == 0, capsys.readouterr().err[-2000:]
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "completed"
    assert 0 < result["val/nrmse"] < 2 and 0 < result["test/nrmse"] < 2  # ten scored val steps


def test_more_delays_than_a_split_has_steps_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    sets = ["data.num_samples=300", "data.max_delay=60", "model.esn.washout=10"]
    code = main(["run", MEMORY, "--out", str(out), "--set", *SMALL, *sets])
    err = capsys.readouterr().err
    assert code == 2, err[-2000:]
    assert "data.max_delay" in err and "test split's 60 steps" in err and "Traceback" not in err, err[-2000:]
    assert not out.exists()
    code = main(["run", MEMORY, "--out", str(out), "--set", *SMALL, *sets[:1], "data.max_delay=59", sets[2]])
    assert code == 0 and json.loads((out / "result.json").read_text())["status"] == "completed"


def short_and_long_series(path: Path) -> Path:
    """100 series of a driven linear filter: every tenth 200 steps long, the other 90 only 15 steps."""
    import numpy as np

    rng = np.random.default_rng(1)
    with path.open("w") as f:
        for i in range(100):
            u = rng.uniform(-1, 1, 200 if i % 10 == 0 else 15)
            y = 0.5 * u
            y[1:] += 0.3 * u[:-1]
            f.write(json.dumps({"inputs": u.tolist(), "target": y.tolist()}) + "\n")
    return path


def test_series_no_longer_than_the_washout_are_counted_in_the_warning_and_the_record(tmp_path, capsys):
    """A washout of 20 steps over series most of which have 15. Before: a closed-form fit batch holding only short
    series ended in a raw RuntimeError (reshape of 0 elements), and a mixed batch's empty scoring set made the metrics
    NaN ("diverged"); a dataset that survived both dropped the short series without a word. Now they are left out
    of fit and metrics, the warning counts them per split, and result.json holds the counts."""
    data = short_and_long_series(tmp_path / "many.jsonl")
    sets = ["data.source=local", f"data.name={data}", "data.rows=series", "model.esn.washout=20"]
    out = tmp_path / "run"
    code = main(["run", NARMA, "--out", str(out), "--set", *SMALL, *sets])
    err = capsys.readouterr().err
    assert code == 0 and "Traceback" not in err, err[-3000:]
    result = json.loads((out / "result.json").read_text())
    unscored = result["data/unscored_sequences"]
    assert set(unscored) == {"train", "val", "test"} and sum(count for _, count in unscored.values()) == 100
    assert sum(short for short, _ in unscored.values()) == 90, unscored
    said = ", ".join(f"{short} of {count} {name}" for name, (short, count) in unscored.items())
    assert f"model.esn.washout=20 leaves {said} sequences no step to fit or score" in err, err[-3000:]
    assert result["status"] == "completed" and result["test/nrmse"] < 0.1, result
