"""The task registry: `TASKS = {name: Task}`, each task an object with its loss, metrics, per-step predictions,
split rules and data preparation (`rnnlab.tasks.base.Task`). Adding a task is its module and one line here.

classification, tagging: loss (cross-entropy), acc.  lm: loss, acc, ppl, bpc (character models).
regression, forecast, series: loss (= mse), mse, rmse, nrmse (rmse / std of the targets).
recall: loss, bit_acc, exact.  memory_capacity: series' metrics and memory_capacity (Jaeger's MC).
copy: loss and acc over all T+20 steps (the literature's), recall_loss, recall_acc.
"""

from __future__ import annotations

from rnnlab.config import ConfigError, DataConfig
from rnnlab.data import TaskData, load_prepared
from rnnlab.data.taskdata import IGNORE_INDEX
from rnnlab.tasks.base import (
    Classification,
    Forecast,
    LanguageModel,
    Metrics,
    Recall,
    Regression,
    Tagging,
    Task,
    step_mask,
)
from rnnlab.tasks.copy import CopyMemory
from rnnlab.tasks.memory import MemoryCapacity
from rnnlab.tasks.series import SeriesRegression

TASKS: dict[str, Task] = {
    "classification": Classification(),
    "tagging": Tagging(),
    "lm": LanguageModel(),
    "regression": Regression(),
    "forecast": Forecast(),
    "recall": Recall(),
    "series": SeriesRegression(),
    "memory_capacity": MemoryCapacity(),
    "copy": CopyMemory(),
}

__all__ = ["IGNORE_INDEX", "TASKS", "Metrics", "Task", "load_task_data", "step_mask", "task_of"]


def task_of(name: str) -> Task:
    if name not in TASKS:
        raise ConfigError("data.task", f"got {name!r}; valid choices: {', '.join(TASKS)}")
    return TASKS[name]


def load_task_data(cfg: DataConfig, seed: int) -> TaskData:
    """Prepared, encoded data for `cfg` by its task's own preparer, through the cache (`rnnlab.data.load_prepared`)."""
    return load_prepared(cfg, seed, task_of(cfg.task))
