"""The Task contract (loss, metrics `split/name` with the direction each improves in, what the head predicts per
step, how its data is split and prepared), the Metrics accumulator, and the first six tasks.

classification, tagging: loss (cross-entropy), acc.  lm: loss, acc, ppl, bpc (character models).
regression, forecast: loss (= mse), mse, rmse, nrmse (rmse / std of the targets).  recall: loss, bit_acc, exact.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as F

from rnnlab.data.prepare import (
    prepare_classification,
    prepare_forecast,
    prepare_lm,
    prepare_recall,
    prepare_regression,
    prepare_tagging,
)
from rnnlab.data.taskdata import IGNORE_INDEX, SPLITS, DataError

if TYPE_CHECKING:
    from datasets import Dataset

    from rnnlab.config import Config, DataConfig
    from rnnlab.data import TaskData

log = logging.getLogger(__name__)


def step_mask(outputs_BT_: torch.Tensor, lengths_B: torch.Tensor, warmup: int = 0) -> torch.Tensor:
    """True at the valid steps of each sequence, past the first `warmup` steps."""
    t = torch.arange(outputs_BT_.shape[1], device=outputs_BT_.device)
    lengths = lengths_B.to(t.device)
    return (t[None, :] < lengths[:, None]) & (t[None, :] >= warmup)


def longest_sequences(data) -> dict[str, int]:
    """{split name: steps of its longest sequence} for each non-empty split of prepared data."""
    return {n: int(getattr(data, n).lengths.max()) for n in SPLITS if not getattr(data, n).empty}


class Task:
    """A task; subclasses set the class attributes and implement prepare, loss, accumulate and summarise.

    Outputs are (B, C) for sequence-level tasks and (B, T, C) for per-step ones; `warmup` leading steps of a
    per-step task are left out (a reservoir's washout).
    """

    name: ClassVar[str]
    directions: ClassVar[dict[str, str]]  # every metric name it reports -> "min" or "max"
    per_step: ClassVar[bool] = False  # the head reads every step's output, not the sequence summary
    # the target at step t may depend on the inputs up to t only (lm and forecast: it is a later input; series: a
    # causal map of the input's past): a bidirectional encoder, seeing the later inputs, is refused. False where the
    # later inputs hold nothing of the target: sequence-level tasks, tagging, copy (its recall steps read a blank).
    causal: ClassVar[bool] = False
    stream: ClassVar[bool] = False  # a split is one token stream, batched as BPTT chunks with the state carried
    tbptt: ClassVar[bool] = False  # a split of one long series trains as BPTT chunks with the state carried
    chronological: ClassVar[bool] = False  # splits are contiguous cuts of the data, never shuffled
    cues_from_train: ClassVar[bool] = False  # val and test cue the stored train rows: no rows are held out
    head: ClassVar[bool] = True  # a linear head on the encoder; False: the encoder's output is the prediction
    char_level_only: ClassVar[tuple[str, ...]] = ()  # metrics reported only for character-level tokens
    closed_loop: ClassVar[bool] = False  # the prediction is the next input: a free run can feed it back
    settings: ClassVar[tuple[str, ...]] = ()  # data.* settings only some tasks read: those this one does

    def prepare(self, splits: dict[str, Dataset], cfg: DataConfig, seed: int) -> TaskData:
        """{"train", "val", "test"} raw splits -> tensors (encoders fitted on train); called by
        `rnnlab.data.load_prepared` behind the cache."""
        raise NotImplementedError

    def check_data(self, cfg: Config, data: TaskData) -> None:
        """A DataError before any work for prepared data that leaves a split nothing to score under `cfg`: here a
        per-step task's warm-up (a reservoir's washout) as long as a split's longest sequence; tasks add theirs."""
        field_path, warmup = cfg.model.warmup()
        if not warmup or not self.per_step or self.stream:
            return
        for name, longest in longest_sequences(data).items():
            if longest <= warmup:
                raise DataError(
                    field_path,
                    f"{warmup} steps leave nothing to score in the {name} split, whose longest sequence has "
                    f"{longest} steps: lower it below {longest} or give the split more steps (data.window, "
                    "data.num_samples or the split's fraction)",
                )
        if unscored := self.unscored(cfg, data):  # the rest are scored: said here, and in result.json
            counts = ", ".join(f"{short} of {count} {name}" for name, (short, count) in unscored.items())
            log.warning(
                f"{field_path}={warmup} leaves {counts} sequences no step to fit or score (each has at most "
                f"{warmup} steps): they are left out, and every metric is over the longer ones"
            )

    def unscored(self, cfg: Config, data: TaskData) -> dict[str, list[int]]:
        """{split: [its sequences no longer than the warm-up, all its sequences]} for the splits where a per-step
        task's warm-up (a reservoir's washout, left out of every sequence) leaves some sequences no step at all."""
        _, warmup = cfg.model.warmup()
        if not warmup or not self.per_step or self.stream:
            return {}
        splits = {n: getattr(data, n).lengths for n in SPLITS if not getattr(data, n).empty}
        counts = {n: [int((lengths <= warmup).sum()), len(lengths)] for n, lengths in splits.items()}
        return {n: c for n, c in counts.items() if c[0]}

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
        if n:  # a batch of sequences no longer than the warm-up has no target: its mean loss is NaN, and adds none
            self.loss += float(loss) * n
            self.n += n

    def compute(self) -> dict[str, float]:
        n = max(self.n, 1.0)
        values = self.task.summarise(self.sums, self.loss / n, n, self.char_level)
        return {f"{self.split}/{name}": value for name, value in values.items()}


def add(sums: dict[str, float], **values: float) -> None:
    for key, value in values.items():
        sums[key] = sums.get(key, 0.0) + value


# --- class ids, by cross-entropy ------------------------------------------------------------------------------


class Classification(Task):
    name = "classification"
    directions = {"loss": "min", "acc": "max"}
    prepare = staticmethod(prepare_classification)

    def check_data(self, cfg, data):
        """Besides the warm-up: a held-out split of one row scores acc 0 or 1 (a coin toss, reported as a result,
        and as the epoch a val split selects)."""
        super().check_data(cfg, data)
        for name in ("val", "test"):
            if len(getattr(data, name).lengths) == 1:
                given = getattr(cfg.data, f"{name}_split")
                field_path = f"data.{name}_split" if given is not None else f"data.{name}_fraction"
                raise DataError(
                    field_path,
                    f"the {name} split has 1 row, so {name}/acc could only be 0 or 1: give it more rows "
                    f"(data.{name}_fraction, a larger {name} split) or none (data.{name}_fraction=0)",
                )

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
    prepare = staticmethod(prepare_tagging)

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
    prepare = staticmethod(prepare_lm)

    def summarise(self, sums, loss, n, char_level):
        out = {**super().summarise(sums, loss, n, char_level), "ppl": math.exp(min(loss, 50.0))}
        if char_level:
            out["bpc"] = loss / math.log(2)
        return out


# --- real values, by mean squared error ----------------------------------------------------------------------


class Regression(Task):
    name = "regression"
    directions = {"loss": "min", "mse": "min", "rmse": "min", "nrmse": "min"}
    prepare = staticmethod(prepare_regression)

    def select(self, outputs, targets, lengths, warmup):
        return outputs, targets

    def check_data(self, cfg, data):
        """Besides the warm-up: a split whose scored targets are all one value (a single row, say) has no spread, so
        its nrmse (rmse / the targets' std) would be a division by zero, reported as a huge number."""
        super().check_data(cfg, data)
        _, warmup = cfg.model.warmup()
        for name in SPLITS:
            split = getattr(data, name)
            if split.empty:
                continue
            _, targets = self.select(split.targets, split.targets, split.lengths, warmup)
            y = targets.double()
            if y.numel() and float((y**2).mean() - y.mean() ** 2) <= 1e-12:
                raise DataError(
                    "data.target_column" if name == "train" else f"data.{name}_fraction",
                    f"the {name} split's {y.numel()} scored targets are all {float(y.flatten()[0]):g}, so its nrmse "
                    f"(rmse / their std) is undefined: give the split more rows ({len(split.lengths)} now; "
                    f"data.num_samples or data.{name}_fraction) or check data.target_column",
                )

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
    causal = True  # the targets are the inputs `horizon` steps on
    chronological = True
    prepare = staticmethod(prepare_forecast)
    closed_loop = True
    settings = ("horizon", "window")

    def select(self, outputs, targets, lengths, warmup):
        mask = step_mask(outputs, lengths, warmup)
        return outputs[mask], targets[mask]


class Recall(Task):
    """Associative recall: the clean ±1 pattern from a noisy cue; the encoder's output is the recalled pattern."""

    name = "recall"
    directions = {"loss": "min", "bit_acc": "max", "exact": "max"}
    cues_from_train = True
    head = False
    prepare = staticmethod(prepare_recall)
    settings = ("noise",)

    def loss(self, outputs, targets, lengths, warmup=0):
        return F.mse_loss(outputs, targets)

    def accumulate(self, sums, outputs, targets, lengths, warmup=0):
        agree = torch.sign(outputs) == torch.sign(targets)
        add(sums, hits=float(agree.sum()), exact=float(agree.all(dim=-1).sum()), patterns=targets.shape[0])
        return targets.numel()

    def summarise(self, sums, loss, n, char_level):
        return {
            "loss": loss,
            "bit_acc": sums.get("hits", 0.0) / n,
            "exact": sums.get("exact", 0.0) / max(sums.get("patterns", 0.0), 1.0),
        }
