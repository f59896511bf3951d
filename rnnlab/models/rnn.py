"""Elman RNN, LSTM and GRU on torch's fused kernels, stacked and bidirectional, with packed variable lengths.

Elman (1990):  h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), act = tanh or relu.
LSTM (Hochreiter & Schmidhuber, 1997) and GRU (Cho et al., 2014) follow torch.nn.LSTM / torch.nn.GRU. The
LSTM's gate biases can start as the literature's inits: a forget-gate bias (Gers et al., 2000; Jozefowicz et al.,
2015) or chrono init (Tallec & Ollivier, 2018, "Can recurrent neural networks warp time?"):
b_f ~ log U(1, T_max - 1), b_i = -b_f.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnlab.config import check
from rnnlab.models.encoder import Encoder, RecurrentConfig


@dataclass
class ElmanConfig(RecurrentConfig):
    family: str = "elman"
    nonlinearity: Literal["tanh", "relu"] = "tanh"


@dataclass
class LSTMConfig(RecurrentConfig):
    """An LSTM's settings: those of every stacked recurrent encoder and the init of its gate biases."""

    family: str = "lstm"
    forget_bias: float | None = None  # every forget gate's bias starts at this value (e.g. 1.0); None: torch's init
    chrono_init: int = 0  # T_max of chrono init: b_f ~ log U(1, T_max - 1), b_i = -b_f; 0: off

    def validate(self) -> None:
        super().validate()
        check(
            self.chrono_init == 0 or self.chrono_init >= 2,
            "model.chrono_init",
            f"must be 0 (off) or T_max >= 2 (about the longest dependency, e.g. data.seq_len), got {self.chrono_init}",
        )
        check(
            self.forget_bias is None or math.isfinite(self.forget_bias),
            "model.forget_bias",
            f"must be a finite number (e.g. 1.0) or None (torch's init), got {self.forget_bias}",
        )
        check(
            not (self.chrono_init and self.forget_bias is not None),
            "model.forget_bias",
            "chrono init sets the forget-gate biases itself: give model.forget_bias or model.chrono_init, not both",
        )


class TorchRNN(Encoder):
    """One of torch's fused RNNs as an encoder (the contract of `rnnlab.models.encoder.Encoder`)."""

    cell: type[nn.RNNBase] = nn.RNN

    def __init__(self, cfg: RecurrentConfig, input_size: int):
        super().__init__()
        kwargs = dict(
            input_size=input_size,
            hidden_size=cfg.hidden_size,
            num_layers=cfg.num_layers,
            batch_first=True,
            dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,
            bidirectional=cfg.bidirectional,
        )
        if self.cell is nn.RNN:
            kwargs["nonlinearity"] = cfg.nonlinearity
        self.rnn = self.cell(**kwargs)
        self.bidirectional = cfg.bidirectional
        self.output_size = cfg.hidden_size * (2 if cfg.bidirectional else 1)

    def forward(self, x_BTD: torch.Tensor, lengths_B: torch.Tensor, state=None):
        T = x_BTD.shape[1]
        if int(lengths_B.min()) == T:  # no padding in this batch: the fused kernel on the dense tensor
            out_BTH, state = self.rnn(x_BTD, state)
        else:
            packed = pack_padded_sequence(x_BTD, lengths_B.cpu(), batch_first=True, enforce_sorted=False)
            out_packed, state = self.rnn(packed, state)
            out_BTH, _ = pad_packed_sequence(out_packed, batch_first=True, total_length=T)
        h_LB_H = state[0] if isinstance(state, tuple) else state  # (layers * directions, B, H)
        last_BH = torch.cat([h_LB_H[-2], h_LB_H[-1]], dim=-1) if self.bidirectional else h_LB_H[-1]
        return out_BTH, last_BH, state

    def recurrent_matrices(self) -> dict[str, torch.Tensor]:
        """Hidden-to-hidden weights per layer and direction (for diagnostics), gates stacked as in torch."""
        return {name: p for name, p in self.rnn.named_parameters() if name.startswith("weight_hh")}

    def torch_rnn(self) -> nn.RNNBase:
        return self.rnn


class ElmanRNN(TorchRNN):
    cell = nn.RNN


class LSTM(TorchRNN):
    cell = nn.LSTM

    def __init__(self, cfg: RecurrentConfig, input_size: int):
        super().__init__(cfg, input_size)
        # another family's config may build an LSTM inside it (Hopfield pooling): it keeps torch's init
        init_gate_biases(self.rnn, getattr(cfg, "forget_bias", None), getattr(cfg, "chrono_init", 0))


@torch.no_grad()
def init_gate_biases(lstm: nn.LSTM, forget_bias: float | None, chrono_init: int) -> None:
    """Set every layer's and direction's forget (and, for chrono, input) gate biases; the others keep torch's init.

    torch adds two biases, b_ih + b_hh, gates stacked (input, forget, cell, output): the value goes in b_ih and the
    same gates of b_hh are zeroed, so the gate's total bias is the value. Chrono draws from torch's RNG (the seed).
    """
    if forget_bias is None and not chrono_init:
        return
    H = lstm.hidden_size
    input_gate, forget_gate = slice(0, H), slice(H, 2 * H)
    for name, bias_ih in lstm.named_parameters():
        if not name.startswith("bias_ih"):
            continue
        bias_hh = getattr(lstm, name.replace("bias_ih", "bias_hh"))
        if chrono_init:
            forget = torch.log(1 + (chrono_init - 2) * torch.rand(H))  # log U(1, T_max - 1)
            bias_ih[forget_gate], bias_ih[input_gate] = forget, -forget
            bias_hh[forget_gate], bias_hh[input_gate] = 0.0, 0.0
        else:
            bias_ih[forget_gate], bias_hh[forget_gate] = forget_bias, 0.0


class GRU(TorchRNN):
    cell = nn.GRU
