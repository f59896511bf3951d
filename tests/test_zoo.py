"""The reservoir, IndRNN and Hopfield families against references: reservoirpy, the papers' equations, numpy."""

import dataclasses

import numpy as np
import pytest
import torch

from rnnlab.config import Config, ModelConfig
from rnnlab.models import build_model
from rnnlab.models.esn import ESN, memory_capacity

# --- echo state network ----------------------------------------------------------------------------------------


def esn_config(**esn) -> ModelConfig:
    cfg = ModelConfig(family="esn")
    cfg.esn = dataclasses.replace(cfg.esn, **{"units": 50, "density": 0.2, **esn})
    return cfg


def test_esn_states_equal_reservoirpy_step_by_step():
    pytest.importorskip("reservoirpy")
    from reservoirpy.nodes import Reservoir

    torch.manual_seed(3)
    encoder = ESN(esn_config(leak_rate=0.3, spectral_radius=1.1, bias_scaling=0.5, input_scaling=0.7), 2)
    layer = encoder.layers[0][0]
    reference = Reservoir(lr=0.3, W=layer.weight.numpy().copy(), Win=layer.input_weight.numpy().copy(),
                          bias=layer.bias.numpy().copy())  # fmt: skip
    u_TD = np.random.default_rng(0).uniform(-1, 1, size=(60, 2))
    expected_TU = reference.run(u_TD)
    states = encoder(torch.from_numpy(u_TD)[None], torch.tensor([60]))[0][0]
    assert states.dtype == torch.float64
    np.testing.assert_allclose(states.numpy(), expected_TU, rtol=0, atol=1e-10)


def test_esn_reservoir_has_the_configured_spectral_radius():
    torch.manual_seed(0)
    encoder = ESN(esn_config(spectral_radius=1.25, units=80, density=0.1), 1)
    radius = torch.linalg.eigvals(encoder.layers[0][0].weight).abs().max()
    assert abs(float(radius) - 1.25) < 1e-10
    assert 0.05 < float((encoder.layers[0][0].weight != 0).float().mean()) < 0.15


def test_esn_weights_come_from_the_trial_seed():
    torch.manual_seed(7)
    first = ESN(esn_config(), 1).layers[0][0].weight.clone()
    torch.manual_seed(7)
    assert torch.equal(first, ESN(esn_config(), 1).layers[0][0].weight)


def test_esn_reservoir_stays_frozen_under_a_gradient_readout():
    torch.manual_seed(0)
    cfg = Config(model=esn_config(readout="gradient"))
    model = build_model(cfg, input_size=3, vocab_size=0, output_size=2, task="classification")
    assert not model.closed_form
    frozen = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    assert all(not name.startswith("encoder.") for name, _ in model.named_parameters())
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    head_before = model.head.weight.detach().clone()
    for _ in range(3):
        out, _ = model(torch.randn(8, 10, 3), torch.full((8,), 10))
        loss = torch.nn.functional.cross_entropy(out, torch.arange(8) % 2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert all(torch.equal(v, frozen[k]) for k, v in model.encoder.state_dict().items())
    assert not torch.equal(head_before, model.head.weight)


def test_esn_ridge_readout_matches_numpy_least_squares():
    torch.manual_seed(0)
    cfg = Config(model=esn_config(washout=5, ridge=1e-3))
    model = build_model(cfg, input_size=1, vocab_size=0, output_size=1, task="forecast")
    x = torch.randn(2, 40, 1, dtype=torch.float64)
    y = torch.roll(x, -1, dims=1)
    lengths = torch.tensor([40, 30])
    model.fit_closed_form([(x, lengths, y)], ridge=1e-3)
    features = model.encoder(x, lengths)[0].numpy()
    rows = [(b, t) for b in range(2) for t in range(5, int(lengths[b]))]
    X = np.array([np.append(features[b, t], 1.0) for b, t in rows])
    Y = np.array([y[b, t].numpy() for b, t in rows])
    penalty = 1e-3 * np.eye(X.shape[1])
    penalty[-1, -1] = 0.0  # the bias is not penalised
    solution = np.linalg.lstsq(X.T @ X + penalty, X.T @ Y, rcond=None)[0]
    np.testing.assert_allclose(model.head.weight.detach().numpy(), solution[:-1].T, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(model.head.bias.detach().numpy(), solution[-1], rtol=1e-6, atol=1e-8)


def test_esn_deep_and_bidirectional_features_concatenate_every_reservoir():
    torch.manual_seed(0)
    cfg = esn_config(units=10)
    cfg.num_layers, cfg.bidirectional = 3, True
    encoder = ESN(cfg, 2)
    out, last, state = encoder(torch.randn(2, 6, 2), torch.tensor([6, 4]))
    assert out.shape == (2, 6, 60) and last.shape == (2, 60) and state.shape == (6, 2, 10)
    assert torch.all(out[1, 4:] == 0)


def test_esn_memory_capacity_is_bounded_by_the_units():
    torch.manual_seed(0)
    encoder = ESN(esn_config(units=20, spectral_radius=0.9, leak_rate=1.0, input_scaling=0.1, density=0.5), 1)
    capacity = memory_capacity(encoder, max_delay=40, length=2000, seed=0)
    assert 3.0 < capacity <= 20.5  # Jaeger (2002): MC <= N for a linear-ish reservoir of N units
