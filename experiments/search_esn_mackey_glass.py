"""A search of many short trials: an ESN on one-step Mackey-Glass, each trial one closed-form ridge fit.

rnnlab tune search_esn_mackey_glass      (200 random trials, 2 at a time, no scheduler, W&B offline)
Each Ray worker runs trial after trial (search.reuse_workers): a fresh worker per trial costs more than the trial.
"""

from pathlib import Path

from rnnlab.experiment import extend

# experiments/esn_mackey_glass.py with a validation split to select on (the test split stays unseen) and a washout
# short enough for the shrunk run of tests/test_experiments.py, searched
config = extend(
    Path(__file__).with_name("esn_mackey_glass.py"),
    {
        "metric": "val/rmse",
        "data.val_fraction": 0.2,
        "model.esn.washout": 50,
        "search.samples": 200,
        "search.concurrency": 2,
        "search.sampler": "random",
        "search.scheduler": "none",
        "search.cpus_per_trial": 1.0,
    },
)


def search_space(trial) -> dict:
    """An ESN's four knobs (reservoirpy's sr, lr, input_scaling, ridge), on log scales."""
    return {
        "model.esn.spectral_radius": trial.suggest_float("model.esn.spectral_radius", 0.1, 1.5, log=True),
        "model.esn.leak_rate": trial.suggest_float("model.esn.leak_rate", 0.05, 1.0, log=True),
        "model.esn.input_scaling": trial.suggest_float("model.esn.input_scaling", 0.1, 2.0, log=True),
        "model.esn.ridge": trial.suggest_float("model.esn.ridge", 1e-9, 1e-2, log=True),
    }
