"""Independently recurrent neural network (Li, Li, Cook, Zhu & Gao, "Independently Recurrent Neural Network
(IndRNN): Building A Longer and Deeper RNN", CVPR 2018).

    h_t = relu(W x_t + u * h_{t-1} + b),    |u| <= gamma^(1/T)

Each unit only feeds itself (`u` is a vector), so after one input projection for all steps the recurrence is
elementwise; it runs in a hand-written autograd Function with an explicit backward over time: a compiled C++ loop
(`indrnn_kernel.py`, built on first use) on CPU, else the same loop in Python. Env `RNNLAB_INDRNN_KERNEL`:
`auto` (default: C++ where it can run, else Python, said once in the log), `cpp` (C++ or an error), `python`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from rnnlab.config import check
from rnnlab.models import indrnn_kernel
from rnnlab.models.encoder import Encoder, RecurrentConfig, run_directions, summary, valid_mask

log = logging.getLogger(__name__)

DEFAULT_TIME_STEPS = 100  # T of the initial bound when model.indrnn.time_steps = 0 and no data has been seen yet


@dataclass
class IndRNNConfig:
    """IndRNN's own settings (`model.indrnn.*`): the bound |u| <= gamma^(1/T) and the layer options."""

    recurrent_gamma: float = 2.0  # largest gradient growth allowed over the sequence
    time_steps: int = 0  # T in the bound; 0 takes the data's sequence length
    batch_norm: bool = False
    residual: bool = False


@dataclass
class IndRNNModelConfig(RecurrentConfig):
    family: str = "indrnn"
    indrnn: IndRNNConfig = field(default_factory=IndRNNConfig)

    def validate(self) -> None:
        super().validate()
        check(self.indrnn.recurrent_gamma > 0, "model.indrnn.recurrent_gamma", "must be > 0")
        check(self.indrnn.time_steps >= 0, "model.indrnn.time_steps", "must be >= 0 (0: the data's length)")


class IndRNNRecurrence(torch.autograd.Function):
    """h_t = relu(drive_t + u * h_{t-1}) over a (B, T, H) drive, with the backward pass through time by hand.

    Backward: with g_t = dL/dh_t (from outputs) + u * dL/dpre_{t+1}, dL/dpre_t = g_t * [h_t > 0]; then
    dL/du = sum_t dL/dpre_t * h_{t-1} and dL/dh_0 = u * dL/dpre_1. The relu mask comes from the saved outputs.
    Each step is a (B, H) slice with contiguous rows, so no (T, B, H) copy of the drive or the outputs is made.
    """

    @staticmethod
    def forward(ctx, drive_BTH: torch.Tensor, recurrent_H: torch.Tensor, h0_BH: torch.Tensor) -> torch.Tensor:
        h_BTH = torch.empty_like(drive_BTH)
        steps, drives = h_BTH.unbind(1), drive_BTH.unbind(1)  # views made once: the loop only does arithmetic
        h = h0_BH
        for t in range(drive_BTH.shape[1]):
            h = torch.addcmul(drives[t], recurrent_H, h, out=steps[t]).relu_()
        ctx.save_for_backward(h_BTH, recurrent_H, h0_BH)
        return h_BTH

    @staticmethod
    def backward(ctx, grad_h_BTH: torch.Tensor):
        h_BTH, recurrent_H, h0_BH = ctx.saved_tensors
        active_BTH = h_BTH.sign()  # h >= 0, so its sign is the relu derivative, already in the float dtype
        grad_pre_BTH = torch.empty_like(h_BTH)
        grads, pres = grad_h_BTH.unbind(1), grad_pre_BTH.unbind(1)
        actives, hs = active_BTH.unbind(1), h_BTH.unbind(1)
        T = h_BTH.shape[1]
        # dL/du = sum_t dpre_t * h_{t-1} accumulates per step in a (B, H) buffer that stays in cache: one small op
        # per step costs less than a reduction over the strided (B, T-1, H) product after the loop.
        grad_recurrent_BH = torch.zeros_like(h0_BH, dtype=h_BTH.dtype)
        carry = torch.mul(grads[T - 1], actives[T - 1], out=pres[T - 1])
        for t in range(T - 1, 0, -1):
            grad_recurrent_BH.addcmul_(carry, hs[t - 1])
            carry = torch.addcmul(grads[t - 1], recurrent_H, carry, out=pres[t - 1]).mul_(actives[t - 1])
        grad_recurrent_BH.addcmul_(carry, h0_BH)
        return grad_pre_BTH, grad_recurrent_BH.sum(dim=0), recurrent_H * carry


class IndRNNKernelRecurrence(torch.autograd.Function):
    """IndRNNRecurrence with both loops in compiled C++ (`indrnn_kernel.py`): one call per pass instead of ~5 small
    torch ops per step. CPU, float32/float64; `recurrence()` chooses between the two."""

    @staticmethod
    def forward(ctx, drive_BTH: torch.Tensor, recurrent_H: torch.Tensor, h0_BH: torch.Tensor) -> torch.Tensor:
        h_BTH = indrnn_kernel.load().recurrence_forward(drive_BTH, recurrent_H, h0_BH)
        ctx.save_for_backward(h_BTH, recurrent_H, h0_BH)
        return h_BTH

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_h_BTH: torch.Tensor):
        h_BTH, recurrent_H, h0_BH = ctx.saved_tensors
        return indrnn_kernel.load().recurrence_backward(grad_h_BTH, h_BTH, recurrent_H, h0_BH)


KERNELS = ("auto", "cpp", "python")
_said_fallback: set[str] = set()


def kernel_unavailable(*tensors: torch.Tensor) -> str | None:
    """Why the C++ recurrence can't run on these tensors (None when it can); may compile it on the first call."""
    if any(t.device.type != "cpu" for t in tensors):
        return f"tensors on {tensors[0].device.type}"
    if any(t.dtype not in (torch.float32, torch.float64) or t.dtype != tensors[0].dtype for t in tensors):
        return f"dtype {tensors[0].dtype}"
    if indrnn_kernel.load() is None:
        return f"the C++ one could not be built: {indrnn_kernel._failed}"
    return None


def recurrence(drive_BTH: torch.Tensor, recurrent_H: torch.Tensor, h0_BH: torch.Tensor) -> torch.Tensor:
    """h_t = relu(drive_t + u * h_{t-1}) by the Function RNNLAB_INDRNN_KERNEL picks (see the module docstring)."""
    kernel = os.environ.get("RNNLAB_INDRNN_KERNEL", "auto").strip().lower() or "auto"
    if kernel not in KERNELS:
        raise ValueError(f"RNNLAB_INDRNN_KERNEL={kernel!r}: expected one of {', '.join(KERNELS)}")
    if kernel != "python":
        reason = kernel_unavailable(drive_BTH, recurrent_H, h0_BH)
        if reason is None:
            return IndRNNKernelRecurrence.apply(drive_BTH, recurrent_H, h0_BH)
        if kernel == "cpp":
            raise RuntimeError(f"RNNLAB_INDRNN_KERNEL=cpp but the C++ IndRNN recurrence can't run: {reason}")
        say_fallback(reason)
    return IndRNNRecurrence.apply(drive_BTH, recurrent_H, h0_BH)


def say_fallback(reason: str) -> None:
    if reason not in _said_fallback:  # one line per reason and process
        _said_fallback.add(reason)
        log.warning("IndRNN: the Python recurrence runs (%s)", reason)


def prepare_kernel() -> bool:
    """Build the C++ recurrence now (or find it cached), e.g. in a search's driver before its trials fan out, so
    that they find it built instead of each waiting for one build; True when it is ready. Nothing to do (False)
    under RNNLAB_INDRNN_KERNEL=python; a build that fails or times out is said in one line, as at first use."""
    if os.environ.get("RNNLAB_INDRNN_KERNEL", "auto").strip().lower() == "python":
        return False
    reason = kernel_unavailable(torch.zeros(1, 1, 1), torch.zeros(1), torch.zeros(1, 1))
    if reason is not None:
        say_fallback(reason)
    return reason is None


class IndRNNLayer(nn.Module):
    """One layer, one direction: input projection (optionally batch-normalised over features), then the recurrence."""

    def __init__(self, input_size: int, hidden_size: int, batch_norm: bool, low: float, high: float):
        super().__init__()
        self.input = nn.Linear(input_size, hidden_size)
        # Li et al. (2018), Sec. 4: recurrent weights uniform in [0, bound] ([low, bound] near 1 in the last layer
        # keeps its long memory); the input projection keeps torch's default fan-in init, bias zero.
        self.recurrent = nn.Parameter(torch.empty(hidden_size).uniform_(low, high))
        nn.init.zeros_(self.input.bias)
        self.norm = nn.BatchNorm1d(hidden_size) if batch_norm else None

    def forward(self, x_BTD: torch.Tensor, valid_BT: torch.Tensor | None, h0_BH: torch.Tensor | None):
        drive_BTH = self.input(x_BTD)
        if self.norm is not None:  # statistics over the valid steps only, so padding changes nothing
            if valid_BT is None:
                drive_BTH = self.norm(drive_BTH.flatten(0, 1)).view_as(drive_BTH)
            else:
                normed = drive_BTH.new_zeros(drive_BTH.shape)
                normed[valid_BT] = self.norm(drive_BTH[valid_BT])
                drive_BTH = normed
        if h0_BH is None:
            h0_BH = drive_BTH.new_zeros(drive_BTH.shape[0], drive_BTH.shape[2])
        return recurrence(drive_BTH, self.recurrent.to(drive_BTH.dtype), h0_BH)


class IndRNN(Encoder):
    """Stacked IndRNN encoder: dropout between layers, optional residual connections (layers whose input and
    output widths agree) and batch norm, bidirectional by a second pass reversed within each sequence's length.

    `after_step()` clamps every |u| to gamma^(1/T), T = model.indrnn.time_steps or, when 0, the longest sequence
    seen so far (kept in the buffer `longest_sequence`, so a resumed trial clamps the same way).
    """

    def __init__(self, cfg: IndRNNModelConfig, input_size: int):
        super().__init__()
        c = cfg.indrnn
        self.hidden_size, self.num_layers = cfg.hidden_size, cfg.num_layers
        self.bidirectional = cfg.bidirectional
        self.directions = 2 if cfg.bidirectional else 1
        self.recurrent_gamma, self.time_steps = c.recurrent_gamma, c.time_steps
        self.residual = c.residual
        self.register_buffer("longest_sequence", torch.tensor(0))
        bound = self.recurrent_bound(c.time_steps or DEFAULT_TIME_STEPS)
        self.layers = nn.ModuleList()
        for layer in range(cfg.num_layers):
            size = input_size if layer == 0 else cfg.hidden_size * self.directions
            low = 1.0 / bound if layer == cfg.num_layers - 1 else 0.0
            self.layers.append(
                nn.ModuleList(
                    IndRNNLayer(size, cfg.hidden_size, c.batch_norm, low, bound) for _ in range(self.directions)
                )
            )
        self.dropout = nn.Dropout(cfg.dropout)
        self.output_size = cfg.hidden_size * self.directions

    def recurrent_bound(self, time_steps: int) -> float:
        return self.recurrent_gamma ** (1.0 / max(time_steps, 1))

    def elementwise_recurrences(self) -> dict[str, torch.Tensor]:
        """Every layer's and direction's u, by parameter name (`layers.0.1.recurrent`: layer 0, backward)."""
        return {name: p for name, p in self.named_parameters() if name.endswith(".recurrent")}

    @torch.no_grad()
    def after_step(self) -> None:
        bound = self.recurrent_bound(self.time_steps or int(self.longest_sequence))
        for directions in self.layers:
            for layer in directions:
                layer.recurrent.clamp_(-bound, bound)

    def forward(self, x_BTD: torch.Tensor, lengths_B: torch.Tensor, state=None):
        """state: (layers * directions, B, H) final states, as torch RNNs; only forward directions resume from it."""
        T = x_BTD.shape[1]
        lengths = lengths_B.to(x_BTD.device)
        self.longest_sequence.fill_(max(int(self.longest_sequence), T))
        padded = bool((lengths < T).any())
        valid_BT = valid_mask(lengths, T) if padded else None
        layer_input, finals = x_BTD, []

        def run(layer, x_BTD, h0_BH):
            return layer(x_BTD, valid_BT, h0_BH)

        for index, directions in enumerate(self.layers):
            h0 = state[index * self.directions] if state is not None else None
            outputs, layer_finals = run_directions(directions, layer_input, lengths, h0, run)
            finals += layer_finals
            h_BTH = torch.cat(outputs, dim=-1) if self.directions == 2 else outputs[0]
            if self.residual and h_BTH.shape[-1] == layer_input.shape[-1]:
                h_BTH = h_BTH + layer_input
            if index < self.num_layers - 1:
                h_BTH = self.dropout(h_BTH)
            layer_input = h_BTH
        out_BTH = layer_input * valid_BT[..., None] if padded else layer_input
        return out_BTH, summary(out_BTH, lengths, self.directions), torch.stack(finals)
