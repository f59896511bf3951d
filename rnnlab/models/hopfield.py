"""Hopfield networks: the classical binary associative memory and the modern continuous Hopfield layer.

Classical (Hopfield, 1982):  s_i <- sign(sum_j W_ij s_j),  W from the Hebbian rule W = (1/N) sum_mu xi^mu xi^mu^T
or Storkey's (1997) rule, zero diagonal; energy E(s) = -1/2 s^T W s never increases under asynchronous updates.
Modern (Ramsauer et al., "Hopfield Networks is All You Need", ICLR 2021):  xi_new = X softmax(beta X^T xi).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from rnnlab.config import ModelConfig, check
from rnnlab.models.encoder import Encoder, RecurrentConfig, last_valid, valid_mask
from rnnlab.models.rnn import GRU, LSTM

UPDATE_ORDER_SEED = 0  # seeds the unit order of asynchronous updates, fresh at every recall: recall is deterministic


@dataclass
class HopfieldConfig:
    """The classical memory's settings (`model.hopfield.*` of family `hopfield`)."""

    rule: Literal["hebbian", "storkey"] = "hebbian"
    update: Literal["sync", "async"] = "async"
    max_iterations: int = 20


@dataclass
class HopfieldModelConfig(ModelConfig):
    family: str = "hopfield"
    hopfield: HopfieldConfig = field(default_factory=HopfieldConfig)

    def validate(self) -> None:
        super().validate()
        check(self.hopfield.max_iterations >= 1, "model.hopfield.max_iterations", "must be >= 1")


@dataclass
class HopfieldPoolingConfig:
    """Hopfield pooling's settings (`model.hopfield.*` of family `hopfield_pool`)."""

    beta: float = 1.0  # inverse temperature of the modern update softmax(beta X^T xi)
    num_queries: int = 1  # learned query patterns
    encoder: Literal["none", "lstm", "gru"] = "none"  # recurrent encoder under the pooling layer


@dataclass
class HopfieldPoolModelConfig(RecurrentConfig):
    """hidden_size is the width of the queries and retrieved patterns; an encoder under the pooling also uses
    num_layers, bidirectional and dropout."""

    family: str = "hopfield_pool"
    hopfield: HopfieldPoolingConfig = field(default_factory=HopfieldPoolingConfig)

    def validate(self) -> None:
        super().validate()
        check(self.hopfield.beta > 0, "model.hopfield.beta", f"must be > 0, got {self.hopfield.beta}")
        check(self.hopfield.num_queries >= 1, "model.hopfield.num_queries", "must be >= 1")


def hebbian_weights(patterns_PN: torch.Tensor) -> torch.Tensor:
    """W = (1/N) sum_mu xi xi^T with a zero diagonal (no unit excites itself)."""
    weight = patterns_PN.T @ patterns_PN / patterns_PN.shape[1]
    return weight.fill_diagonal_(0.0)


def storkey_weights(patterns_PN: torch.Tensor) -> torch.Tensor:
    """Storkey (1997): W += (xi xi^T - xi h^T - h xi^T) / N per pattern, with the local fields
    h_ij = sum_{k != i, j} W_ik xi_k; the cross-talk terms raise the capacity over Hebb's ~0.14 N."""
    n = patterns_PN.shape[1]
    weight = patterns_PN.new_zeros(n, n)
    for xi in patterns_PN:
        field = weight @ xi
        local_NN = field[:, None] - weight.diagonal()[:, None] * xi[:, None] - weight * xi[None, :]
        weight = weight + (torch.outer(xi, xi) - xi[:, None] * local_NN.T - local_NN * xi[None, :]) / n
    return weight.fill_diagonal_(0.0)


def sign_keep(field: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
    """sign(field), keeping the previous state where the field is exactly zero."""
    return torch.where(field > 0, 1.0, torch.where(field < 0, -1.0, previous)).to(previous.dtype)


class HopfieldMemory(Encoder):
    """Classical binary Hopfield memory for the `recall` task, fit in closed form (`fit_closed_form`).

    What the encoder contract means here: every step of x (B, T, D) is an independent cue, recalled to a stored
    pattern (a ±1 vector of width D = input_size = output_size); `out_BTH` holds the recalls (zeros past a
    sequence's length), `last_BH` the recall of the last valid step (for the recall task's single-step cues, the
    recalled pattern), `state` is None. Recall is a sign threshold, so no gradient flows (`sequence_encoder = False`
    keeps it out of the sequence-model contract tests).
    """

    closed_form = True
    sequence_encoder = False

    def __init__(self, cfg: HopfieldModelConfig, input_size: int):
        super().__init__()
        h = cfg.hopfield
        self.rule, self.update, self.max_iterations = h.rule, h.update, h.max_iterations
        self.output_size = input_size
        self.register_buffer("weight", torch.zeros(input_size, input_size))

    @torch.no_grad()
    def fit_closed_form(self, batches) -> None:
        """Store every target pattern of the train split (float ±1 (B, D) targets)."""
        patterns = torch.cat([y.reshape(y.shape[0], -1) for _, _, y in batches]).to(self.weight)
        self.store(patterns)

    @torch.no_grad()
    def store(self, patterns_PN: torch.Tensor) -> None:
        rules = {"hebbian": hebbian_weights, "storkey": storkey_weights}
        self.weight.copy_(rules[self.rule](patterns_PN.to(torch.float64)))

    def energy(self, state_BN: torch.Tensor) -> torch.Tensor:
        """E(s) = -1/2 s^T W s per row."""
        weight = self.weight.to(state_BN.dtype)
        return -0.5 * ((state_BN @ weight) * state_BN).sum(dim=-1)

    @torch.no_grad()
    def recall(self, cue_BN: torch.Tensor) -> torch.Tensor:
        """Iterate the update from sign(cue) to a fixed point or `max_iterations` sweeps."""
        weight = self.weight.to(cue_BN.dtype)
        state = sign_keep(cue_BN, torch.ones_like(cue_BN))
        if self.update == "sync":
            for _ in range(self.max_iterations):
                new = sign_keep(state @ weight, state)
                if torch.equal(new, state):
                    break
                state = new
            return state
        generator = torch.Generator().manual_seed(UPDATE_ORDER_SEED)
        field = state @ weight  # kept current: a flip of unit i changes every field by its weight row
        for _ in range(self.max_iterations):
            changed = False
            for i in torch.randperm(state.shape[1], generator=generator).tolist():
                new = sign_keep(field[:, i], state[:, i])
                delta = new - state[:, i]
                if delta.any():
                    changed = True
                    state[:, i] = new
                    field += delta[:, None] * weight[i][None, :]
            if not changed:
                break
        return state

    def forward(self, x_BTD: torch.Tensor, lengths_B: torch.Tensor, state=None):
        B, T, D = x_BTD.shape
        recalled_BTD = self.recall(x_BTD.reshape(B * T, D)).view(B, T, D)
        out_BTD = recalled_BTD * valid_mask(lengths_B, T, x_BTD.device)[..., None]
        return out_BTD, last_valid(out_BTD, lengths_B), None


class HopfieldLayer(nn.Module):
    """Modern Hopfield association: softmax(beta Q K^T) V with Q = R W_Q (state patterns), K = Y W_K and
    V = Y W_V (stored patterns). Without projections (`projections=False`) it is the update of Ramsauer et al.,
    xi_new = X softmax(beta X^T xi), for the stored patterns X = Y^T and the state pattern xi = R."""

    def __init__(self, state_size: int, stored_size: int, hidden_size: int, beta: float, projections: bool = True):
        super().__init__()
        self.beta = beta
        self.query = nn.Linear(state_size, hidden_size, bias=False) if projections else nn.Identity()
        self.key = nn.Linear(stored_size, hidden_size, bias=False) if projections else nn.Identity()
        self.value = nn.Linear(stored_size, hidden_size, bias=False) if projections else nn.Identity()

    def forward(self, state_BQR: torch.Tensor, stored_BSY: torch.Tensor, mask_BXQS: torch.Tensor | None = None):
        """(B, Q, H) retrieved patterns; with a mask (B, X, Q, S) (True = may attend), (B, X, Q, H): one
        retrieval per leading index X (e.g. per time step, each seeing its own prefix)."""
        scores_BQS = self.beta * self.query(state_BQR) @ self.key(stored_BSY).transpose(1, 2)
        values_BSH = self.value(stored_BSY)
        if mask_BXQS is None:
            return torch.softmax(scores_BQS, dim=-1) @ values_BSH
        scores = scores_BQS[:, None].masked_fill(~mask_BXQS, float("-inf"))
        return torch.softmax(scores, dim=-1) @ values_BSH[:, None]


class HopfieldPooling(Encoder):
    """Hopfield pooling (Ramsauer et al., 2021): `num_queries` learned state patterns retrieve from the sequence
    (raw inputs, or the states of an LSTM/GRU under it, `model.hopfield.encoder`), padding masked.

    Step t of `out_BTH` pools over steps 0..t (causal), or over the whole sequence when bidirectional;
    `last_BH` is the pooling over every valid step. output_size = num_queries * hidden_size.
    """

    def __init__(self, cfg: HopfieldPoolModelConfig, input_size: int):
        super().__init__()
        h = cfg.hopfield
        encoders = {"lstm": LSTM, "gru": GRU}
        self.encoder = encoders[h.encoder](cfg, input_size) if h.encoder != "none" else None
        stored_size = self.encoder.output_size if self.encoder is not None else input_size
        self.queries = nn.Parameter(torch.randn(h.num_queries, cfg.hidden_size) / cfg.hidden_size**0.5)
        self.layer = HopfieldLayer(cfg.hidden_size, stored_size, cfg.hidden_size, h.beta)
        self.bidirectional = cfg.bidirectional
        self.output_size = h.num_queries * cfg.hidden_size

    def forward(self, x_BTD: torch.Tensor, lengths_B: torch.Tensor, state=None):
        if self.encoder is not None:
            x_BTD, _, state = self.encoder(x_BTD, lengths_B, state)
        B, T, _ = x_BTD.shape
        steps = torch.arange(T, device=x_BTD.device)
        valid_BS = valid_mask(lengths_B, T, x_BTD.device)
        if self.bidirectional:
            mask_BXS = valid_BS[:, None, :]  # one retrieval over the whole valid sequence, the same at every step
        else:
            mask_BXS = valid_BS[:, None, :] & (steps[None, :, None] >= steps[None, None, :])  # (B, T, S): s <= t
        mask_BXQS = mask_BXS[:, :, None, :].expand(-1, -1, self.queries.shape[0], -1)
        retrieved = self.layer(self.queries.expand(B, -1, -1), x_BTD, mask_BXQS).flatten(2)
        out_BTH = retrieved.expand(-1, T, -1) * valid_BS[..., None]
        return out_BTH, last_valid(out_BTH, lengths_B), state
