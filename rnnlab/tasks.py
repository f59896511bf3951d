"""Losses and metrics per task. Metrics are named `split/name`: `val/acc`, `test/nrmse`, `train/loss`.

classification, tagging: loss (cross-entropy), acc.   lm: loss, ppl, and bpc for character models.
regression, forecast: loss (= mse), mse, rmse, nrmse (rmse / std of the targets).   recall: loss, bit_acc, exact.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

IGNORE = -100  # target id of steps without a label (padding, blanks of the copy task)


def step_mask(outputs_BTC: torch.Tensor, lengths_B: torch.Tensor, warmup: int = 0) -> torch.Tensor:
    """True at the valid steps of each sequence, past the first `warmup` steps."""
    t = torch.arange(outputs_BTC.shape[1], device=outputs_BTC.device)
    lengths = lengths_B.to(t.device)
    return (t[None, :] < lengths[:, None]) & (t[None, :] >= warmup)


def compute_loss(task: str, outputs, targets, lengths, warmup: int = 0) -> torch.Tensor:
    if task == "classification":
        return F.cross_entropy(outputs, targets)
    if task in ("tagging", "lm"):
        return F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1), ignore_index=IGNORE)
    if task == "regression":
        return F.mse_loss(outputs, targets)
    if task == "forecast":
        mask = step_mask(outputs, lengths, warmup)
        return F.mse_loss(outputs[mask], targets[mask])
    if task == "recall":
        return F.mse_loss(outputs, targets)
    raise ValueError(f"unknown task {task!r}")


class Metrics:
    """Running sums over batches of one split; `compute()` gives the `split/name` dict."""

    def __init__(self, task: str, split: str, char_level: bool = False):
        self.task, self.split, self.char_level = task, split, char_level
        self.sums: dict[str, float] = {"loss": 0.0, "n": 0.0, "hits": 0.0, "y": 0.0, "y2": 0.0, "exact": 0.0}

    @torch.no_grad()
    def update(self, outputs, targets, lengths, loss: torch.Tensor, warmup: int = 0) -> None:
        s, task = self.sums, self.task
        if task == "classification":
            n = targets.numel()
            s["hits"] += float((outputs.argmax(-1) == targets).sum())
        elif task in ("tagging", "lm"):
            keep = targets != IGNORE
            n = int(keep.sum())
            s["hits"] += float((outputs.argmax(-1)[keep] == targets[keep]).sum())
        elif task in ("regression", "forecast"):
            if task == "forecast":
                mask = step_mask(outputs, lengths, warmup)
                outputs, targets = outputs[mask], targets[mask]
            n = targets.numel()
            s["y"] += float(targets.sum())
            s["y2"] += float((targets.double() ** 2).sum())
        elif task == "recall":
            n = targets.numel()
            agree = torch.sign(outputs) == torch.sign(targets)
            s["hits"] += float(agree.sum())
            s["exact"] += float(agree.all(dim=-1).sum())
            s["patterns"] = s.get("patterns", 0.0) + targets.shape[0]
        else:
            raise ValueError(f"unknown task {task!r}")
        s["loss"] += float(loss) * n
        s["n"] += n

    def compute(self) -> dict[str, float]:
        s, p = self.sums, self.split
        n = max(s["n"], 1.0)
        loss = s["loss"] / n
        out = {f"{p}/loss": loss}
        if self.task in ("classification", "tagging"):
            out[f"{p}/acc"] = s["hits"] / n
        elif self.task == "lm":
            out[f"{p}/acc"] = s["hits"] / n
            out[f"{p}/ppl"] = math.exp(min(loss, 50.0))
            if self.char_level:
                out[f"{p}/bpc"] = loss / math.log(2)
        elif self.task in ("regression", "forecast"):
            var = max(s["y2"] / n - (s["y"] / n) ** 2, 1e-12)
            out[f"{p}/mse"] = loss
            out[f"{p}/rmse"] = math.sqrt(loss)
            out[f"{p}/nrmse"] = math.sqrt(loss / var)
        elif self.task == "recall":
            out[f"{p}/bit_acc"] = s["hits"] / n
            out[f"{p}/exact"] = s["exact"] / max(s.get("patterns", 0.0), 1.0)
        return out
