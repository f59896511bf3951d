"""Section 1: recurrent kernels, forward + backward on CPU: rnnlab's IndRNN against nn.LSTM, nn.GRU and nn.RNN.

Analytic FLOPs of one forward pass over (B, T, I) inputs with hidden size H (multiply-add = 2 FLOPs; the
elementwise gate arithmetic, O(B*H) per step, is left out except for IndRNN, where it is most of the non-matmul work):
    LSTM   T * 2B(I+H) * 4H        GRU  T * 2B(I+H) * 3H        RNN  T * 2B(I+H) * H
    IndRNN T * (2B*I*H + 3B*H)     (one input projection; the recurrence is u * h, + drive, relu)
Forward + backward ~ 3x forward (gradients for the weights and for the inputs each cost one more matmul).
The ceiling is a 2048^3 torch.mm at the same thread count, timed in the same run.
"""

from __future__ import annotations

import torch

from benchmarks.timing import Goal, Section, interleaved_medians, table
from rnnlab.models import model_config
from rnnlab.models.indrnn import IndRNN

SHAPES = [(64, 200, 128), (64, 100, 512)]  # (B, T, I = H)
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def forward_flops(name: str, B: int, T: int, size: int) -> float:
    if name == "IndRNN":
        return T * (2 * B * size * size + 3 * B * size)
    return T * 2 * B * (size + size) * GATES[name] * size


def mm_gflops(repeats: int, n: int = 2048) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    seconds = interleaved_medians({"mm": lambda: torch.mm(a, b)}, repeats, warmup=1)["mm"]
    return 2 * n**3 / seconds / 1e9


def build(name: str, size: int) -> torch.nn.Module:
    if name == "IndRNN":
        return IndRNN(model_config("indrnn", hidden_size=size), size)
    return {"LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU, "RNN": torch.nn.RNN}[name](size, size, batch_first=True)


def step(model: torch.nn.Module, x: torch.Tensor, lengths: torch.Tensor):
    def run() -> None:
        out = model(x, lengths)[0] if isinstance(model, IndRNN) else model(x)[0]
        out.sum().backward()
        model.zero_grad(set_to_none=True)
        x.grad = None

    return run


def run(quick: bool) -> Section:
    torch.manual_seed(0)
    repeats = 2 if quick else 7
    ceiling = mm_gflops(repeats)
    rows, goals = [], []
    for B, T, size in SHAPES:
        x = torch.randn(B, T, size, requires_grad=True)
        lengths = torch.full((B,), T)
        names = ["IndRNN", "LSTM", "GRU", "RNN"]
        seconds = interleaved_medians({n: step(build(n, size), x, lengths) for n in names}, repeats)
        for n in names:
            gflops = 3 * forward_flops(n, B, T, size) / seconds[n] / 1e9
            rows.append(
                [
                    f"B={B} T={T} H={size}",
                    n,
                    seconds[n] * 1e3,
                    seconds["LSTM"] / seconds[n],
                    gflops,
                    f"{100 * gflops / ceiling:.0f}%",
                ]
            )
        goals.append(
            Goal(
                f"IndRNN vs LSTM fwd+bwd speed-up (B={B}, T={T}, H={size})",
                seconds["LSTM"] / seconds["IndRNN"],
                ">= 10x",
            )
        )
    detail = table(["shape", "model", "fwd+bwd ms", "speed-up vs LSTM", "GFLOP/s", "of mm ceiling"], rows)
    detail += f"\n\nCeiling: torch.mm 2048^3 = {ceiling:.1f} GFLOP/s at {torch.get_num_threads()} thread(s)."
    return Section("Recurrent kernels (CPU, forward + backward)", goals, detail)
