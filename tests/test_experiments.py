"""Every experiment file runs, shrunk by overrides of its real config (no second copy of any experiment)."""

import optuna
import pytest

from rnnlab.experiment import available, load_experiment
from rnnlab.registries import apply_overrides
from rnnlab.trial import run_trial

SHRINK = {"train.epochs": 1, "train.max_batches": 2, "train.batch_size": 16}


def shrink(config):
    overrides = dict(SHRINK)
    if config.data.source == "builtin":
        overrides["data.num_samples"] = min(config.data.num_samples, 300)
    if config.eval.free_run_steps:  # a free run that fits the shrunk test series
        overrides.update({"eval.free_run_steps": 5, "eval.free_run_warmup": 10})
    if hasattr(config.model, "esn"):  # a washout longer than the shrunk splits would leave no step to score
        overrides["model.esn.washout"] = min(config.model.esn.washout, 20)
    if config.data.task == "memory_capacity":  # fewer delays than the shrunk test split (60 steps) has steps
        overrides["data.max_delay"] = min(config.data.max_delay, 20)
    return overrides


@pytest.mark.parametrize("name", available())
def test_experiment_runs_shrunk(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # from any folder, as `rnnlab run NAME` finds it (its data too)
    experiment = load_experiment(name)
    config = apply_overrides(experiment.config, shrink(experiment.config))
    if experiment.search_space is not None:  # one sample of the search space, as a search trial would get it
        trial = optuna.create_study(direction="maximize" if config.mode == "max" else "minimize").ask()
        config = apply_overrides(config, experiment.search_space(trial))
        config = apply_overrides(config, shrink(config))
    result = run_trial(config, None, tmp_path / name)
    assert result["status"] in ("completed", "early_stopped"), result
    assert any(key.startswith("test/") for key in result)
