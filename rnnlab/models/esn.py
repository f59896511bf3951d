"""Echo state network (Jaeger, 2001; Lukosevicius, 2012, "A practical guide to applying echo state networks").

    x[t] = (1 - a) x[t-1] + a tanh(W_in u[t] + W x[t-1] + b),    a = leak_rate, rho(W) = spectral_radius

The reservoir (W_in, W, b) is random and frozen; only the task head (the readout) learns, in closed form by ridge
regression (`readout="ridge"`) or by gradient. Also here: Jaeger's memory capacity (closed-loop prediction:
`rnnlab.evaluation`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from rnnlab.config import ModelConfig, check
from rnnlab.models.encoder import Encoder, run_directions, valid_mask


@dataclass
class ESNConfig:
    """Echo state network: leaky reservoir x[t] = (1-a) x[t-1] + a tanh(W_in u[t] + W x[t-1] + b), its readout."""

    units: int = 500
    spectral_radius: float = 0.9
    leak_rate: float = 0.3
    input_scaling: float = 1.0
    density: float = 0.1  # fraction of non-zero recurrent weights
    input_density: float = 1.0  # fraction of non-zero input weights
    bias_scaling: float = 0.0
    washout: int = 0  # leading time steps left out of the ridge fit
    ridge: float = 1e-6
    readout: Literal["ridge", "gradient"] = "ridge"
    pooling: Literal["last", "mean"] = "last"  # state summary for sequence-level tasks


@dataclass
class ESNModelConfig(ModelConfig):
    """A deep (num_layers reservoirs) and optionally bidirectional echo state network."""

    family: str = "esn"
    num_layers: int = 1
    bidirectional: bool = False
    esn: ESNConfig = field(default_factory=ESNConfig)

    def validate(self) -> None:
        super().validate()
        e = self.esn
        check(self.num_layers >= 1, "model.num_layers", f"must be >= 1, got {self.num_layers}")
        check(e.units > 0, "model.esn.units", f"must be > 0, got {e.units}")
        check(e.spectral_radius > 0, "model.esn.spectral_radius", f"must be > 0, got {e.spectral_radius}")
        check(0 < e.leak_rate <= 1, "model.esn.leak_rate", f"must be in (0, 1], got {e.leak_rate}")
        check(0 < e.density <= 1, "model.esn.density", f"must be in (0, 1], got {e.density}")
        check(0 < e.input_density <= 1, "model.esn.input_density", f"must be in (0, 1], got {e.input_density}")
        check(e.input_scaling > 0, "model.esn.input_scaling", f"must be > 0, got {e.input_scaling}")
        check(e.bias_scaling >= 0, "model.esn.bias_scaling", f"must be >= 0, got {e.bias_scaling}")
        check(e.washout >= 0, "model.esn.washout", f"must be >= 0, got {e.washout}")
        check(e.ridge >= 0, "model.esn.ridge", f"must be >= 0, got {e.ridge}")

    def warmup(self) -> tuple[str, int]:
        return "model.esn.washout", self.esn.washout


# CSR beats a dense product once rows hold enough non-zeros (measured on CPU, B = 1 and 64, N = 200..2000, in
# benchmarks/esn_vs_reservoirpy.py): from ~500 units at density 0.1; denser reservoirs stay dense.
SPARSE_MIN_UNITS = 500
SPARSE_MAX_DENSITY = 0.1


def draw_reservoir(units: int, input_size: int, cfg: ESNModelConfig, generator: torch.Generator) -> dict:
    """W_in, W, b of one reservoir in float64, W rescaled so its largest |eigenvalue| is exactly spectral_radius."""
    e = cfg.esn

    def sparse_uniform(rows: int, cols: int, density: float) -> torch.Tensor:
        values = 2 * torch.rand(rows, cols, generator=generator, dtype=torch.float64) - 1
        return values * (torch.rand(rows, cols, generator=generator, dtype=torch.float64) < density)

    input_weight = e.input_scaling * sparse_uniform(units, input_size, e.input_density)
    bias = e.bias_scaling * (2 * torch.rand(units, generator=generator, dtype=torch.float64) - 1)
    for _ in range(10):  # a very sparse small matrix can be nilpotent (radius 0) and cannot be rescaled: redraw
        weight = torch.randn(units, units, generator=generator, dtype=torch.float64)
        weight = weight * (torch.rand(units, units, generator=generator, dtype=torch.float64) < e.density)
        radius = torch.linalg.eigvals(weight).abs().max()
        if radius > 1e-8:
            return {"input_weight": input_weight, "weight": weight * (e.spectral_radius / radius), "bias": bias}
    raise ValueError(f"model.esn.density={e.density} leaves a {units}-unit reservoir without a spectral radius")


class Reservoir(nn.Module):
    """One leaky reservoir layer in one direction; its weights are buffers (saved, moved, never optimised)."""

    def __init__(self, units: int, input_size: int, cfg: ESNModelConfig, generator: torch.Generator):
        super().__init__()
        for name, tensor in draw_reservoir(units, input_size, cfg, generator).items():
            self.register_buffer(name, tensor)
        self.leak_rate = cfg.esn.leak_rate
        self.sparse = units >= SPARSE_MIN_UNITS and cfg.esn.density <= SPARSE_MAX_DENSITY

    def forward(self, u_BTD: torch.Tensor, state_BU: torch.Tensor | None = None) -> torch.Tensor:
        """States (B, T, U) for every step; padding must be at the end (it only follows the valid steps)."""
        dtype = u_BTD.dtype
        B, T, _ = u_BTD.shape
        # One input projection for all steps: the loop below is only the recurrent product, the tanh and the leak,
        # three ops per step writing into preallocated memory. States are kept as columns (U, B) so the product
        # is W @ x whether W is dense or CSR, and each step's output is one contiguous block of states_TUB.
        drive_TBU = torch.addmm(
            self.bias.to(dtype), u_BTD.transpose(0, 1).reshape(T * B, -1), self.input_weight.to(dtype).T
        ).view(T, B, -1)
        weight = self.recurrent_operator(dtype)
        U = drive_TBU.shape[-1]
        x_UB = state_BU.to(dtype).T.contiguous() if state_BU is not None else drive_TBU.new_zeros(U, B)
        if torch.is_grad_enabled() and (drive_TBU.requires_grad or x_UB.requires_grad):
            return self._differentiable_loop(drive_TBU, weight, x_UB)  # e.g. a deep ESN under a gradient readout
        states_TUB = drive_TBU.new_empty(T, U, B)
        pre_UB = drive_TBU.new_empty(U, B)
        for t in range(T):
            if B == 1:  # matrix-vector: the cheapest kernel for one sequence (e.g. a long time series)
                torch.addmv(drive_TBU[t, 0], weight, x_UB[:, 0], out=pre_UB[:, 0])
            else:
                torch.addmm(drive_TBU[t].T, weight, x_UB, out=pre_UB)
            x_UB = torch.lerp(x_UB, pre_UB.tanh_(), self.leak_rate, out=states_TUB[t])
        return states_TUB.permute(2, 0, 1)

    def _differentiable_loop(self, drive_TBU: torch.Tensor, weight: torch.Tensor, x_UB: torch.Tensor) -> torch.Tensor:
        """The same recurrence without `out=` buffers, for inputs that carry gradients."""
        states = []
        for t in range(drive_TBU.shape[0]):
            x_UB = torch.lerp(x_UB, torch.addmm(drive_TBU[t].T, weight, x_UB).tanh(), self.leak_rate)
            states.append(x_UB)
        return torch.stack(states).permute(2, 0, 1)

    def recurrent_operator(self, dtype: torch.dtype) -> torch.Tensor:
        """W in `dtype`, as CSR with int32 indices when sparse (half the index traffic of int64), cached until
        the buffer changes (e.g. load_state_dict), so one-step calls (closed-loop generation) do not rebuild it."""
        # Tensor._version is torch's in-place version counter (no public accessor; stable since torch 1.0)
        key = (dtype, self.weight.device, self.weight.data_ptr(), self.weight._version)
        cached = getattr(self, "_operator", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        weight = self.weight.to(dtype)
        if self.sparse:
            csr = weight.to_sparse_csr()
            weight = torch.sparse_csr_tensor(
                csr.crow_indices().int(), csr.col_indices().int(), csr.values(), csr.shape, check_invariants=True
            )
        self._operator = (key, weight)
        return weight


class ESN(Encoder):
    """Echo state network encoder (see the module docstring), stacked (deep ESN) and optionally bidirectional.

    Layer l > 0 reads layer l-1's states (both directions concatenated). The features, per step and summary,
    are the concatenation of every layer's and direction's states (Gallicchio et al., 2017, "Deep reservoir
    computing"), so `output_size = units * num_layers * directions`.
    The weights come from a generator seeded with `torch.initial_seed()` at build time: `run_trial` seeds torch
    with the trial seed first, so the reservoir is a function of the trial seed.
    """

    reservoir = True

    def __init__(self, cfg: ESNModelConfig, input_size: int):
        super().__init__()
        e = cfg.esn
        generator = torch.Generator().manual_seed(torch.initial_seed())
        self.directions = 2 if cfg.bidirectional else 1
        self.layers = nn.ModuleList()
        for layer in range(cfg.num_layers):
            size = input_size if layer == 0 else e.units * self.directions
            self.layers.append(nn.ModuleList(Reservoir(e.units, size, cfg, generator) for _ in range(self.directions)))
        self.output_size = e.units * cfg.num_layers * self.directions
        self.units = e.units
        self.pooling = e.pooling
        self.bidirectional = cfg.bidirectional
        self.closed_form = e.readout == "ridge"
        self.readout_ridge = e.ridge
        self.warmup_steps = cfg.warmup()[1]

    def recurrent_matrices(self) -> dict[str, torch.Tensor]:
        """Each reservoir's W, named by its module path (`layers.0.1`: layer 0, backward direction)."""
        layers = enumerate(self.layers)
        return {f"layers.{i}.{d}": r.weight for i, directions in layers for d, r in enumerate(directions)}

    def forward(self, x_BTD: torch.Tensor, lengths_B: torch.Tensor, state=None):
        """state: (layers * directions, B, units) last valid states, as torch RNNs; only forward passes resume."""
        T = x_BTD.shape[1]
        dtype = torch.float64 if x_BTD.dtype == torch.float64 else torch.float32
        x_BTD = x_BTD.to(dtype)
        valid_BT1 = valid_mask(lengths_B, T, x_BTD.device)[..., None]
        features, finals = [], []
        layer_input = x_BTD
        for layer, directions in enumerate(self.layers):
            h0 = state[layer * self.directions] if state is not None else None
            outputs, layer_finals = run_directions(directions, layer_input, lengths_B, h0, lambda r, x, h: r(x, h))
            finals += layer_finals
            layer_input = torch.cat(outputs, dim=-1) * valid_BT1
            features.append(layer_input)
        out_BTH = torch.cat(features, dim=-1)
        if self.pooling == "mean":
            last_BH = out_BTH.sum(dim=1) / lengths_B.to(out_BTH.device, dtype)[:, None].clamp(min=1)
        else:
            last_BH = torch.cat(finals, dim=-1)
        return out_BTH, last_BH, torch.stack(finals)
