"""minGRU and minLSTM (Feng et al., 2024): the log-space parallel scan equals their sequential recurrence, which
equals the paper's equations, in values and gradients, with padding, layers, directions and a carried state."""

import dataclasses

import pytest
import torch

from rnnlab.models import MODELS
from rnnlab.models.mingru import g, log_g, scan_log, scan_sequential

B, T, D, H = 3, 9, 4, 5


def encoder(family: str, scan: str, **settings):
    torch.manual_seed(0)
    cfg = MODELS[family].config(family=family, hidden_size=H, **settings)
    cfg = dataclasses.replace(cfg, **{family: dataclasses.replace(getattr(cfg, family), scan=scan)})
    return MODELS[family].build(cfg, D).double()


def paper_recurrence(family: str, layer, x_BTD: torch.Tensor) -> torch.Tensor:
    """The paper's equations for one layer, written out step by step."""
    h = torch.zeros(x_BTD.shape[0], H, dtype=x_BTD.dtype)
    states = []
    for t in range(x_BTD.shape[1]):
        pre = layer.input(x_BTD[:, t])
        if family == "mingru":
            k, candidate = pre.chunk(2, dim=-1)
            z = torch.sigmoid(k)
            h = (1 - z) * h + z * g(candidate)
        else:
            k_f, k_i, candidate = pre.chunk(3, dim=-1)
            f, i = torch.sigmoid(k_f), torch.sigmoid(k_i)
            h = f / (f + i) * h + i / (f + i) * g(candidate)
        states.append(h)
    return torch.stack(states, dim=1)


def test_log_g_is_the_log_of_g():
    x = torch.linspace(-30, 30, 601, dtype=torch.float64)
    torch.testing.assert_close(log_g(x), g(x).log(), rtol=1e-9, atol=1e-12)  # g(-30) itself rounds


def test_the_log_scan_solves_the_linear_recurrence_from_an_initial_state():
    torch.manual_seed(0)
    a, b, h0 = torch.rand(2, 50, 3).double(), torch.rand(2, 50, 3).double(), torch.rand(2, 3).double() + 0.1
    torch.testing.assert_close(scan_log(a.log(), b.log(), h0), scan_sequential(a, b, h0), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("family", ["mingru", "minlstm"])
def test_one_layer_is_the_papers_recurrence(family):
    model = encoder(family, "log")
    x = torch.randn(B, T, D, dtype=torch.float64)
    out, last, _ = model(x, torch.full((B,), T))
    expected = paper_recurrence(family, model.layers[0][0], x)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(last, expected[:, -1])


@pytest.mark.parametrize("family", ["mingru", "minlstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_the_parallel_scan_equals_the_sequential_one_in_values_and_gradients(family, bidirectional):
    parallel = encoder(family, "log", num_layers=2, bidirectional=bidirectional)
    sequential = encoder(family, "sequential", num_layers=2, bidirectional=bidirectional)
    sequential.load_state_dict(parallel.state_dict())
    x, lengths = torch.randn(B, T, D, dtype=torch.float64), torch.tensor([9, 4, 6])
    outputs = []
    for model in (parallel, sequential):
        out, last, state = model(x, lengths)
        (out.square().sum() + last.sum()).backward()
        outputs.append((out, last, state, [p.grad.clone() for p in model.parameters()]))
    (out_p, last_p, state_p, grads_p), (out_s, last_s, state_s, grads_s) = outputs
    for got, expected in [(out_p, out_s), (last_p, last_s), (state_p, state_s), *zip(grads_p, grads_s)]:
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-11)
    assert torch.all(out_p[1, 4:] == 0), "steps past a sequence's length are zeros"


@pytest.mark.parametrize("family", ["mingru", "minlstm"])
def test_a_carried_state_continues_the_sequence(family):
    """Language modelling feeds chunks with the last state: two halves equal the whole sequence."""
    model = encoder(family, "log", num_layers=2)
    x, lengths = torch.randn(B, T, D, dtype=torch.float64), torch.full((B,), T)
    whole, _, _ = model(x, lengths)
    first, _, state = model(x[:, :4], torch.full((B,), 4))
    second, _, _ = model(x[:, 4:], torch.full((B,), T - 4), state)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole, rtol=1e-10, atol=1e-12)
