"""Ray Tune, and only here: `rnnlab tune` searches an experiment's space with Optuna and runs the trials on Ray.

`driver.py` is the driver (checks, scheduler, Tuner, resume), `searcher.py` the Optuna searcher, `trainable.py`
what runs in a Ray worker (one trial around run_trial) and `progress.py` the search's status line in the terminal.
"""

from rnnlab.tune.driver import connect, make_searcher, run_search

__all__ = ["connect", "make_searcher", "run_search"]
