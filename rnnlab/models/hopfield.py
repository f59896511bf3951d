"""Hopfield networks: the classical binary associative memory and the modern continuous Hopfield layer.

Classical (Hopfield, 1982):  s_i <- sign(sum_j W_ij s_j),  W from the Hebbian rule W = (1/N) sum_mu xi^mu xi^mu^T
or Storkey's (1997) rule, zero diagonal; energy E(s) = -1/2 s^T W s never increases under asynchronous updates.
A unit whose field is exactly zero keeps its bit: fields are computed in float64 from integer Hebbian couplings
N W, so a zero in exact arithmetic is a zero here (tests/test_hopfield_exact.py).
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
        if self.hopfield.encoder == "none":  # the pooling reads the inputs themselves: no layers to stack
            for name, default in (("num_layers", 1), ("dropout", 0.0)):
                value = getattr(self, name)
                check(
                    value == default,
                    f"model.{name}",
                    f"is read by the encoder under the pooling only (model.hopfield.encoder=lstm or gru), not "
                    f"encoder=none, so {value!r} would be ignored: leave it at its default ({default!r})",
                )


def hebbian_counts(patterns_PN: torch.Tensor) -> tuple[torch.Tensor, float]:
    """N W = sum_mu xi xi^T with a zero diagonal (no unit excites itself): integers, exact in float64 (|C| <= P),
    so fields C s are exact and a field that is zero is exactly zero (W = C / N would round 1/N)."""
    counts = patterns_PN.to(torch.float64).T @ patterns_PN.to(torch.float64)
    return counts.fill_diagonal_(0.0), float(patterns_PN.shape[1])


EXACT_FLOAT64 = 2.0**53  # integers below this are exact in float64


def storkey_couplings(patterns_PN: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Storkey (1997): W += (xi xi^T - xi h^T - h xi^T) / N per pattern, with the local fields
    h_ij = sum_{k != i, j} W_ik xi_k; the cross-talk terms raise the capacity over Hebb's ~0.14 N.

    After k patterns W is a rational with denominator N^k, so (C, s) with W = C / s is kept in integers
    (C = N^k W, s = N^k) while every intermediate stays below 2^53 (exact in float64); past that (many patterns)
    it goes on in float64 W itself (s = 1), rounded at ~1e-16 relative."""
    n = patterns_PN.shape[1]
    coupling, scale = patterns_PN.new_zeros(n, n), 1.0
    for xi in patterns_PN:
        if scale > 1.0 and 4.0 * n * n * max(scale, coupling.abs().max().item()) >= EXACT_FLOAT64:
            coupling, scale = coupling / scale, 1.0  # no longer exact in integers: W in float64 from here
        exact = scale > 1.0 or not coupling.any()
        field = coupling @ xi
        local_NN = field[:, None] - coupling.diagonal()[:, None] * xi[:, None] - coupling * xi[None, :]
        update = scale * torch.outer(xi, xi) - xi[:, None] * local_NN.T - local_NN * xi[None, :]
        coupling, scale = (n * coupling + update, scale * n) if exact else (coupling + update / n, 1.0)
    return coupling.fill_diagonal_(0.0), scale


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
        # W = coupling / scale, the couplings in float64 that fields are computed from: integers where exact
        # (Hebbian N W always, Storkey N^P W while it fits 53 bits), so a zero field is exactly zero.
        self.register_buffer("coupling", torch.zeros(input_size, input_size, dtype=torch.float64))
        self.register_buffer("scale", torch.ones((), dtype=torch.float64))

    @property
    def weight(self) -> torch.Tensor:
        """W = coupling / scale (float64)."""
        return self.coupling / self.scale

    @torch.no_grad()
    def fit_closed_form(self, batches) -> None:
        """Store every target pattern of the train split (float ±1 (B, D) targets)."""
        patterns = torch.cat([y.reshape(y.shape[0], -1) for _, _, y in batches])
        self.store(patterns)

    @torch.no_grad()
    def store(self, patterns_PN: torch.Tensor) -> None:
        rules = {"hebbian": hebbian_counts, "storkey": storkey_couplings}
        coupling, scale = rules[self.rule](patterns_PN.to(torch.float64))
        self.coupling.copy_(coupling)
        self.scale.fill_(scale)

    def energy(self, state_BN: torch.Tensor) -> torch.Tensor:
        """E(s) = -1/2 s^T W s per row (float64)."""
        state = state_BN.to(torch.float64)
        return -0.5 * ((state @ self.coupling) * state).sum(dim=-1) / self.scale

    @torch.no_grad()
    def recall(self, cue_BN: torch.Tensor) -> torch.Tensor:
        """Iterate the update from sign(cue) to a fixed point or `max_iterations` sweeps; fields in float64 from
        the couplings (the sign of C s is that of W s), the recall in the cue's dtype."""
        return self._recall(cue_BN.to(torch.float64)).to(cue_BN.dtype)

    def _recall(self, cue_BN: torch.Tensor) -> torch.Tensor:
        weight = self.coupling
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

    carries_state = False  # the pooling reads the whole sequence: a state carried one step at a time forgets it

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
