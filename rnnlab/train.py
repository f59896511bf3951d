"""The training loop: epochs, evaluation, early stopping, atomic checkpoints and exact resume.

It knows nothing of Ray or W&B: each epoch's metrics leave through `report(metrics, checkpoint_folder)`.
Models solved in closed form (`model.closed_form`) take the same loop through one fit step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rnnlab import diagnostics, evaluation
from rnnlab.batches import carries_state, diagnostics_batch, iterate_batches, lm_chunks, parallel_streams, series_chunks
from rnnlab.checkpoint import CheckpointWriter
from rnnlab.config import Config, ConfigError
from rnnlab.data import Split, TaskData
from rnnlab.tasks import Metrics, task_of

# A closed-form fit keeps the train split's features up to this size to score the split from them; a larger split
# is run again (a reservoir's states of a long split would otherwise be held twice: once for the ridge solve)
KEEP_FEATURES_MB = 256

Report = Callable[[dict[str, Any], "str | None"], None]


class TrialDiverged(RuntimeError):
    """The loss or a metric became NaN/inf; the trial ends with this reason."""


class TrialStopped(Exception):
    """Whoever runs the trial stopped it: a `report` callback (a scheduler, after an epoch) or `should_stop` (a
    signal, at the next training batch: the epoch in progress is dropped, the completed ones are kept).

    `status` is how the trial's record ends: "stopped", or "failed" for a stop that is the trial's fault (its time
    limit)."""

    def __init__(self, reason: str = "stopped", status: str = "stopped"):
        super().__init__(reason)
        self.status = status


ShouldStop = Callable[[], "str | None"]  # polled before each training batch: a reason to stop, or None


def select_device(name: str = "auto") -> torch.device:
    """`train.device` as a torch device; a CUDA device this machine lacks is a ConfigError naming the field."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            have, valid = "no CUDA device (or a CPU-only torch build)", "auto, cpu"
            if count:
                have, valid = f"CUDA devices 0..{count - 1}", f"auto, cpu, cuda, cuda:0..cuda:{count - 1}"
            raise ConfigError("train.device", f"got {name!r}, but this machine has {have}; valid: {valid}")
    return device


def make_optimizer(model: nn.Module, cfg: Config) -> torch.optim.Optimizer:
    o = cfg.optim
    params = [p for p in model.parameters() if p.requires_grad]
    if o.optimizer == "sgd":
        return torch.optim.SGD(params, lr=o.learning_rate, momentum=o.momentum, weight_decay=o.weight_decay)
    if o.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=o.learning_rate, weight_decay=o.weight_decay)
    return torch.optim.Adam(params, lr=o.learning_rate, weight_decay=o.weight_decay)


def make_lr_schedule(optimizer: torch.optim.Optimizer, cfg: Config) -> torch.optim.lr_scheduler.LRScheduler:
    o = cfg.optim
    if o.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.train.epochs)
    if o.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=o.step_size, gamma=o.gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)


# --- one epoch ---------------------------------------------------------------------------------------------------


def _detach(state):
    if state is None:
        return None
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def run_epoch(
    model,
    data: TaskData,
    split_name: str,
    cfg: Config,
    device,
    optimizer=None,
    generator: torch.Generator | None = None,
    should_stop: ShouldStop | None = None,
) -> dict[str, float]:
    """Train (when an optimizer is given; at most train.max_batches batches) or evaluate over a whole split; return
    its `split/name` metrics.

    `should_stop`, polled before each batch, ends the epoch early with TrialStopped when it gives a reason.
    """
    split: Split = getattr(data, split_name)
    training = optimizer is not None
    model.train(training)
    task = task_of(data.task)
    metrics = Metrics(task, split_name, char_level=cfg.data.tokenizer == "char")
    warmup = model.warmup_steps
    carried = carries_state(task, split, model, training)
    cap = cfg.train.max_batches if training else 0  # the cap shortens training; a metric is over its whole split
    if task.stream:
        streams = parallel_streams(split.inputs, cfg.train.batch_size)
        batches = lm_chunks(streams, cfg.train.bptt, device, cap)
    elif carried:
        batches = series_chunks(split, cfg.train.batch_size, cfg.train.bptt, device, cap)
    else:
        batches = iterate_batches(split, cfg.train.batch_size, device, generator if training else None, cap)
    state = None
    # decided once per epoch, not per batch
    after_step = model.encoder.after_step if training else None  # e.g. IndRNN's |u| bound
    clip = training and cfg.optim.grad_clip > 0
    with torch.set_grad_enabled(training):
        for inputs, lengths, targets in batches:
            if should_stop is not None and (reason := should_stop()):
                raise TrialStopped(reason)
            outputs, state = model(inputs, lengths, _detach(state) if carried else None)
            loss = task.loss(outputs, targets, lengths, warmup)
            if training:
                value = loss.item()  # one scalar read instead of an isfinite kernel and its bool()
                if not math.isfinite(value):
                    raise TrialDiverged(f"train/loss became {value}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if clip:
                    clip_gradients(model, cfg)
                optimizer.step()
                if after_step is not None:
                    after_step()
            metrics.update(outputs.detach(), targets, lengths, value if training else loss.detach(), warmup)
            if carried:
                warmup = 0  # a washout is left out once, where the streams start from a zero state
    return metrics.compute()


def clip_gradients(model: nn.Module, cfg: Config) -> None:
    """Clip by norm or value at `optim.grad_clip` (> 0; run_epoch decides once per epoch whether to call this)."""
    params = [p for p in model.parameters() if p.grad is not None]
    if cfg.optim.clip_mode == "value":
        torch.nn.utils.clip_grad_value_(params, cfg.optim.grad_clip)
    else:
        torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip)


# --- fit ---------------------------------------------------------------------------------------------------------


def _better(value: float, best: float | None, mode: str) -> bool:
    return best is None or (value > best if mode == "max" else value < best)


def _check_finite(metrics: dict[str, float], epoch: int) -> None:
    bad = [k for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise TrialDiverged(f"{', '.join(bad)} = {metrics[bad[0]]} at epoch {epoch}")


def score_outputs(model, data: TaskData, split_name: str, cfg: Config, outputs) -> dict[str, float]:
    """A split's metrics from the current model's outputs on its evaluation batches, computed already (a closed-form
    fit's harvest, `SequenceModel.fit_closed_form`): what `run_epoch` gives over them, without a second pass."""
    task = task_of(data.task)
    metrics = Metrics(task, split_name, char_level=cfg.data.tokenizer == "char")
    for outputs_b, lengths, targets in outputs:
        loss = task.loss(outputs_b, targets, lengths, model.warmup_steps)
        metrics.update(outputs_b, targets, lengths, loss, model.warmup_steps)
    return metrics.compute()


def fit(
    model: nn.Module,
    data: TaskData,
    cfg: Config,
    report: Report,
    checkpoint_root: Path,
    resume_state: dict[str, Any] | None = None,
    device=None,
    should_stop: ShouldStop | None = None,
) -> dict[str, Any]:
    """Train for `cfg.train.epochs` (or until early stopping), then test the best model. Returns the result.

    `report` or `should_stop` (polled before each training batch) end the trial with TrialStopped.
    """
    device = device or select_device(cfg.train.device)
    model.to(device)
    optimizer = make_optimizer(model, cfg) if not model.closed_form else None
    scheduler = make_lr_schedule(optimizer, cfg) if optimizer else None
    generator = torch.Generator().manual_seed(cfg.seed)
    start, best, best_epoch, bad_epochs, best_state = 1, None, 0, 0, None
    if resume_state is not None:
        model.load_state_dict(resume_state["model"])
        if optimizer:
            optimizer.load_state_dict(resume_state["optimizer"])
            scheduler.load_state_dict(resume_state["scheduler"])
        torch.set_rng_state(resume_state["torch_rng"])
        generator.set_state(resume_state["generator"])
        start, bad_epochs = resume_state["epoch"] + 1, resume_state["bad_epochs"]
        best, best_epoch, best_state = resume_state["best"], resume_state["best_epoch"], resume_state["best_model"]
    status = "completed"
    selecting = not data.val.empty  # best-epoch selection and early stopping need a validation split
    scored: dict[str, Any] = {}  # a closed-form fit's val metrics: its final model, scored in its one epoch
    with CheckpointWriter(checkpoint_root) as writer:  # fsyncs in the background while the next epoch trains
        for epoch in range(start, cfg.train.epochs + 1):
            t0 = time.perf_counter()
            if model.closed_form:
                batches = iterate_batches(data.train, cfg.train.batch_size, device, None, cfg.train.max_batches)
                model.train(False)  # harvested as evaluated: the train metrics may come from the same features
                # the fit's batches are the train split's evaluation batches unless capped or a token stream
                same = not cfg.train.max_batches and not task_of(data.task).stream
                outputs = model.fit_closed_form(batches, KEEP_FEATURES_MB if same else 0)
                if outputs is None:
                    metrics = run_epoch(model, data, "train", cfg, device)
                else:
                    metrics = score_outputs(model, data, "train", cfg, outputs)
            else:
                metrics = run_epoch(model, data, "train", cfg, device, optimizer, generator, should_stop)
                scheduler.step()
            if selecting:
                metrics.update(run_epoch(model, data, "val", cfg, device))
                metrics.update(evaluation.evaluate_protocols(model, data, "val", cfg, device))
            metrics.update(
                {
                    "epoch": epoch,
                    "lr": optimizer.param_groups[0]["lr"] if optimizer else 0.0,
                    "time/epoch_s": time.perf_counter() - t0,
                }
            )
            _check_finite(metrics, epoch)
            if cfg.train.diagnostics_every and epoch % cfg.train.diagnostics_every == 0:
                metrics.update(diagnostics.collect(model, diagnostics_batch(data, cfg, device), cfg))
            value = metrics[cfg.metric]
            if not selecting:  # no validation split: no epoch is chosen over another, the last one is the model
                best, best_epoch = value, epoch
            elif _better(value, best, cfg.mode):
                best, best_epoch, bad_epochs = value, epoch, 0
                best_state = {k: v.detach().clone().cpu() for k, v in model.state_dict().items()}
            else:
                bad_epochs += 1
            done = model.closed_form or (selecting and cfg.train.patience and bad_epochs >= cfg.train.patience)
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict() if optimizer else {},
                "scheduler": scheduler.state_dict() if scheduler else {},
                "torch_rng": torch.get_rng_state(),
                "generator": generator.get_state(),
                "epoch": epoch if not done else cfg.train.epochs,
                "bad_epochs": bad_epochs,
                "best": best,
                "best_epoch": best_epoch,
                "best_model": best_state,
                "metrics": metrics,
            }
            metrics[f"best/{cfg.metric}"] = best
            folder = writer.save(epoch, state)
            report(metrics, str(folder))
            if done:
                status = "completed" if model.closed_form else "early_stopped"
                if model.closed_form and selecting:
                    scored = {k: v for k, v in metrics.items() if k.startswith("val/")}
                break
    return finish(model, data, cfg, device, best_state, best_epoch, best, status, scored)


def finish(model, data, cfg, device, best_state, best_epoch, best, status, scored=None) -> dict[str, Any]:
    """Test the best model: the result holds its val and test metrics, the best epoch and the status. A split with
    no rows (val_fraction=0, test_fraction=0) has no metrics: a 0 computed on nothing would read as a result.

    `scored`: the val metrics of these very weights, computed in their epoch (a closed-form fit): not computed
    again (the same evaluation of the same weights; a tenth of a 0.1 s ESN trial)."""
    if best_state is not None:
        model.load_state_dict(best_state)
    result: dict[str, Any] = {"status": status, "best_epoch": best_epoch, f"best/{cfg.metric}": best}
    for split in ("val", "test"):
        if split == "val" and scored:
            result.update(scored)
        elif not getattr(data, split).empty:
            result.update(run_epoch(model, data, split, cfg, device))
            result.update(evaluation.evaluate_protocols(model, data, split, cfg, device))
    return result
