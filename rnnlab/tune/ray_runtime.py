"""The Ray a search runs on: a cluster it joins, or a local Ray of its own, started while the search's end is
imported and shut down while its report is written.
"""

from __future__ import annotations

import contextlib
import gc
import os
import threading
from pathlib import Path

from rnnlab import console
from rnnlab.tune.stop_signals import STANDING_DOWN, keep_sigterm_handler


def connect(address: str | None) -> bool:
    """Join the cluster at `address` (or RAY_ADDRESS's, as in a Ray Job), or start a local Ray of this search's own
    whose workers can import rnnlab from this checkout. True when it started that local Ray."""
    import ray

    if ray.is_initialized():
        return False
    # log_to_driver: a worker's warnings and errors reach this terminal; below -v a worker prints nothing else
    level = console.ray_logging_level()
    if address or os.environ.get("RAY_ADDRESS"):
        with keep_sigterm_handler():  # SIGTERM stops the search as SIGINT does (stop_signals.py)
            ray.init(address=address, log_to_driver=True, logging_level=level)
        return False
    root = str(Path(__file__).resolve().parents[2])  # the checkout holding the rnnlab package
    saved = os.environ.get("PYTHONPATH")
    paths = [root, *filter(None, (saved or "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))  # the raylet it starts passes it to workers
    try:  # "local": not the cluster a `ray start` on this machine last recorded, which ray.init() would join
        with keep_sigterm_handler():
            ray.init(
                address="local",
                include_dashboard=False,
                dashboard_host="127.0.0.1",
                log_to_driver=True,
                logging_level=level,
            )
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved
    return True


# What the end of a search imports, each a second or more on a loaded machine: the report's plots (matplotlib,
# Optuna's matplotlib figures, scikit-learn under Optuna's fANOVA importances) and wandb for the search's Table
REPORT_MODULES = ("matplotlib.pyplot", "optuna.visualization.matplotlib", "sklearn.ensemble")


def import_while_ray_starts(tracking: bool) -> threading.Thread:
    """Import the search's end (REPORT_MODULES, wandb if tracking is on) in a thread while Ray starts: `ray.init`
    waits on the processes it launches, 3-5 s with the driver idle, measured, and the report's plots then took
    3.3 s instead of 1.2 s. A module that fails to import is left for its user to report."""
    import importlib

    def run() -> None:
        for name in [*REPORT_MODULES, *(["wandb"] if tracking else [])]:
            with contextlib.suppress(Exception):
                importlib.import_module(name)

    thread = threading.Thread(target=run, name="import-while-ray-starts", daemon=True)
    thread.start()
    return thread


def shut_down_in_background(started: bool) -> threading.Thread | None:
    """Shut down the local Ray this search started while its report is written: the teardown waits on each of
    Ray's processes in turn (1-2.5 s on a loaded machine, measured), then did so at exit, after the report."""
    if not started:
        return None
    import ray

    STANDING_DOWN.set()  # its raylet going away is no sign that a SIGTERM took Ray down (stop_signals.py)
    # Ray's objects left in garbage cycles (a restored Tuner's) go now, while Ray is up, not at some later
    # collection in the main thread: a driver touching its core worker after the shutdown is ended by Ray with exit
    # code 1 ("The core worker has already been shutdown"), as a resumed and extended search once was, finished
    gc.collect()
    stopping = threading.Thread(target=ray.shutdown, name="ray-shutdown")
    stopping.start()
    return stopping
