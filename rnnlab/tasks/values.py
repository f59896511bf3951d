"""Tasks that predict real values by mean squared error: a vector per sequence, the next values of a series, a
stored ±1 pattern recalled from a noisy cue.

regression, forecast: loss (= mse), mse, rmse, nrmse (rmse / std of the targets).   recall: loss, bit_acc, exact.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from rnnlab.tasks.task import Task, add, step_mask


class Regression(Task):
    name = "regression"
    directions = {"loss": "min", "mse": "min", "rmse": "min", "nrmse": "min"}

    def select(self, outputs, targets, lengths, warmup):
        return outputs, targets

    def loss(self, outputs, targets, lengths, warmup=0):
        return F.mse_loss(*self.select(outputs, targets, lengths, warmup))

    def accumulate(self, sums, outputs, targets, lengths, warmup=0):
        _, targets = self.select(outputs, targets, lengths, warmup)
        add(sums, y=float(targets.sum()), y2=float((targets.double() ** 2).sum()))
        return targets.numel()

    def summarise(self, sums, loss, n, char_level):
        var = max(sums.get("y2", 0.0) / n - (sums.get("y", 0.0) / n) ** 2, 1e-12)
        return {"loss": loss, "mse": loss, "rmse": math.sqrt(loss), "nrmse": math.sqrt(loss / var)}


class Forecast(Regression):
    """The values `horizon` steps ahead at every valid step past the warm-up."""

    name = "forecast"
    per_step = True
    chronological = True

    def select(self, outputs, targets, lengths, warmup):
        mask = step_mask(outputs, lengths, warmup)
        return outputs[mask], targets[mask]


class Recall(Task):
    """Associative recall: the clean ±1 pattern from a noisy cue; the encoder's output is the recalled pattern."""

    name = "recall"
    directions = {"loss": "min", "bit_acc": "max", "exact": "max"}
    cues_from_train = True
    head = False

    def loss(self, outputs, targets, lengths, warmup=0):
        return F.mse_loss(outputs, targets)

    def accumulate(self, sums, outputs, targets, lengths, warmup=0):
        agree = torch.sign(outputs) == torch.sign(targets)
        add(sums, hits=float(agree.sum()), exact=float(agree.all(dim=-1).sum()), patterns=targets.shape[0])
        return targets.numel()

    def summarise(self, sums, loss, n, char_level):
        return {"loss": loss, "bit_acc": sums.get("hits", 0.0) / n,
                "exact": sums.get("exact", 0.0) / max(sums.get("patterns", 0.0), 1.0)}  # fmt: skip
