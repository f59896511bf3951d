"""Ray Tune, and only here: `rnnlab tune` searches an experiment's space with Optuna and runs the trials on Ray.

`driver.py` is the driver (checks, scheduler, Tuner, resume), `ray_runtime.py` the Ray it runs on, `searcher.py`
the Optuna searcher, `trainable.py` what runs in a Ray worker (one trial around run_trial), `controller.py` Ray's
trial controller with two faults made right, `stop_signals.py` SIGTERM as a stop, and `progress.py` the search's
status line in the terminal.
"""

__all__ = ["connect", "make_searcher", "run_search"]


def __getattr__(name: str):
    """The driver's names, imported on first use: a Ray worker imports only trainable.py, not the driver's Optuna
    searcher and storage (about 1 s of a worker's start under load)."""
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from rnnlab.tune import driver

    return getattr(driver, name)
