"""Small and empty splits of every task: an empty val or test split prepares (no raw reshaping error), a monitored
metric on an empty split is refused naming the fraction, and a regression split whose targets have no spread (one
row) is refused instead of reporting nrmse = rmse / 0."""

from __future__ import annotations

from pathlib import Path

import pytest

from rnnlab.cli import main
from rnnlab.config import DataConfig
from rnnlab.data import BUILTIN_TASKS
from rnnlab.tasks import load_task_data

ADDING = str(Path(__file__).resolve().parents[1] / "experiments" / "adding_lstm.py")
TINY = ["tracking.mode=disabled", "train.epochs=1", "model.hidden_size=8"]
EVERY_TASK = sorted({(name, task) for name, tasks in BUILTIN_TASKS.items() for task in tasks})


@pytest.mark.parametrize("name,task", EVERY_TASK)
@pytest.mark.parametrize("empty", ["val", "test"])
def test_an_empty_split_of_every_task_prepares(name, task, empty):
    cfg = DataConfig(source="builtin", name=name, task=task, num_samples=64, seq_len=12, **{f"{empty}_fraction": 0.0})
    data = load_task_data(cfg, 0)
    split = getattr(data, empty)
    if data.task == "recall":  # val and test cue the stored train rows: never empty
        assert len(split.targets) == len(data.train.targets)
        return
    assert split.empty and split.inputs.shape[0] == split.targets.shape[0] == 0
    assert split.inputs.shape[2:] == data.train.inputs.shape[2:]  # the feature width survives an empty split


@pytest.mark.parametrize(
    "overrides,field",
    [
        (["data.num_samples=40"], "metric"),  # val/mse monitored on no rows
        (["data.num_samples=10", "metric=train/mse"], "data.test_fraction"),  # one test row: std 0
        (["data.num_samples=5", "metric=train/mse"], "data.test_fraction"),  # no test row
    ],
)
def test_adding_without_a_validation_split_is_refused_clearly(overrides, field, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["run", ADDING, "--out", str(out), "--set", *TINY, "data.val_fraction=0", *overrides])
    err = capsys.readouterr().err
    assert code == 2 and f"error: {field}:" in err and "Traceback" not in err, err
    assert not out.exists()


def test_a_one_row_test_split_reports_no_nrmse(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["run", ADDING, "--out", str(out), "--set", *TINY, "data.num_samples=10", "metric=train/mse"])
    err = capsys.readouterr().err
    assert code == 2 and "undefined" in err and "1 now" in err, err
    assert not out.exists()


@pytest.mark.parametrize("split", ["val", "test"])
def test_a_one_row_classification_split_is_refused(split, tmp_path, capsys):
    """digits (1797 rows) with a fraction that rounds to one row. Before: test/acc=1 reported as the result of a
    barely trained model (or val/acc 0 each epoch, selecting epoch 1). Now: exit 2 naming the fraction, no folder."""
    out = tmp_path / "run"
    code = main(["run", "digits_lstm", "--out", str(out), "--set", *TINY, f"data.{split}_fraction=0.0006"])
    err = capsys.readouterr().err
    assert code == 2 and f"data.{split}_fraction: the {split} split has 1 row" in err, err[-2000:]
    assert f"{split}/acc could only be 0 or 1" in err and "Traceback" not in err
    assert not out.exists()
