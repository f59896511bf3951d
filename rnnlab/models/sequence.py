"""A task model: (token embedding) -> recurrent encoder from the registry -> a head for the task.

Heads: classification and regression read the encoder's sequence summary; tagging, language modelling and
forecasting read every step; associative recall passes the encoder's recalled pattern through.
Encoders marked `closed_form` (reservoirs with a ridge readout, Hopfield memories) are fit in one pass over the
train split by `fit_closed_form`, called by the same training loop. The encoder contract is in `encoder.py`.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from rnnlab.models.encoder import Encoder
from rnnlab.tasks import Task


class SequenceModel(nn.Module):
    def __init__(self, encoder: Encoder, task: Task, output_size: int, vocab_size: int = 0, embedding_size: int = 0):
        super().__init__()
        self.task = task
        self.embedding = nn.Embedding(vocab_size, embedding_size, padding_idx=0) if vocab_size else None
        self.encoder = encoder
        self.head = nn.Linear(encoder.output_size, output_size) if task.head else nn.Identity()

    @property
    def closed_form(self) -> bool:
        return self.encoder.closed_form

    @property
    def warmup_steps(self) -> int:
        """Leading steps of per-step tasks left out of losses and metrics (a reservoir's washout)."""
        return self.encoder.warmup_steps

    def features(self, inputs: torch.Tensor, lengths_B: torch.Tensor, state=None):
        x = self.embedding(inputs) if self.embedding is not None else inputs
        return self.encoder(x, lengths_B, state)

    def forward(self, inputs: torch.Tensor, lengths_B: torch.Tensor, state=None):
        """(outputs, state): outputs (B, C) for sequence-level tasks, (B, T, C) for per-step tasks."""
        out_BTH, last_BH, state = self.features(inputs, lengths_B, state)
        return self.head(out_BTH if self.task.per_step else last_BH), state

    @torch.no_grad()
    def fit_closed_form(self, batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], keep_mb: int = 0):
        """Fit without gradients: a ridge readout over the encoder's features (its `readout_ridge`), or, for an
        encoder without one, the encoder's own fit.

        `keep_mb`: also return each batch's (outputs, lengths, targets) of the fitted model, the head applied to the
        features the fit harvested (what a forward pass over the same batches computes), while those features take
        at most `keep_mb` MB; else (or without a ridge readout) None, and the caller runs the batches again."""
        if self.encoder.readout_ridge is None:
            self.encoder.fit_closed_form(((self._embed(x), n, y) for x, n, y in batches))
            return None
        features, targets, kept, room = [], [], [], keep_mb * 2**20
        for inputs, lengths, y in batches:
            out_BTH, last_BH, _ = self.features(inputs, lengths)
            seen = out_BTH if self.task.per_step else last_BH
            room -= seen.numel() * seen.element_size()
            if room >= 0:
                kept.append((seen, lengths, y))
            else:  # over the budget: the caller runs the batches again
                kept.clear()
            if self.task.per_step:
                steps = self._valid_steps(out_BTH, lengths)
                features.append(out_BTH[steps])
                targets.append(self._readout_targets(y[steps]))
            else:
                features.append(last_BH)
                targets.append(self._readout_targets(y))
        weight, bias = ridge_regression(torch.cat(features), torch.cat(targets), self.encoder.readout_ridge)
        self.head.weight.copy_(weight)
        self.head.bias.copy_(bias)
        return [(self.head(seen), lengths, y) for seen, lengths, y in kept] if room >= 0 else None

    def _embed(self, inputs):
        return self.embedding(inputs) if self.embedding is not None else inputs

    def _valid_steps(self, out_BTH: torch.Tensor, lengths_B: torch.Tensor) -> torch.Tensor:
        t = torch.arange(out_BTH.shape[1], device=out_BTH.device)
        return (t[None, :] < lengths_B[:, None].to(t.device)) & (t[None, :] >= self.warmup_steps)

    def _readout_targets(self, y: torch.Tensor) -> torch.Tensor:
        if y.dtype.is_floating_point:  # a batch of sequences no longer than the washout gives (0, O)
            return y.flatten(1) if y.dim() > 1 else y[:, None]
        keep = y >= 0  # class ids; IGNORE_INDEX (< 0) marks ignored steps
        onehot = torch.zeros(y.shape[0], self.head.out_features, device=y.device)
        onehot[keep, y[keep]] = 1.0
        return onehot


def ridge_regression(X_NF: torch.Tensor, Y_NO: torch.Tensor, ridge: float) -> tuple[torch.Tensor, torch.Tensor]:
    """argmin_W ||[X 1] W - Y||^2 + ridge ||W||^2 by a Cholesky solve of the normal equations (bias unpenalised).

    The Gram matrix of [X 1] is assembled from X^T X, X^T 1 and N, so X is never copied to append the ones column.
    """
    dtype = torch.float64
    X, Y = X_NF.to(dtype), Y_NO.to(dtype)
    F = X.shape[1]
    gram = X.new_empty(F + 1, F + 1)
    gram[:F, :F] = symmetric_gram(X)
    gram[F, :F] = gram[:F, F] = X.sum(dim=0)
    gram[F, F] = X.shape[0]
    gram.diagonal()[:F] += ridge
    XtY = torch.cat([X.T @ Y, Y.sum(dim=0, keepdim=True)])
    try:
        chol = torch.linalg.cholesky(gram)
        W = torch.cholesky_solve(XtY, chol)
    except torch.linalg.LinAlgError:  # singular without ridge: least squares instead
        W = torch.linalg.lstsq(gram, XtY).solution
    weight, bias = W[:-1].T, W[-1]
    return weight.to(X_NF.dtype), bias.to(X_NF.dtype)


def symmetric_gram(X_NF: torch.Tensor, block: int = 512) -> torch.Tensor:
    """X^T X computing only the column blocks on and above the diagonal (~60% of the FLOPs for F = 2000)."""
    F = X_NF.shape[1]
    if 2 * block > F:
        return X_NF.T @ X_NF
    gram = X_NF.new_empty(F, F)
    for i in range(0, F, block):
        rows = X_NF[:, i : i + block].T @ X_NF[:, i:]
        gram[i : i + block, i:] = rows
        gram[i + block :, i : i + block] = rows[:, block:].T
    return gram
