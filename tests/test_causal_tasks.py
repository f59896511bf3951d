"""A bidirectional encoder is refused on a task whose target at step t may depend on the inputs up to t only
(`Task.causal`): it would see the later inputs the target is made of (forecast, lm) or that the task's map must
not read (series, memory_capacity), and report a test metric too good to be true."""

from __future__ import annotations

from pathlib import Path

import pytest

from rnnlab.cli import main
from rnnlab.experiment import load_experiment
from rnnlab.tasks import TASKS

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
CAUSAL = {"lm", "forecast", "series", "memory_capacity"}
LSTM = ["model.family=lstm", "model.hidden_size=8", "model.bidirectional=true", "tracking.mode=disabled"]


def test_causal_flags():
    """Later inputs hold the target (forecast, lm) or lie outside a causal map (series); elsewhere they do not:
    a sequence-level target, a tag per token, or the copy task's recall steps (whose later inputs are blanks)."""
    assert {name for name, task in TASKS.items() if task.causal} == CAUSAL


@pytest.mark.parametrize(
    "experiment,overrides",
    [
        ("esn_mackey_glass.py", ["metric=train/rmse"]),  # forecast
        ("esn_narma10.py", []),  # series
        ("esn_memory_capacity.py", []),  # memory_capacity
    ],
)
def test_a_bidirectional_model_on_a_causal_task_is_refused_before_any_work(
    experiment, overrides, tmp_path, capsys, monkeypatch
):
    cache = tmp_path / "cache"
    monkeypatch.setenv("RNNLAB_CACHE", str(cache))
    out = tmp_path / "run"
    code = main(["run", str(EXPERIMENTS / experiment), "--out", str(out), "--set", *LSTM, *overrides])
    err = capsys.readouterr().err
    assert code == 2 and "model.bidirectional" in err and "unidirectional" in err
    assert not out.exists() and not cache.exists()  # refused before the data were prepared


def test_no_experiment_relies_on_the_leak():
    for path in sorted(EXPERIMENTS.glob("*.py")):
        cfg = load_experiment(str(path)).config
        assert not (TASKS[cfg.data.task].causal and getattr(cfg.model, "bidirectional", False)), path.name
