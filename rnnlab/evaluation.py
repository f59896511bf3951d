"""Evaluation protocols beyond a task's per-batch metrics, set in `cfg.eval`: free-running (closed-loop) prediction.

Free run (Jaeger & Haas, 2004, "Harnessing nonlinearity"): teacher-force the first `eval.free_run_warmup` steps of
each val/test sequence, then feed the model's prediction back as its next input for `eval.free_run_steps` steps;

    free_run_nrmse = sqrt(mean over those steps and sequences of (prediction - truth)^2) / std(train series)

(NRMSE84 for 84 steps on Mackey-Glass). It is scored on val after every epoch (so it can be the monitored metric
or a search objective) and on test with the other final metrics.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from rnnlab.config import Config, ConfigError, EvalConfig
from rnnlab.data import DataError, Split, TaskData
from rnnlab.models import family_of
from rnnlab.tasks import Task

DIRECTIONS = {"free_run_nrmse": "min"}  # every protocol metric -> the direction it improves in
SPLITS = ("val", "test")  # protocols score held-out splits only


def metric_names(cfg: Config) -> list[str]:
    """The protocol metrics `cfg` turns on (names without the split)."""
    return ["free_run_nrmse"] if cfg.eval.free_run_steps else []


def check_protocols(cfg: Config, task: Task, data: TaskData) -> None:
    """A ConfigError before any work for a protocol that cannot run on this task, model or data."""
    e = cfg.eval
    if not e.free_run_steps:
        default = EvalConfig().free_run_warmup
        if e.free_run_warmup != default:  # after check_task: a metric of the protocol is said first
            raise ConfigError(
                "eval.free_run_warmup",
                f"is read by a free run only and eval.free_run_steps=0 runs none, so {e.free_run_warmup} would be "
                f"ignored: set eval.free_run_steps > 0 or leave it at its default ({default})",
            )
        return
    if not task.closed_loop:
        raise ConfigError(
            "eval.free_run_steps",
            f"a free run feeds each prediction back as the next input; task {task.name!r} does not predict its "
            "input (valid for data.task=forecast); set eval.free_run_steps=0",
        )
    if cfg.data.horizon != 1:
        raise ConfigError(
            "data.horizon", f"a free run predicts the next step: needs data.horizon=1, got {cfg.data.horizon}"
        )
    encoder = family_of(cfg.model.family).encoder
    if getattr(cfg.model, "bidirectional", False) or not (encoder.sequence_encoder and encoder.carries_state):
        raise ConfigError(
            "eval.free_run_steps",
            f"model.family={cfg.model.family} (bidirectional={getattr(cfg.model, 'bidirectional', False)}) cannot "
            "continue a sequence from its state one step at a time; a free run needs a unidirectional recurrent model",
        )
    needed = e.free_run_warmup + e.free_run_steps - 1  # the last free step predicts target free_run_warmup + steps - 2
    for name in SPLITS:
        split: Split = getattr(data, name)
        if not split.empty and int(split.lengths.min()) < needed:
            raise too_long(e, name, int(split.lengths.min()))


def too_long(e: EvalConfig, split_name: str, shortest: int) -> DataError:
    """The refusal of a free run longer than a split's shortest sequence, naming the larger of its two settings
    (the one that takes most of the length: eval.free_run_warmup=390 was refused naming eval.free_run_steps, which
    the user never set) and the bound of each given the other."""
    warmup, steps = e.free_run_warmup, e.free_run_steps
    bounds = [
        f"eval.free_run_warmup at most {shortest - steps + 1} (with eval.free_run_steps={steps})",
        f"eval.free_run_steps at most {shortest - warmup + 1} (with eval.free_run_warmup={warmup})",
    ]
    fits = [b for b, ok in zip(bounds, (steps <= shortest, warmup <= shortest)) if ok]
    return DataError(
        "eval.free_run_warmup" if warmup >= steps else "eval.free_run_steps",
        f"too long for the {split_name} sequences: a free run needs eval.free_run_warmup + eval.free_run_steps - 1 = "
        f"{warmup + steps - 1} steps, the shortest has {shortest}; "
        + (f"set {' or '.join(fits)}" if fits else f"lower both (their sum at most {shortest + 1})")
        + " (or raise data.window)",
    )


@torch.no_grad()
def free_run(model: nn.Module, warmup_BTD: torch.Tensor, steps: int) -> torch.Tensor:
    """Closed-loop forecast (B, steps, D) of a per-step task model (`SequenceModel`): teacher-force `warmup_BTD`,
    then feed each prediction back as the next input, carrying the recurrent state from one call to the next."""
    lengths = torch.full((warmup_BTD.shape[0],), warmup_BTD.shape[1])
    out_BTH, _, state = model.features(warmup_BTD, lengths)
    # the head reads the last step alone, as every later step: in float32 a head over all warm-up steps rounds the
    # first prediction differently (by ~1e-6), and the closed loop amplifies that to ~2% of NRMSE84
    prediction = model.head(out_BTH[:, -1:])
    predictions = [prediction]
    one_step = torch.ones_like(lengths)
    for _ in range(steps - 1):
        out_BTH, _, state = model.features(prediction, one_step, state)
        prediction = model.head(out_BTH)
        predictions.append(prediction)
    return torch.cat(predictions, dim=1)


def series_std(split: Split) -> float:
    """Standard deviation of a split's valid input steps, over all its sequences."""
    valid = torch.arange(split.inputs.shape[1])[None, :] < split.lengths[:, None]
    return float(split.inputs[valid].double().std())


@torch.no_grad()
def free_run_nrmse(model: nn.Module, split: Split, steps: int, warmup: int, scale: float, batch_size: int, device):
    """NRMSE of `steps` free-running predictions after `warmup` teacher-forced steps of every sequence."""
    model.eval()
    squared, count = 0.0, 0
    for start in range(0, len(split), batch_size):
        inputs = split.inputs[start : start + batch_size].to(device)
        truth = split.targets[start : start + batch_size, warmup - 1 : warmup - 1 + steps].to(device)
        predicted = free_run(model, inputs[:, :warmup], steps)
        squared += float(((predicted.double() - truth.double()) ** 2).sum())
        count += truth.numel()
    return math.sqrt(squared / count) / scale


def evaluate_protocols(model: nn.Module, data: TaskData, split_name: str, cfg: Config, device) -> dict[str, float]:
    """`split/name` metrics of the protocols `cfg.eval` turns on, on one split ({} when none is on)."""
    e = cfg.eval
    metrics: dict[str, float] = {}
    if e.free_run_steps:
        split = getattr(data, split_name)
        scale = series_std(data.train)
        value = free_run_nrmse(model, split, e.free_run_steps, e.free_run_warmup, scale, cfg.train.batch_size, device)
        metrics[f"{split_name}/free_run_nrmse"] = value
    return metrics
