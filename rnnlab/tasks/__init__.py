"""The task registry: each entry an object with its loss, metrics and data handling (`rnnlab.tasks.task.Task`)."""

from __future__ import annotations

from rnnlab.config import ConfigError
from rnnlab.tasks.labels import Classification, LanguageModel, Tagging
from rnnlab.tasks.task import IGNORE_INDEX, Metrics, Task
from rnnlab.tasks.values import Forecast, Recall, Regression

TASKS: dict[str, Task] = {
    "classification": Classification(),
    "tagging": Tagging(),
    "lm": LanguageModel(),
    "regression": Regression(),
    "forecast": Forecast(),
    "recall": Recall(),
}


def task_of(name: str) -> Task:
    if name not in TASKS:
        raise ConfigError("data.task", f"got {name!r}; valid choices: {', '.join(TASKS)}")
    return TASKS[name]


__all__ = ["IGNORE_INDEX", "TASKS", "Metrics", "Task", "task_of"]
