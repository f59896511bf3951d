"""Memory capacity as a task and its metric: a 100-unit ESN with small input scaling lands where the literature
puts it (MC <= N, Jaeger 2002) and equals reservoirpy's memory capacity on the same reservoir weights."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rnnlab.checkpoint import load_latest
from rnnlab.cli import main
from rnnlab.config import Config, ConfigError, DataConfig
from rnnlab.data import DATASETS, DataError
from rnnlab.experiment import load_experiment
from rnnlab.registries import apply_overrides
from rnnlab.tasks import TASKS, load_task_data
from rnnlab.tracking.wandb_log import read_records
from rnnlab.trial import check_task, run_trial

EXPERIMENT = "esn_memory_capacity"  # the experiment file's config, not a copy of it


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNLAB_CACHE", str(tmp_path / "cache"))


def memory_config(**overrides) -> Config:
    return apply_overrides(load_experiment(EXPERIMENT).config, overrides)


def test_the_dataset_holds_the_delayed_inputs():
    cfg = DataConfig(name="memory_capacity", task="memory_capacity", num_samples=50, max_delay=5)
    rows = DATASETS["memory_capacity"](cfg, 0)
    u, delayed = np.array(rows["inputs"]), np.array(rows["target"])
    assert delayed.shape == (50, 5)
    for k in range(1, 6):
        np.testing.assert_array_equal(delayed[k:, k - 1], u[:-k])  # target k of row t is u[t-k]
    with pytest.raises(DataError) as err:
        load_task_data(DataConfig(name="memory_capacity", task="memory_capacity", max_delay=0), 0)
    assert err.value.field == "data.max_delay"


def test_memory_capacity_is_a_search_metric():
    cfg = apply_overrides(memory_config(), {"metric": "val/memory_capacity", "mode": "max"})
    check_task(cfg, TASKS["memory_capacity"])  # val/memory_capacity is reported, watched towards its maximum
    with pytest.raises(ConfigError, match="maximum") as err:
        check_task(apply_overrides(cfg, {"mode": "min"}), TASKS["memory_capacity"])
    assert err.value.field == "mode"


def reservoirpy_memory_capacity(cfg: Config, state: dict) -> float:
    """reservoirpy's own memory capacity of a reservoirpy ESN holding the trial's weights, on the trial's series
    and split (the last test_fraction of the rows held out, the first max_delay training steps as warm-up)."""
    from reservoirpy.nodes import Reservoir, Ridge
    from reservoirpy.observables import memory_capacity

    W, Win, bias = (state[f"encoder.layers.0.0.{name}"].numpy() for name in ("weight", "input_weight", "bias"))
    model = Reservoir(W=W, Win=Win, bias=bias, lr=cfg.model.esn.leak_rate, activation="tanh")
    model = model >> Ridge(ridge=cfg.model.esn.ridge)
    raw = DATASETS["memory_capacity"](cfg.data, cfg.seed)  # the very series the trial was given
    u = np.concatenate([np.array(raw["target"][0])[::-1], np.array(raw["inputs"])])  # u[0], ..., u[K+T-1]
    test = round(cfg.data.num_samples * cfg.data.test_fraction)
    return float(memory_capacity(model, k_max=cfg.data.max_delay, series=u[:, None], test_size=test))


def test_a_100_unit_esn_has_the_memory_capacity_of_reservoirpy_on_the_same_weights(tmp_path):
    cfg = memory_config()
    assert cfg.model.esn.units == 100 and cfg.model.esn.input_scaling <= 0.01 and cfg.data.max_delay == 200
    result = run_trial(cfg, None, tmp_path / "run")
    ours = result["test/memory_capacity"]
    assert json.loads((tmp_path / "run" / "result.json").read_text())["test/memory_capacity"] == ours
    assert 20 < ours < cfg.model.esn.units, ours  # Jaeger (2002): MC <= N (measured: 38.8)
    theirs = reservoirpy_memory_capacity(cfg, load_latest(tmp_path / "run" / "checkpoints")["model"])
    assert abs(ours - theirs) <= 0.01 * theirs, (ours, theirs)  # measured: 38.80 vs 38.72


def test_memory_capacity_is_bounded_by_the_units_and_grows_with_them(tmp_path):
    """Jaeger (2002): MC <= N. Small reservoirs, short series: the bound holds and more units remember more."""
    shrunk = {"data.num_samples": 3000, "data.max_delay": 40, "model.esn.washout": 40}
    capacity = {}
    for units in (10, 20):
        result = run_trial(memory_config(**shrunk, **{"model.esn.units": units}), None, tmp_path / f"n{units}")
        capacity[units] = result["test/memory_capacity"]
        assert 3.0 < capacity[units] <= units + 0.5, capacity  # + estimation bias: about max_delay / test steps
    assert capacity[20] > capacity[10], capacity


def test_memory_capacity_reaches_result_json_and_the_wandb_summary(tmp_path, monkeypatch):
    """Through the CLI, shrunk: the W&B run's summary holds the test/memory_capacity of result.json."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    shrunk = ["data.num_samples=1500", "data.max_delay=30", "model.esn.washout=30", "model.esn.units=30"]
    args = ["run", EXPERIMENT, "--out", str(out), "--set", "tracking.mode=offline"]
    assert main([*args, *(x for s in shrunk for x in ("--set", s))]) == 0
    result = json.loads((out / "result.json").read_text())
    assert 0 < result["test/memory_capacity"] <= 30
    records = read_records(next((out / "wandb").glob("offline-run-*/*.wandb")))
    summary = {}
    for r in records:
        if r.WhichOneof("record_type") == "summary":
            summary.update({u.key: json.loads(u.value_json) for u in r.summary.update})
    assert summary["test/memory_capacity"] == pytest.approx(result["test/memory_capacity"])


@pytest.mark.slow
def test_a_search_maximises_val_memory_capacity(tmp_path):
    """`rnnlab tune` on a real local Ray and Optuna journal: each trial's objective is its val/memory_capacity."""
    from rnnlab.search_folder import load_study

    shrunk = ["data.num_samples=2000", "data.max_delay=30", "model.esn.washout=30", "model.esn.units=30"]
    args = ["tune", "search_esn_memory_capacity", "--storage", str(tmp_path), "--name", "mc", "--samples", "3"]
    assert (
        main([*args, "--concurrency", "1", *(x for s in [*shrunk, "tracking.mode=disabled"] for x in ("--set", s))])
        == 0
    )
    study = load_study(tmp_path / "mc")
    assert study.direction.name == "MAXIMIZE" and len(study.trials) == 3
    for t in study.trials:
        result = json.loads((tmp_path / "mc" / "trials" / t.user_attrs["ray_trial_id"] / "result.json").read_text())
        assert t.state.name == "COMPLETE" and t.value == pytest.approx(result["val/memory_capacity"])
        assert 0 < t.value <= 30
