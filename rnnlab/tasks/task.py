"""What a learning task is to the rest of the package: its loss, its metrics (`split/name`, with the direction
each improves in), what the head predicts per step, and how its data is split. `TASKS` lists the tasks.
"""

from __future__ import annotations

from typing import ClassVar

import torch

IGNORE_INDEX = -100  # target id of steps without a label (padding, blanks of the copy task): torch's default


def step_mask(outputs_BT_: torch.Tensor, lengths_B: torch.Tensor, warmup: int = 0) -> torch.Tensor:
    """True at the valid steps of each sequence, past the first `warmup` steps."""
    t = torch.arange(outputs_BT_.shape[1], device=outputs_BT_.device)
    lengths = lengths_B.to(t.device)
    return (t[None, :] < lengths[:, None]) & (t[None, :] >= warmup)


class Task:
    """A task; subclasses set the class attributes and implement loss, accumulate and summarise.

    Outputs are (B, C) for sequence-level tasks and (B, T, C) for per-step ones; `warmup` leading steps of a
    per-step task are left out (a reservoir's washout).
    """

    name: ClassVar[str]
    directions: ClassVar[dict[str, str]]  # every metric name it reports -> "min" or "max"
    per_step: ClassVar[bool] = False  # the head reads every step's output, not the sequence summary
    causal: ClassVar[bool] = False  # the target is the input's future: a bidirectional encoder would see it
    stream: ClassVar[bool] = False  # a split is one token stream, batched as BPTT chunks with the state carried
    chronological: ClassVar[bool] = False  # splits are contiguous cuts of the data, never shuffled
    cues_from_train: ClassVar[bool] = False  # val and test cue the stored train rows: no rows are held out
    head: ClassVar[bool] = True  # a linear head on the encoder; False: the encoder's output is the prediction
    char_level_only: ClassVar[tuple[str, ...]] = ()  # metrics reported only for character-level tokens

    def loss(self, outputs, targets, lengths, warmup: int = 0) -> torch.Tensor:
        raise NotImplementedError

    def accumulate(self, sums: dict[str, float], outputs, targets, lengths, warmup: int = 0) -> float:
        """Add one batch's statistics to `sums`; return how many targets the batch's mean loss averaged."""
        raise NotImplementedError

    def summarise(self, sums: dict[str, float], loss: float, n: float, char_level: bool) -> dict[str, float]:
        """{metric name: value} from the sums of a whole split and its mean loss."""
        raise NotImplementedError

    def metric_names(self, char_level: bool) -> list[str]:
        return [m for m in self.directions if char_level or m not in self.char_level_only]


class Metrics:
    """Running sums over the batches of one split; `compute()` gives its `split/name` dict."""

    def __init__(self, task: Task, split: str, char_level: bool = False):
        self.task, self.split, self.char_level = task, split, char_level
        self.sums: dict[str, float] = {}
        self.loss, self.n = 0.0, 0.0

    @torch.no_grad()
    def update(self, outputs, targets, lengths, loss: torch.Tensor | float, warmup: int = 0) -> None:
        n = self.task.accumulate(self.sums, outputs, targets, lengths, warmup)
        self.loss += float(loss) * n
        self.n += n

    def compute(self) -> dict[str, float]:
        n = max(self.n, 1.0)
        values = self.task.summarise(self.sums, self.loss / n, n, self.char_level)
        return {f"{self.split}/{name}": value for name, value in values.items()}


def add(sums: dict[str, float], **values: float) -> None:
    for key, value in values.items():
        sums[key] = sums.get(key, 0.0) + value
