"""Every registered task keeps one contract: its loss is the mean its metrics weigh, it reports exactly the metrics
it names (with a direction each), and a monitored metric must be one of them, watched the right way."""

import math

import pytest
import torch

from rnnlab.config import Config, ConfigError, DataConfig
from rnnlab.tasks import IGNORE_INDEX, TASKS, Metrics
from rnnlab.trial import check_task

B, T, C = 4, 5, 3


def batch(task):
    """(outputs, targets, lengths) shaped as the task's head and data give them."""
    torch.manual_seed(0)
    lengths = torch.tensor([5, 3, 5, 2])
    if task.name in ("classification",):
        return torch.randn(B, C), torch.tensor([0, 1, 2, 1]), lengths
    if task.name in ("tagging", "lm", "copy"):
        targets = torch.randint(0, C, (B, T))
        targets[1, 3:] = targets[3, 2:] = IGNORE_INDEX
        return torch.randn(B, T, C), targets, lengths
    if task.name == "forecast":
        return torch.randn(B, T, 2), torch.randn(B, T, 2), lengths
    if task.name == "recall":
        return torch.randn(B, 8), torch.sign(torch.randn(B, 8)), lengths
    return torch.randn(B, 2), torch.randn(B, 2), lengths


@pytest.mark.parametrize("name", list(TASKS))
def test_every_task_reports_the_metrics_it_names(name):
    task = TASKS[name]
    assert task.name == name and set(task.directions.values()) <= {"min", "max"}
    outputs, targets, lengths = batch(task)
    loss = task.loss(outputs, targets, lengths)
    assert loss.dim() == 0 and math.isfinite(float(loss))
    for char_level in (False, True):
        metrics = Metrics(task, "val", char_level)
        metrics.update(outputs, targets, lengths, loss)
        computed = metrics.compute()
        assert list(computed) == [f"val/{m}" for m in task.metric_names(char_level)]
        assert computed["val/loss"] == pytest.approx(float(loss))  # one batch: the split's loss is its loss


def test_split_metrics_weigh_batches_by_their_targets():
    """Two batches of a tagging split: the split loss is the mean over every labelled step, not over batches."""
    task = TASKS["tagging"]
    outputs, targets, lengths = batch(task)
    metrics = Metrics(task, "val")
    for rows in (slice(0, 1), slice(1, 4)):
        metrics.update(outputs[rows], targets[rows], lengths[rows], task.loss(outputs[rows], targets[rows], lengths))
    assert metrics.compute()["val/loss"] == pytest.approx(float(task.loss(outputs, targets, lengths)))


@pytest.mark.parametrize(
    "task,metric,mode,field",
    [
        ("regression", "val/acc", "max", "metric"),
        ("classification", "val/acc", "min", "mode"),
        ("regression", "val/nrmse", "max", "mode"),
        ("lm", "val/bpc", "min", "metric"),
    ],
)
def test_a_monitored_metric_is_reported_and_watched_in_its_direction(task, metric, mode, field):
    cfg = Config(metric=metric, mode=mode, data=DataConfig(task=task, tokenizer="word"))
    with pytest.raises(ConfigError) as err:
        check_task(cfg, TASKS[task])
    assert err.value.field == field
