"""What a person reads: rnnlab's status through one logger and one handler, the libraries' own output turned down.

Status goes through the `rnnlab` logger; its one handler writes to stderr (info as is, warnings and errors prefixed
`rnnlab: warning:` / `rnnlab: error:`). Results and tables a command was asked for go to stdout. By default Ray
Tune's tables, Ray's and Optuna's notices and wandb's banners stay hidden; `-v` (the VERBOSE level, DEBUG on the
`rnnlab` logger) brings them back, `-q` keeps warnings and errors only. Everything set here is restored on exit.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator

logger = logging.getLogger("rnnlab")

QUIET, DEFAULT, VERBOSE = -1, 0, 1
LEVELS = {QUIET: logging.WARNING, DEFAULT: logging.INFO, VERBOSE: logging.DEBUG}
# Below -v, Ray's own warnings are hints about Ray itself (token auth on, experiment snapshots); its errors show.
RAY_LEVEL = logging.ERROR
# The legacy Ray Tune output engine is silent at RunConfig(verbose=0); the new one still prints its start-up
# table, the results path and a TensorBoard hint (Ray 2.60).
QUIET_ENV = {"RAY_AIR_NEW_OUTPUT": "0"}


class StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a record comes (a test's capture, a notebook cell's stream)."""

    def __init__(self):
        logging.Handler.__init__(self)  # no stream of its own: see the property

    @property
    def stream(self):
        return sys.stderr


class StatusFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno >= logging.ERROR:
            return f"rnnlab: error: {text}"
        if record.levelno >= logging.WARNING:
            return f"rnnlab: warning: {text}"
        return text


def make_handler() -> logging.Handler:
    handler = StderrHandler()
    handler.setFormatter(StatusFormatter())
    return handler


def is_verbose() -> bool:
    """-v: the libraries speak too (Ray Tune's tables, wandb's banners, Optuna's notices)."""
    return logger.isEnabledFor(logging.DEBUG)


def verbosity() -> int:
    """The level in force, as QUIET, DEFAULT or VERBOSE (what a search passes on to its trials)."""
    return VERBOSE if is_verbose() else DEFAULT if logger.isEnabledFor(logging.INFO) else QUIET


@contextlib.contextmanager
def output(level: int = DEFAULT) -> Iterator[None]:
    """rnnlab's handler on its logger at `level` (QUIET, DEFAULT, VERBOSE) for the block, then the logger as it was."""
    saved = logger.level, logger.handlers[:], logger.propagate
    logger.handlers = [make_handler()]
    logger.setLevel(LEVELS[max(QUIET, min(VERBOSE, level))])
    logger.propagate = False  # one channel: a root handler the caller set up does not print it twice
    try:
        yield
    finally:
        logger.level, logger.handlers, logger.propagate = saved


class FaultInOneLine(logging.Filter):
    """A library's error over a full (or read-only, failing) disk as one line, without its traceback: rnnlab says
    what stopped and how to go on (Ray's failed save of its state; the trial's own error stops the search)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from rnnlab.records import environment_fault

        if record.exc_info and (fault := environment_fault(record.exc_info[1])) is not None:
            record.msg, record.args = f"{record.getMessage().rstrip(': ')}: {fault.strerror}", None
            record.exc_info, record.exc_text = None, None
        return True


FAULT_IN_ONE_LINE = FaultInOneLine()


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """Below -v: Ray Tune's legacy (silent) output engine, Ray's and Optuna's loggers at their errors/warnings,
    no Optuna experimental notices. The environment, the loggers and the warnings filters are restored on exit."""
    if is_verbose():
        yield
        return
    import optuna
    import ray  # noqa: F401  (importing ray configures its logger at INFO: set the level after)

    saved_env = {k: os.environ.get(k) for k in QUIET_ENV}
    ray_logger = logging.getLogger("ray")
    saved_ray, saved_optuna = ray_logger.level, optuna.logging.get_verbosity()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        # ASHA's cutoff over a rung where only failed trials (their summary's metric NaN) reported: numpy's notice
        warnings.filterwarnings("ignore", message="All-NaN slice encountered", category=RuntimeWarning)
        os.environ.update(QUIET_ENV)
        ray_logger.setLevel(RAY_LEVEL)
        for handler in ray_logger.handlers:
            handler.addFilter(FAULT_IN_ONE_LINE)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            yield
        finally:
            for handler in ray_logger.handlers:
                handler.removeFilter(FAULT_IN_ONE_LINE)
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            ray_logger.setLevel(saved_ray)
            optuna.logging.set_verbosity(saved_optuna)


def ray_logging_level() -> int:
    """The level `ray.init(logging_level=...)` gives Ray's logger: it resets what `quiet_libraries` set."""
    return logging.INFO if is_verbose() else RAY_LEVEL


def quiet_worker(level: int) -> None:
    """In a Ray worker (a process of Ray's, reused by no caller): rnnlab's handler and, below VERBOSE, Ray's logger
    at its errors. Its output reaches the driver through `log_to_driver`, so below VERBOSE only warnings and
    errors of the trial: a search's status comes from the driver."""
    logger.handlers = [make_handler()]
    logger.setLevel(logging.DEBUG if level >= VERBOSE else logging.WARNING)
    logger.propagate = False
    logging.raiseExceptions = False  # a log file on a full disk (wandb's debug.log): not a traceback per record
    if level < VERBOSE:
        logging.getLogger("ray").setLevel(RAY_LEVEL)
        if sys.unraisablehook is not quiet_exit:
            quiet_exit.default = sys.unraisablehook
            sys.unraisablehook = quiet_exit


def quiet_exit(unraisable) -> None:
    """A worker's unraisable SystemExit goes unsaid: Ray's SIGTERM handler (the worker stopped at the search's end)
    raises it wherever the worker is, a weakref callback of the garbage collector included, which Python reports
    as "Exception ignored in ..." with a traceback on the driver's terminal. Any other goes to the default hook."""
    if not isinstance(unraisable.exc_value, SystemExit):
        quiet_exit.default(unraisable)
