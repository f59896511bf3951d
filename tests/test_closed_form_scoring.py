"""A closed-form fit scores its train split from the features it harvested (`fit_closed_form(..., keep_mb)` and
`train.score_outputs`): the same metrics, value for value, as a second pass over the split (`run_epoch`)."""

import pytest
import torch

from rnnlab.batches import iterate_batches
from rnnlab.config import Config, DataConfig, TrainConfig
from rnnlab.models import build_model, model_config
from rnnlab.models.esn import ESNConfig
from rnnlab.train import run_epoch, score_outputs
from rnnlab.trial import prepare_data

CASES = {  # every task an ESN's ridge readout fits, on a built-in dataset: (name, task, metric, model layout, data)
    "forecast": ("mackey_glass", "forecast", "val/rmse", {}, {}),
    "series": ("narma10", "series", "val/rmse", {}, {}),
    "memory": ("memory_capacity", "memory_capacity", "val/memory_capacity", {}, {"max_delay": 10}),
    "regression": ("adding", "regression", "val/rmse", {"num_layers": 2}, {}),
    "classification": ("digits", "classification", "val/acc", {"bidirectional": True}, {}),
    "copy": ("copy", "copy", "val/acc", {}, {}),
}


def fitted(case: str, keep_mb: int):
    name, task, metric, layout, settings = CASES[case]
    torch.manual_seed(0)
    cfg = Config(
        metric=metric,
        mode="min" if metric.endswith("rmse") else "max",
        model=model_config("esn", esn=ESNConfig(units=40, washout=5 if task != "classification" else 0), **layout),
        data=DataConfig(source="builtin", name=name, task=task, num_samples=120, **settings),
        train=TrainConfig(batch_size=16, epochs=1),
    )
    data = prepare_data(cfg)
    model = build_model(cfg, data.input_size, data.vocab_size, data.output_size, data.task)
    model.train(False)
    outputs = model.fit_closed_form(iterate_batches(data.train, cfg.train.batch_size, "cpu"), keep_mb)
    return cfg, data, model, outputs


@pytest.mark.parametrize("case", CASES)
def test_the_train_metrics_from_the_harvest_equal_a_second_pass(case):
    cfg, data, model, outputs = fitted(case, keep_mb=256)
    assert outputs is not None
    from_harvest = score_outputs(model, data, "train", cfg, outputs)
    second_pass = run_epoch(model, data, "train", cfg, "cpu")
    assert from_harvest.keys() == second_pass.keys() and len(from_harvest) >= 2
    assert from_harvest == second_pass  # exactly: the same features through the same head and metrics


def test_features_over_the_budget_are_not_kept():
    *_, outputs = fitted("forecast", keep_mb=0)
    assert outputs is None  # the caller runs the split again (train.fit)
