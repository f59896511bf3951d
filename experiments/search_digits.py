"""A small local search on the built-in digits: LSTM vs GRU, each with its own knobs; ~8 trials in 2-3 minutes.

rnnlab tune search_digits      (2 trials at a time, ASHA, W&B offline into each trial's folder)
"""

from pathlib import Path

from rnnlab.experiment import extend

# experiments/digits_lstm.py, shorter, with the search's own settings
config = extend(
    Path(__file__).with_name("digits_lstm.py"),
    {
        "train.epochs": 4,
        "search.samples": 8,
        "search.concurrency": 2,
        "search.sampler": "tpe",
        "search.scheduler": "asha",
        "search.grace_period": 2,
        "search.cpus_per_trial": 1.0,
    },
)


def search_space(trial) -> dict:
    """Shared knobs, then a family choice; dropout between stacked LSTM layers and GRU's width are conditional."""
    space = {
        "optim.learning_rate": trial.suggest_float("optim.learning_rate", 1e-3, 3e-2, log=True),
        "model.family": trial.suggest_categorical("model.family", ["lstm", "gru"]),
    }
    if space["model.family"] == "lstm":
        space["model.num_layers"] = trial.suggest_int("model.num_layers", 1, 2)
        if space["model.num_layers"] > 1:
            space["model.dropout"] = trial.suggest_float("model.dropout", 0.0, 0.3)
    else:
        space["model.hidden_size"] = trial.suggest_categorical("model.hidden_size", [32, 64, 128])
    return space
