"""The copy memory task (Hochreiter & Schmidhuber, 1997; Arjovsky et al., 2016) in the literature's normalisation.

Every step has a target: the blank (class 0) until the recall, the remembered symbols during it. With T the delay
(`data.seq_len`), sequences of T + 20 steps and 10 symbols of 8:

    loss         cross-entropy averaged over all T + 20 steps    memoryless baseline 10 ln 8 / (T + 20)
    recall_loss  cross-entropy averaged over the 10 recall steps  memoryless baseline ln 8 = 2.079
    acc over all steps, recall_acc over the recall steps (chance 1/8).

`recall_loss` is what `data.task=tagging` reports as its loss on the same data (it leaves the blank steps out).
Data: the built-in `copy`, or any tagging data whose tags are given at the recall steps only (IGNORE_INDEX elsewhere).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from rnnlab.data.prepare import prepare_tagging
from rnnlab.data.taskdata import IGNORE_INDEX, SPLITS, Split, TaskData
from rnnlab.tasks.base import Tagging, add

BLANK = 0  # the target class of every step outside the recall


def prepare_copy(splits, cfg, seed) -> TaskData:
    """Tagging's preparation, then the blank as class 0 at every untagged valid step (the tags shift up by one)."""
    data = prepare_tagging(splits, cfg, seed)
    parts = {}
    for name in SPLITS:
        split: Split = getattr(data, name)
        valid = torch.arange(split.targets.shape[1])[None, :] < split.lengths[:, None]
        targets = torch.where(split.targets == IGNORE_INDEX, BLANK, split.targets + 1)
        parts[name] = Split(split.inputs, split.lengths, targets.masked_fill(~valid, IGNORE_INDEX))
    meta = {**data.meta, "labels": ["<blank>", *data.meta["labels"]]}
    return dataclasses.replace(data, **parts, output_size=data.output_size + 1, meta=meta)


class CopyMemory(Tagging):
    """Tagging over every step, with the recall steps (targets other than the blank) also scored alone."""

    name = "copy"
    directions = {"loss": "min", "acc": "max", "recall_loss": "min", "recall_acc": "max"}
    prepare = staticmethod(prepare_copy)

    def accumulate(self, sums, outputs, targets, lengths, warmup=0):
        n = super().accumulate(sums, outputs, targets, lengths, warmup)
        recall = (targets != BLANK) & (targets != IGNORE_INDEX)
        logits, symbols = outputs[recall].float(), targets[recall]
        add(
            sums,
            recall_ce=float(F.cross_entropy(logits, symbols, reduction="sum")) if len(symbols) else 0.0,
            recall_hits=float((logits.argmax(-1) == symbols).sum()),
            recall_steps=float(len(symbols)),
        )
        return n

    def summarise(self, sums, loss, n, char_level):
        steps = max(sums.get("recall_steps", 0.0), 1.0)
        return {
            **super().summarise(sums, loss, n, char_level),
            "recall_loss": sums.get("recall_ce", 0.0) / steps,
            "recall_acc": sums.get("recall_hits", 0.0) / steps,
        }
