"""minGRU (Feng, Tung, Ahmed, Bengio & Hajimirsadeghi, 2024, "Were RNNs All We Needed?"), and the parallel scan it
shares with minLSTM (`minlstm.py`).

    z_t = sigmoid(W_z x_t),   h~_t = g(W_h x_t),   h_t = (1 - z_t) * h_{t-1} + z_t * h~_t

The gates read only the input, so h_t = a_t * h_{t-1} + b_t is a linear recurrence computed for all steps at once by
a parallel scan in log space (`scan="log"`, the default; training never loops over time) or step by step
(`scan="sequential"`, the reference). g(x) = x + 0.5 for x >= 0, sigmoid(x) otherwise, keeps h~ positive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from rnnlab.models.encoder import Encoder, RecurrentConfig, run_directions, summary, valid_mask


@dataclass
class MinRNNScanConfig:
    """How the recurrence is computed (`model.mingru.*`, `model.minlstm.*`)."""

    scan: Literal["log", "sequential"] = "log"  # log: parallel scan in log space; sequential: the loop over time


@dataclass
class MinGRUConfig(RecurrentConfig):
    family: str = "mingru"
    mingru: MinRNNScanConfig = field(default_factory=MinRNNScanConfig)


def g(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def log_g(x: torch.Tensor) -> torch.Tensor:
    """log g(x), computed without forming g(x) for x < 0: log sigmoid(x) = -softplus(-x)."""
    return torch.where(x >= 0, (F.relu(x) + 0.5).log(), -F.softplus(-x))


def scan_log(log_a_BTH: torch.Tensor, log_b_BTH: torch.Tensor, h0_BH: torch.Tensor | None = None) -> torch.Tensor:
    """h_t = a_t h_{t-1} + b_t (a, b > 0) for every t at once (Heinsen, 2023): with A_t = sum_{s<=t} log a_s,
    log h_t = A_t + logcumsumexp_{s<=t}(log b_s - A_s). h_0 (> 0), when given, enters as a first step with a = 1."""
    if h0_BH is not None:
        log_a_BTH = F.pad(log_a_BTH, (0, 0, 1, 0))
        log_b_BTH = torch.cat([h0_BH.log()[:, None], log_b_BTH], dim=1)
    a_star_BTH = log_a_BTH.cumsum(dim=1)
    h_BTH = (a_star_BTH + torch.logcumsumexp(log_b_BTH - a_star_BTH, dim=1)).exp()
    return h_BTH[:, 1:] if h0_BH is not None else h_BTH


def scan_sequential(a_BTH: torch.Tensor, b_BTH: torch.Tensor, h0_BH: torch.Tensor | None = None) -> torch.Tensor:
    """The same recurrence, one step at a time."""
    h = h0_BH if h0_BH is not None else a_BTH.new_zeros(a_BTH.shape[0], a_BTH.shape[2])
    steps = []
    for t in range(a_BTH.shape[1]):
        h = a_BTH[:, t] * h + b_BTH[:, t]
        steps.append(h)
    return torch.stack(steps, dim=1)


class MinRNNLayer(nn.Module):
    """One layer, one direction: every gate from one input projection, then the scan."""

    def __init__(self, input_size: int, hidden_size: int, gates: int, coefficients, scan: str):
        super().__init__()
        self.input = nn.Linear(input_size, gates * hidden_size)
        self.coefficients, self.scan = coefficients, scan

    def forward(self, x_BTD: torch.Tensor, h0_BH: torch.Tensor | None) -> torch.Tensor:
        log_a, log_b = self.coefficients(self.input(x_BTD))
        if self.scan == "log":
            return scan_log(log_a, log_b, h0_BH)
        return scan_sequential(log_a.exp(), log_b.exp(), h0_BH)


class MinRNN(Encoder):
    """A stacked minimal RNN, bidirectional by a second scan reversed within each sequence's length; subclasses
    give `gates` and `coefficients(pre_BTG) -> (log a, log b)`."""

    gates: int = 2

    def __init__(self, cfg: RecurrentConfig, input_size: int, scan: str):
        super().__init__()
        self.hidden_size, self.num_layers = cfg.hidden_size, cfg.num_layers
        self.bidirectional = cfg.bidirectional
        self.directions = 2 if cfg.bidirectional else 1
        self.layers = nn.ModuleList()
        for layer in range(cfg.num_layers):
            size = input_size if layer == 0 else cfg.hidden_size * self.directions
            self.layers.append(
                nn.ModuleList(
                    MinRNNLayer(size, cfg.hidden_size, self.gates, self.coefficients, scan)
                    for _ in range(self.directions)
                )
            )
        self.dropout = nn.Dropout(cfg.dropout)
        self.output_size = cfg.hidden_size * self.directions

    @staticmethod
    def coefficients(pre_BTG: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def forward(self, x_BTD: torch.Tensor, lengths_B: torch.Tensor, state=None):
        """state: (layers * directions, B, H) final states, as torch RNNs; only forward directions resume from it."""
        lengths = lengths_B.to(x_BTD.device)
        valid_BT1 = valid_mask(lengths, x_BTD.shape[1])[..., None]
        layer_input, finals = x_BTD, []
        for index, directions in enumerate(self.layers):
            h0 = state[index * self.directions] if state is not None else None
            outputs, layer_finals = run_directions(directions, layer_input, lengths, h0, lambda m, x, h: m(x, h))
            finals += layer_finals
            layer_input = torch.cat(outputs, dim=-1) * valid_BT1
            if index < self.num_layers - 1:
                layer_input = self.dropout(layer_input)
        return layer_input, summary(layer_input, lengths, self.directions), torch.stack(finals)


class MinGRU(MinRNN):
    gates = 2

    def __init__(self, cfg: MinGRUConfig, input_size: int):
        super().__init__(cfg, input_size, cfg.mingru.scan)

    @staticmethod
    def coefficients(pre_BTG: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """log a = log(1 - z) = -softplus(k), log b = log z + log g(h~) = -softplus(-k) + log g(.)."""
        k_BTH, candidate_BTH = pre_BTG.chunk(2, dim=-1)
        return -F.softplus(k_BTH), -F.softplus(-k_BTH) + log_g(candidate_BTH)
