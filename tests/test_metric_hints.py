"""A `metric` a run cannot monitor is refused before any work, and the message says why when the metric exists
elsewhere: a test/* metric (scored once, at the end) or another task's metric (val/memory_capacity on `series`).
Before: both read "'X' is not reported for task ...", although test/nrmse is in every forecast's result.json."""

from pathlib import Path

import pytest

from rnnlab.cli import main

ROOT = Path(__file__).resolve().parent.parent
NARMA = str(ROOT / "experiments" / "esn_narma10.py")


@pytest.mark.parametrize(
    "metric, words",
    [
        ("test/nrmse", ["scored once, at the end", "val/nrmse"]),
        ("val/memory_capacity", ["data.task=memory_capacity"]),
        ("val/bogus", ["valid: train/loss"]),
    ],
)
def test_an_unmonitorable_metric_says_why(metric, words, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["run", NARMA, "--out", str(out), "--set", "tracking.mode=disabled", f"metric={metric}"])
    err = capsys.readouterr().err
    assert code == 2 and "metric:" in err and "Traceback" not in err, err[-2000:]
    assert all(w in err for w in words), err[-2000:]
    assert not out.exists()
