"""Tasks that predict class ids by cross-entropy: a label per sequence, a tag per step, the next token.

classification, tagging: loss, acc.   lm: loss, acc, ppl, and bpc (bits per character) for character models.
"""

from __future__ import annotations

import math

import torch.nn.functional as F

from rnnlab.tasks.task import IGNORE_INDEX, Task, add


class Classification(Task):
    name = "classification"
    directions = {"loss": "min", "acc": "max"}

    def loss(self, outputs, targets, lengths, warmup=0):
        return F.cross_entropy(outputs, targets)

    def accumulate(self, sums, outputs, targets, lengths, warmup=0):
        add(sums, hits=float((outputs.argmax(-1) == targets).sum()))
        return targets.numel()

    def summarise(self, sums, loss, n, char_level):
        return {"loss": loss, "acc": sums.get("hits", 0.0) / n}


class Tagging(Task):
    """A class id per step; steps with IGNORE_INDEX targets (padding, blanks) count nowhere."""

    name = "tagging"
    directions = {"loss": "min", "acc": "max"}
    per_step = True

    def loss(self, outputs, targets, lengths, warmup=0):
        flat = outputs.reshape(-1, outputs.shape[-1])
        return F.cross_entropy(flat, targets.reshape(-1), ignore_index=IGNORE_INDEX)

    def accumulate(self, sums, outputs, targets, lengths, warmup=0):
        keep = targets != IGNORE_INDEX
        add(sums, hits=float((outputs.argmax(-1)[keep] == targets[keep]).sum()))
        return int(keep.sum())

    def summarise(self, sums, loss, n, char_level):
        return {"loss": loss, "acc": sums.get("hits", 0.0) / n}


class LanguageModel(Tagging):
    """The next token at every step of a token stream, with truncated back-propagation through time."""

    name = "lm"
    directions = {"loss": "min", "acc": "max", "ppl": "min", "bpc": "min"}
    causal = True
    stream = True
    chronological = True
    char_level_only = ("bpc",)

    def summarise(self, sums, loss, n, char_level):
        out = {**super().summarise(sums, loss, n, char_level), "ppl": math.exp(min(loss, 50.0))}
        if char_level:
            out["bpc"] = loss / math.log(2)
        return out
