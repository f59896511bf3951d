"""Elman RNN, LSTM and GRU on torch's fused kernels, stacked and bidirectional, with packed variable lengths.

Elman (1990):  h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), act = tanh or relu.
LSTM (Hochreiter & Schmidhuber, 1997) and GRU (Cho et al., 2014) follow torch.nn.LSTM / torch.nn.GRU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnnlab.models.encoder import Encoder, RecurrentConfig


@dataclass
class ElmanConfig(RecurrentConfig):
    family: str = "elman"
    nonlinearity: Literal["tanh", "relu"] = "tanh"


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


class GRU(TorchRNN):
    cell = nn.GRU
