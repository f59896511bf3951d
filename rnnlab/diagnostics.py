"""RNN diagnostics on one batch: how gradients flow through time and how saturated the recurrence is.

`collect(model, batch, cfg)` returns `diag/...` metrics: per-parameter gradient norms, the loss gradient w.r.t.
the hidden state at a few evenly spaced steps (vanishing/exploding gradients, Bengio et al., 1994; Pascanu et al.,
2013), spectral radii of recurrent matrices, gate saturation of LSTM/GRU, |u| of IndRNN and reservoir state
statistics of ESNs. Pure torch; the training loop calls it every `train.diagnostics_every` epochs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from rnnlab.config import Config
from rnnlab.models.encoder import Encoder
from rnnlab.tasks import Task

HIDDEN_GRAD_STEPS = 5  # time steps reported, evenly spaced from the first to the last
SATURATION = (0.05, 0.95)  # a sigmoid gate below/above these is saturated (closed/open)
STATE_SATURATION = 0.95  # a tanh state with |x| above this is saturated
GATE_NAMES = {nn.LSTM: ("input", "forget", "cell", "output"), nn.GRU: ("reset", "update", "new")}
SIGMOID_GATES = {nn.LSTM: ("input", "forget", "output"), nn.GRU: ("reset", "update")}


# --- step-by-step unroll of torch's fused RNNs -------------------------------------------------------------------


def cell_step(rnn: nn.RNNBase, w: dict[str, torch.Tensor], x_BD, h_BH, c_BH):
    """One step of `rnn`'s cell on explicit weights: (h, c, {gate: activation}), as torch.nn.RNN/LSTM/GRU."""
    gi = x_BD @ w["weight_ih"].T + w["bias_ih"]
    gh = h_BH @ w["weight_hh"].T + w["bias_hh"]
    if isinstance(rnn, nn.LSTM):
        i, f, g, o = (gi + gh).chunk(4, dim=-1)
        i, f, g, o = i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()
        c_BH = f * c_BH + i * g
        return o * c_BH.tanh(), c_BH, {"input": i, "forget": f, "output": o}
    if isinstance(rnn, nn.GRU):
        ir, iz, in_ = gi.chunk(3, dim=-1)
        hr, hz, hn = gh.chunk(3, dim=-1)
        r, z = (ir + hr).sigmoid(), (iz + hz).sigmoid()
        n = (in_ + r * hn).tanh()
        return (1 - z) * n + z * h_BH, c_BH, {"reset": r, "update": z}
    pre = gi + gh
    return (pre.tanh() if rnn.nonlinearity == "tanh" else pre.relu()), c_BH, {}


def layer_weights(rnn: nn.RNNBase, layer: int, suffix: str, dtype) -> dict[str, torch.Tensor]:
    """Detached copies in `dtype`: the unroll differentiates w.r.t. states only, never the trained weights."""
    weights = {name: getattr(rnn, f"{name}_l{layer}{suffix}", None) for name in ("weight_ih", "weight_hh")}
    for name in ("bias_ih", "bias_hh"):  # absent when the RNN was built with bias=False
        weights[name] = getattr(rnn, f"{name}_l{layer}{suffix}", None)
        if weights[name] is None:
            weights[name] = torch.zeros(())
    return {name: w.detach().to(dtype=dtype, device=weights["weight_hh"].device) for name, w in weights.items()}


def unroll(rnn: nn.RNNBase, x_BTD: torch.Tensor, lengths_B: torch.Tensor, dtype=torch.float64):
    """Run `rnn` (batch_first, zero initial state) one step at a time, as its fused kernel on packed sequences.

    Returns (out_BTH, last_BH, top_states, gate_stats): `top_states` are the top layer's forward-direction h_t,
    nodes of the graph to differentiate the loss against; `gate_stats` maps a gate to its (saturated count,
    total count) over valid steps. Steps past a sequence's length keep its state.
    """
    B, T, _ = x_BTD.shape
    valid_BT1 = (torch.arange(T, device=x_BTD.device)[None, :] < lengths_B.to(x_BTD.device)[:, None])[..., None]
    layer_in = x_BTD.detach().to(dtype).requires_grad_()  # makes every h_t a node of the graph
    top_states: list[torch.Tensor] = []
    gate_stats: dict[str, list[float]] = {}
    finals = []
    directions = 2 if rnn.bidirectional else 1
    for layer in range(rnn.num_layers):
        outs = []
        for direction in range(directions):
            w = layer_weights(rnn, layer, "_reverse" if direction else "", dtype)
            h = layer_in.new_zeros(B, rnn.hidden_size)
            c = torch.zeros_like(h)
            out = [None] * T
            for t in range(T) if direction == 0 else reversed(range(T)):
                m = valid_BT1[:, t]
                h_new, c_new, gates = cell_step(rnn, w, layer_in[:, t], h, c)
                h, c = torch.where(m, h_new, h), torch.where(m, c_new, c)
                out[t] = h_new * m
                if layer == rnn.num_layers - 1 and direction == 0:
                    top_states.append(h)
                for name, a in gates.items():
                    counts = gate_stats.setdefault(f"l{layer}{'_reverse' if direction else ''}/{name}", [0.0, 0.0])
                    saturated = ((a < SATURATION[0]) | (a > SATURATION[1])) & m
                    counts[0] += float(saturated.sum())
                    counts[1] += float(m.sum()) * a.shape[-1]
            outs.append(torch.stack(out, dim=1))
            finals.append(h)
        layer_in = torch.cat(outs, dim=-1)
    last_BH = torch.cat(finals[-2:], dim=-1) if rnn.bidirectional else finals[-1]
    return layer_in, last_BH, top_states, gate_stats


# --- the diagnostics -----------------------------------------------------------------------------------------------


def gradient_norms(model: nn.Module, batch, task: Task) -> dict[str, float]:
    """Per-parameter gradient norms of the batch loss (the model's own forward), leaving `.grad` as it was."""
    inputs, lengths, targets = batch
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    saved = {n: p.grad for n, p in params.items()}
    for p in params.values():
        p.grad = None
    try:
        with torch.enable_grad():
            outputs, _ = model(inputs, lengths)
            task.loss(outputs, targets, lengths, model.warmup_steps).backward()
        norms = {f"diag/grad_norm/{n}": float(p.grad.norm()) for n, p in params.items() if p.grad is not None}
    finally:
        for n, p in params.items():
            p.grad = saved[n]
    if norms:
        norms["diag/grad_norm/total"] = sum(v * v for v in norms.values()) ** 0.5
    return norms


def hidden_gradients(model: nn.Module, rnn: nn.RNNBase, batch, task: Task) -> dict[str, Any]:
    """|dL/dh_t| at evenly spaced steps and first/last, plus gate saturation, from one float64 unroll."""
    inputs, lengths, targets = batch
    x = model.embedding(inputs) if model.embedding is not None else inputs
    with torch.enable_grad():
        out_BTH, last_BH, states, gate_stats = unroll(rnn, x, lengths)
        features = out_BTH if task.per_step else last_BH
        head_dtype = next(model.head.parameters(), torch.empty(0)).dtype
        loss = task.loss(model.head(features.to(head_dtype)), targets, lengths, model.warmup_steps)
        # autograd.grad, not backward: the head's parameters must not collect gradients
        grads = torch.autograd.grad(loss, states, allow_unused=True)
    norms = [float(g.norm()) if g is not None else 0.0 for g in grads]
    T = len(norms)
    steps = sorted({round(k * (T - 1) / (HIDDEN_GRAD_STEPS - 1)) for k in range(HIDDEN_GRAD_STEPS)})
    metrics: dict[str, Any] = {f"diag/hidden_grad/t={t}": norms[t] for t in steps}
    metrics["diag/hidden_grad_ratio"] = norms[0] / norms[-1] if norms[-1] > 0 else float("nan")
    for name, (saturated, total) in gate_stats.items():
        metrics[f"diag/gate_saturation/{name}"] = saturated / max(total, 1.0)
    return metrics


def spectral_radius(matrix: torch.Tensor) -> float:
    return float(torch.linalg.eigvals(matrix.detach().double().cpu()).abs().max())


@torch.no_grad()
def spectral_radii(encoder: Encoder, rnn: nn.RNNBase | None) -> dict[str, float]:
    """Largest |eigenvalue| of each recurrent matrix; LSTM/GRU per gate block (each square)."""
    radii = {}
    for name, weight in encoder.recurrent_matrices().items():
        if weight.dim() == 2 and weight.shape[0] == weight.shape[1]:
            radii[f"diag/spectral_radius/{name}"] = spectral_radius(weight)
        elif rnn is not None and type(rnn) in GATE_NAMES and weight.dim() == 2:
            for gate, block in zip(GATE_NAMES[type(rnn)], weight.chunk(len(GATE_NAMES[type(rnn)]), dim=0)):
                radii[f"diag/spectral_radius/{name}/{gate}"] = spectral_radius(block)
    return radii


@torch.no_grad()
def indrnn_weights(encoder: Encoder) -> dict[str, float]:
    """|u| of element-wise recurrent weights (IndRNN's u * h_{t-1}): near the bound means near gradient explosion."""
    stats = {}
    for name, p in encoder.elementwise_recurrences().items():
        u = p.detach().abs()
        for stat in ("mean", "max", "min"):
            stats[f"diag/indrnn_u/{name}/{stat}"] = float(getattr(u, stat)())
    return stats


@torch.no_grad()
def reservoir_states(model: nn.Module, batch) -> dict[str, float]:
    """Mean |x|, std and saturated fraction of a reservoir's states over the batch's valid steps."""
    inputs, lengths, _ = batch
    out_BTH, _, _ = model.features(inputs, lengths)
    valid = torch.arange(out_BTH.shape[1], device=out_BTH.device)[None, :] < lengths.to(out_BTH.device)[:, None]
    x = out_BTH[valid]
    return {
        "diag/reservoir/mean_abs": float(x.abs().mean()),
        "diag/reservoir/std": float(x.std()),
        "diag/reservoir/saturation": float((x.abs() > STATE_SATURATION).float().mean()),
    }


def collect(model: nn.Module, batch, cfg: Config) -> dict[str, Any]:
    """Every diagnostic that applies to `model` on `batch` (inputs, lengths, targets), as `diag/...` metrics.

    The model's weights, gradients and training mode are left as they were, and no random number is drawn.
    """
    encoder, task = model.encoder, model.task
    rnn = encoder.torch_rnn()
    was_training = model.training
    model.eval()  # dropout off: diagnostics describe the network, not one dropout mask
    try:
        metrics: dict[str, Any] = {}
        if not model.closed_form and any(p.requires_grad for p in model.parameters()):
            metrics.update(gradient_norms(model, batch, task))
        if rnn is not None:
            metrics.update(hidden_gradients(model, rnn, batch, task))
        metrics.update(spectral_radii(encoder, rnn))
        metrics.update(indrnn_weights(encoder))
        if encoder.reservoir:
            metrics.update(reservoir_states(model, batch))
    finally:
        model.train(was_training)
    return metrics
