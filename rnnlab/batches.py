"""How an epoch cuts a split into (inputs, lengths, targets) batches: whole sequences, shuffled and trimmed to the
longest in their batch; or, for a token stream or one long series, chunks of truncated BPTT along parallel streams.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from rnnlab.config import Config
from rnnlab.data import Split, TaskData
from rnnlab.tasks import task_of


def iterate_batches(
    split: Split, batch_size: int, device, generator: torch.Generator | None = None, max_batches: int = 0
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(inputs, lengths, targets) batches, shuffled when a generator is given, trimmed to their longest sequence."""
    n = split.lengths.shape[0]
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for i, start in enumerate(range(0, n, batch_size)):
        if max_batches and i >= max_batches:
            return
        idx = order[start : start + batch_size]
        lengths = split.lengths[idx]
        T = int(lengths.max())
        inputs, targets = split.inputs[idx, :T], split.targets[idx]
        if targets.dim() >= 2 and targets.shape[1] == split.inputs.shape[1] and split.inputs.dim() >= 2:
            targets = targets[:, :T]  # per-step targets follow the trimmed inputs
        yield inputs.to(device, non_blocking=True), lengths, targets.to(device, non_blocking=True)


def parallel_streams(sequence_L_: torch.Tensor, batch_size: int) -> torch.Tensor:
    """One long sequence (L, ...) cut into `batch_size` parallel streams (B, L // B, ...), as in truncated BPTT."""
    batch_size = max(1, min(batch_size, (sequence_L_.shape[0] - 1) // 2))
    per_stream = sequence_L_.shape[0] // batch_size
    return sequence_L_[: per_stream * batch_size].reshape(batch_size, per_stream, *sequence_L_.shape[1:])


def tbptt_chunks(inputs_BL_: torch.Tensor, targets_BL_: torch.Tensor, bptt: int, device, max_batches: int = 0):
    """(inputs, lengths, targets) chunks of <= bptt consecutive steps along parallel streams: the model carries its
    state from one chunk into the next, gradients stop at the chunk's start (truncated BPTT)."""
    for i, start in enumerate(range(0, inputs_BL_.shape[1], bptt)):
        if max_batches and i >= max_batches:
            return
        x, y = inputs_BL_[:, start : start + bptt], targets_BL_[:, start : start + bptt]
        lengths = torch.full((x.shape[0],), x.shape[1], dtype=torch.long)
        yield x.to(device), lengths, y.to(device)


def lm_chunks(streams_BL: torch.Tensor, bptt: int, device, max_batches: int = 0):
    """Chunks of a token stream's parallel streams, each step's target the next token."""
    return tbptt_chunks(streams_BL[:, :-1], streams_BL[:, 1:], bptt, device, max_batches)


def series_chunks(split: Split, batch_size: int, bptt: int, device, max_batches: int = 0):
    """Chunks of a split that is one long series (inputs (1, T, D), targets (1, T, D')), cut into parallel streams."""
    steps = int(split.lengths[0])
    inputs, targets = (parallel_streams(t[0, :steps], batch_size) for t in (split.inputs, split.targets))
    return tbptt_chunks(inputs, targets, bptt, device, max_batches)


def carries_state(task, split: Split, model, training: bool) -> bool:
    """Whether the epoch runs in chunks with the state carried: a token stream always; a split of one long series
    when training a unidirectional model by gradient (evaluation runs it whole, the same computation)."""
    one_series = task.tbptt and len(split) == 1 and not model.encoder.bidirectional
    return task.stream or (training and one_series)


def diagnostics_batch(data: TaskData, cfg: Config, device):
    """The first training batch in a fixed order: diagnostics draw nothing from the training RNG streams."""
    if task_of(data.task).stream:
        return next(lm_chunks(parallel_streams(data.train.inputs, cfg.train.batch_size), cfg.train.bptt, device))
    return next(iterate_batches(data.train, cfg.train.batch_size, device))
