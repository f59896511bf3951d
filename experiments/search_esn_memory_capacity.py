"""Memory capacity as a search metric: the reservoir settings of `esn_memory_capacity` searched for the largest
val/memory_capacity (the test split stays unseen).

rnnlab tune search_esn_memory_capacity      (40 random trials, 2 at a time, no scheduler, W&B offline)
"""

from pathlib import Path

from rnnlab.experiment import extend

# experiments/esn_memory_capacity.py with a validation split to select on, searched
config = extend(
    Path(__file__).with_name("esn_memory_capacity.py"),
    {
        "metric": "val/memory_capacity",
        "mode": "max",
        "data.val_fraction": 0.2,
        "search.samples": 40,
        "search.concurrency": 2,
        "search.sampler": "random",
        "search.scheduler": "none",
    },
)


def search_space(trial) -> dict:
    """The reservoir's memory knobs: spectral radius, input scaling and leak rate."""
    return {
        "model.esn.spectral_radius": trial.suggest_float("model.esn.spectral_radius", 0.5, 1.2),
        "model.esn.input_scaling": trial.suggest_float("model.esn.input_scaling", 1e-3, 1.0, log=True),
        "model.esn.leak_rate": trial.suggest_float("model.esn.leak_rate", 0.3, 1.0),
    }
