"""Forward + backward time of one IndRNN layer against torch.nn.LSTM of the same size; prints markdown rows.

python benchmarks/indrnn_speed.py   (B=64, T=200, input = hidden = 128, 1 and 2 threads)
"""

from __future__ import annotations

import time

import torch

from rnnlab.models import model_config
from rnnlab.models.indrnn import IndRNN

B, T, SIZE = 64, 200, 128


def time_forward_backward(module, x: torch.Tensor, run, repeats: int = 20) -> float:
    """Median seconds of one forward + backward pass (after warm-up)."""
    times = []
    for i in range(repeats + 3):
        start = time.perf_counter()
        out = run(module, x)
        out.sum().backward()
        if i >= 3:
            times.append(time.perf_counter() - start)
        module.zero_grad(set_to_none=True)
        x.grad = None
    return sorted(times)[len(times) // 2]


def main() -> None:
    torch.manual_seed(0)
    indrnn = IndRNN(model_config("indrnn", hidden_size=SIZE), SIZE)
    lstm = torch.nn.LSTM(SIZE, SIZE, batch_first=True)
    x = torch.randn(B, T, SIZE, requires_grad=True)
    lengths = torch.full((B,), T)
    print("| threads | IndRNN fwd+bwd (ms) | LSTM fwd+bwd (ms) | speed-up |")
    print("|---|---|---|---|")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        ind = time_forward_backward(indrnn, x, lambda m, x: m(x, lengths)[0])
        ref = time_forward_backward(lstm, x, lambda m, x: m(x)[0])
        print(f"| {threads} | {ind * 1e3:.2f} | {ref * 1e3:.2f} | {ref / ind:.1f}x |")


if __name__ == "__main__":
    main()
