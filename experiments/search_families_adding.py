"""Which recurrent family solves the adding problem (T=50) best: gated RNNs, IndRNN, an echo state network, and
minGRU/minLSTM (gates from the input alone, trained through a parallel scan).

Each family brings its own parameters: IndRNN its recurrent gradient bound, the ESN its reservoir (a closed-form
ridge readout, so one epoch). rnnlab tune search_families_adding --samples 16
"""

from pathlib import Path

from rnnlab.experiment import extend

FAMILIES = ["lstm", "gru", "indrnn", "esn", "mingru", "minlstm"]

# experiments/adding_lstm.py, shorter sequences and runs, with the search's own settings
config = extend(
    Path(__file__).with_name("adding_lstm.py"),
    {
        "model.hidden_size": 64,
        "data.seq_len": 50,
        "data.num_samples": 4000,
        "train.epochs": 8,
        "train.patience": 0,
        "search.samples": 16,
        "search.concurrency": 2,
        "search.sampler": "tpe",
        "search.scheduler": "asha",
        "search.grace_period": 2,
    },
)


def search_space(trial) -> dict:
    from rnnlab.models import MODELS  # families the zoo has registered so far

    family = trial.suggest_categorical("model.family", [f for f in FAMILIES if f in MODELS])
    space = {"model.family": family}
    if family == "esn":
        space["model.esn.units"] = trial.suggest_categorical("model.esn.units", [100, 200, 400])
        space["model.esn.spectral_radius"] = trial.suggest_float("model.esn.spectral_radius", 0.5, 1.2)
        space["model.esn.leak_rate"] = trial.suggest_float("model.esn.leak_rate", 0.1, 1.0)
        space["model.esn.ridge"] = trial.suggest_float("model.esn.ridge", 1e-8, 1e-2, log=True)
        return space
    space["model.hidden_size"] = trial.suggest_categorical("model.hidden_size", [32, 64, 128])
    space["optim.learning_rate"] = trial.suggest_float("optim.learning_rate", 5e-4, 1e-2, log=True)
    if family == "indrnn":
        space["model.num_layers"] = trial.suggest_int("model.num_layers", 1, 3)
        space["model.indrnn.recurrent_gamma"] = trial.suggest_float("model.indrnn.recurrent_gamma", 1.5, 10.0)
    return space
