"""The encoder contract every model family keeps, a registry entry (`Family`: a config class and an encoder), the
config of a stacked recurrent encoder, and the idioms encoders share (padding masks, last valid steps, reversal).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rnnlab.config.schema import ModelConfig, check


@dataclass
class RecurrentConfig(ModelConfig):
    """A stacked, optionally bidirectional recurrent encoder: the config of `gru`, the base of the others (lstm too)."""

    family: str = "lstm"
    hidden_size: int = 128
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0  # between stacked layers

    def validate(self) -> None:
        super().validate()
        check(self.hidden_size > 0, "model.hidden_size", f"must be > 0, got {self.hidden_size}")
        check(self.num_layers >= 1, "model.num_layers", f"must be >= 1, got {self.num_layers}")
        check(0.0 <= self.dropout < 1.0, "model.dropout", f"must be in [0, 1), got {self.dropout}")


class Encoder(nn.Module):
    """forward(x_BTD, lengths_B, state) -> (out_BTH, last_BH, state).

    `out_BTH` holds every step's top-layer output (zeros past a sequence's length), `last_BH` the summary of the
    whole sequence (the forward direction's last valid step, concatenated with the backward direction's first
    step when bidirectional), `state` the recurrent state to carry into the next chunk (language modelling).
    The class attributes and methods below are what the loop, the diagnostics and the closed-form fit ask of an
    encoder; their defaults describe a plain encoder trained by gradient.
    """

    output_size: int  # width of out_BTH and last_BH
    bidirectional: bool = False  # sees the future: refused for causal tasks (language modelling)
    sequence_encoder: bool = True  # False: each step is an independent cue (a Hopfield memory), not a sequence
    closed_form: bool = False  # fit in one pass without gradients (`fit_closed_form`), not by an optimiser
    readout_ridge: float | None = None  # closed form: ridge of the readout fit on its features; None: fits itself
    warmup_steps: int = 0  # leading steps of per-step tasks left out of losses and metrics (a washout)
    reservoir: bool = False  # random frozen states: diagnostics report their statistics
    carries_state: bool = True  # forward(x, lengths, state) continues a sequence exactly (a free run steps on it)

    def fit_closed_form(self, batches) -> None:
        """Fit the encoder itself from (x, lengths, y) batches: a closed-form encoder without a readout ridge."""
        raise NotImplementedError(f"{type(self).__name__} has no fit of its own; give it a readout_ridge")

    def after_step(self) -> None:
        """Called after every optimiser step (IndRNN clamps its recurrent weights to their bound)."""

    def recurrent_matrices(self) -> dict[str, torch.Tensor]:
        """Square (or gate-stacked) hidden-to-hidden matrices by name: diagnostics report their spectral radii."""
        return {}

    def elementwise_recurrences(self) -> dict[str, torch.Tensor]:
        """Vectors u of an element-wise recurrence u * h_{t-1} by name: diagnostics report |u|."""
        return {}

    def torch_rnn(self) -> nn.RNNBase | None:
        """torch's fused RNN inside, if any: diagnostics unroll it step by step for hidden-state gradients."""
        return None


@dataclass(frozen=True)
class Family:
    """One registry entry: the family's config class (beside its model) and its encoder."""

    config: type[ModelConfig]
    encoder: type[Encoder]

    def build(self, cfg: ModelConfig, input_size: int) -> Encoder:
        return self.encoder(cfg, input_size)


# --- idioms shared by the hand-written encoders ------------------------------------------------------------------


def valid_mask(lengths_B: torch.Tensor, T: int, device=None) -> torch.Tensor:
    """(B, T) bool, True at the valid steps of each sequence (padding sits at the end)."""
    steps = torch.arange(T, device=device if device is not None else lengths_B.device)
    return steps[None, :] < lengths_B.to(steps.device)[:, None]


def last_valid(x_BT_: torch.Tensor, lengths_B: torch.Tensor) -> torch.Tensor:
    """x at each sequence's last valid step: (B, ...) from (B, T, ...)."""
    rows = torch.arange(x_BT_.shape[0], device=x_BT_.device)
    return x_BT_[rows, (lengths_B.to(x_BT_.device) - 1).clamp(min=0)]


def run_directions(directions, x_BTD: torch.Tensor, lengths_B: torch.Tensor, h0_BH: torch.Tensor | None, run):
    """One layer of a hand-written (bi)directional encoder: `run(module, x_BTD, h0_BH) -> h_BTH` per direction, the
    backward one on each sequence reversed within its length (so it starts at the last valid step) and from a zero
    state. Returns each direction's (B, T, H) outputs in time order and its final state (B, H)."""
    outputs, finals = [], []
    for direction, module in enumerate(directions):
        if direction == 0:  # padding sits after the valid steps: it never reaches them
            h_BTH = run(module, x_BTD, h0_BH)
            finals.append(last_valid(h_BTH, lengths_B))
        else:
            h_BTH = reverse_padded(run(module, reverse_padded(x_BTD, lengths_B), None), lengths_B)
            finals.append(h_BTH[:, 0])
        outputs.append(h_BTH)
    return outputs, finals


def summary(out_BTH: torch.Tensor, lengths_B: torch.Tensor, directions: int) -> torch.Tensor:
    """The sequence summary, as torch RNNs give it: the forward direction's last valid step, concatenated with the
    backward direction's first step when bidirectional."""
    last_BH = last_valid(out_BTH, lengths_B)
    if directions == 1:
        return last_BH
    H = out_BTH.shape[-1] // 2
    return torch.cat([last_BH[:, :H], out_BTH[:, 0, H:]], dim=-1)


def reverse_padded(x_BT_: torch.Tensor, lengths_B: torch.Tensor) -> torch.Tensor:
    """Each sequence reversed within its own length, padding left in place; applying it twice is the identity.

    The backward direction of a hand-written bidirectional encoder runs on this, so padding never leaks into
    (or delays) the valid steps.
    """
    T = x_BT_.shape[1]
    t = torch.arange(T, device=x_BT_.device)
    lengths = lengths_B.to(x_BT_.device)[:, None]
    index_BT = torch.where(t[None, :] < lengths, lengths - 1 - t[None, :], t[None, :])
    index = index_BT.view(*index_BT.shape, *([1] * (x_BT_.dim() - 2))).expand_as(x_BT_)
    return x_BT_.gather(1, index)
