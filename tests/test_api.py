"""The Python API as a notebook uses it: a run, a search of 2 trials on a real local Ray, its table; each call leaves
the caller's process as it found it."""

import json
import logging
import math
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import rnnlab

ROOT = Path(__file__).resolve().parent.parent
TINY = {"train.epochs": 2, "train.max_batches": 4, "data.num_samples": 600}


def process_state() -> dict:
    """What a call must give back: environment, cwd, Optuna's verbosity, torch threads, RNGs, logging, signals."""
    import numpy as np
    import optuna
    import torch

    return {
        "environ": dict(os.environ),
        "cwd": os.getcwd(),
        "optuna": optuna.logging.get_verbosity(),
        "threads": torch.get_num_threads(),
        "random": random.getstate(),
        "numpy": np.random.get_state()[1].tolist(),
        "torch_rng": torch.get_rng_state().tolist(),
        "root": (logging.root.level, list(logging.root.handlers)),
        "rnnlab": (logging.getLogger("rnnlab").level, list(logging.getLogger("rnnlab").handlers)),
        "signals": {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)},
    }


def changed(before: dict, after: dict) -> list[str]:
    keys = [key for key in before if before[key] != after[key]]
    if "environ" in keys:  # name the variables
        keys += sorted(
            k for k in {*before["environ"], *after["environ"]} if before["environ"].get(k) != after["environ"].get(k)
        )
    return keys


def test_import_is_cheap_and_has_a_version():
    code = "import sys, rnnlab; print(rnnlab.__version__); print(sorted(m for m in ('torch', 'ray', 'optuna', 'wandb', 'numpy') if m in sys.modules))"  # noqa: E501
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", check=True)
    version, loaded = done.stdout.splitlines()
    assert version[0].isdigit() and loaded == "[]"


def test_run_returns_the_result_and_leaves_the_process_as_found(tmp_path):
    before = process_state()
    result = rnnlab.run("digits_lstm", overrides={**TINY, "train.threads": 1}, out=tmp_path / "run")
    assert changed(before, process_state()) == []
    assert result == json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["status"] == "completed" and 0.0 <= result["test/acc"] <= 1.0
    with pytest.raises(rnnlab.ConfigError, match="optim.learning_rate"):
        rnnlab.run("digits_lstm", overrides={"optim.learning_rate": "fast"}, out=tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    with pytest.raises(rnnlab.ConfigError, match="already holds a run"):
        rnnlab.run("digits_lstm", overrides=TINY, out=tmp_path / "run")


def test_run_takes_a_config_built_in_python(tmp_path):
    from rnnlab.config import Config, DataConfig, TrainConfig
    from rnnlab.models import model_config

    cfg = Config(
        name="nb",
        metric="val/acc",
        mode="max",
        model=model_config("gru", hidden_size=16),
        data=DataConfig(num_samples=400),
        train=TrainConfig(epochs=1, max_batches=2),
    )
    result = rnnlab.run(cfg, out=tmp_path / "nb")
    assert result["status"] == "completed" and result["parameters"] > 0
    assert json.loads((tmp_path / "nb" / "config.json").read_text())["flat"]["model.family"] == "gru"


def test_search_of_two_trials_and_its_table(tmp_path, capfd):
    import ray

    assert not ray.is_initialized()
    before = process_state()
    overrides = {
        **{k: str(v) for k, v in TINY.items()},
        "search.samples": 2,
        "search.concurrency": 2,
        "search.grace_period": 1,
    }
    summary = rnnlab.search("search_digits", overrides=overrides, name="nb", storage=tmp_path)
    assert changed(before, process_state()) == []
    assert not ray.is_initialized()  # the Ray it started is shut down
    printed = capfd.readouterr()
    assert "Trial status" not in printed.out + printed.err and "Checkpoint successfully" not in printed.err

    table = summary.trials
    assert summary.folder == tmp_path / "nb" and len(table) == 2
    assert set(table["state"]) <= {"COMPLETE", "PRUNED"} and sum(summary.counts.values()) == 2
    for row in table.to_dict("records"):
        result = json.loads((summary.folder / "trials" / row["trial_id"] / "result.json").read_text())
        assert row["status"] == result["status"]
        for key in ("val/acc", "val/loss", "time/total_s"):
            assert math.isclose(row[key], result[key]), key
        assert row["model.family"] in ("lstm", "gru") and row["optim.learning_rate"] > 0
    if summary.best_trial is not None:
        best = table[table["trial_id"] == summary.best_trial].iloc[0]
        assert math.isclose(best["val/acc"], summary.best_value) and best["state"] == "COMPLETE"
        assert summary.best_params["model.family"] == best["model.family"]
    assert rnnlab.load_search(summary.folder).equals(table)  # read back without Ray, the same

    with pytest.raises(rnnlab.ConfigError, match="already holds a search"):
        rnnlab.search("search_digits", overrides=overrides, name="nb", storage=tmp_path)


@pytest.mark.parametrize(
    "call, field",
    [
        (lambda: rnnlab.run("digits_lstm", TINY, out=""), "--out"),  # Path(""): the run went into the current folder
        (lambda: rnnlab.run("digits_lstm", TINY, out="  "), "--out"),
        (lambda: rnnlab.search("search_digits", name="  "), "--name"),  # a search folder named by two blanks
        (lambda: rnnlab.search("search_digits", storage=""), "--storage"),  # searches in the current folder
    ],
)
def test_empty_folder_arguments_are_refused(call, field, tmp_path, monkeypatch):
    from rnnlab.config import ConfigError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as refused:
        call()
    assert refused.value.field == field
    assert list(tmp_path.iterdir()) == []  # nothing written, here or anywhere below
