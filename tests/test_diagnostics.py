"""RNN diagnostics: the step-by-step unroll matches torch's fused kernels, and the gradient physics comes out right."""

from __future__ import annotations

import pytest
import torch

from rnnlab.config import Config, DataConfig
from rnnlab.diagnostics import collect, unroll
from rnnlab.models import build_model, model_config
from rnnlab.models.esn import ESNConfig
from rnnlab.tasks import load_task_data


def adding_batch(seq_len: int, batch_size: int = 32):
    cfg = Config(data=DataConfig(name="adding", task="regression", seq_len=seq_len, num_samples=100, normalize=False))
    data = load_task_data(cfg.data, 0)
    split = data.train
    return cfg, data, (split.inputs[:batch_size], split.lengths[:batch_size], split.targets[:batch_size])


def make_model(cfg: Config, data, **model):
    cfg.model = model_config(**model)
    torch.manual_seed(0)
    return build_model(cfg, data.input_size, data.vocab_size, data.output_size, data.task)


@pytest.mark.parametrize("family", ["elman", "lstm", "gru"])
def test_unroll_matches_the_fused_kernel_with_padding_layers_and_directions(family):
    torch.manual_seed(0)
    cfg = Config(model=model_config(family, hidden_size=8, num_layers=2, bidirectional=True))
    model = build_model(cfg, 3, 0, 2, "classification")
    x_BTD, lengths_B = torch.randn(4, 7, 3), torch.tensor([7, 5, 2, 6])
    out_ref, last_ref, _ = model.encoder(x_BTD, lengths_B)
    out, last, states, _ = unroll(model.encoder.rnn, x_BTD, lengths_B)
    assert torch.allclose(out.float(), out_ref, atol=1e-5)
    assert torch.allclose(last.float(), last_ref, atol=1e-5)
    assert len(states) == 7


def test_elman_gradients_vanish_through_time_and_an_open_forget_gate_keeps_them():
    """Adding problem, T=200, hidden 64, untrained: dL/dh_t shrinks by orders of magnitude toward t=0 for a tanh
    Elman RNN (|W_hh|'s spectral radius < 1). An LSTM's decays at the rate of its forget gate: with torch's default
    init (f ~ sigmoid(0) = 0.5) it vanishes about as fast; with the usual forget-gate bias of 1 (Gers et al., 2000;
    Jozefowicz et al., 2015) it keeps many orders of magnitude more."""
    cfg, data, batch = adding_batch(seq_len=200)
    elman = collect(make_model(cfg, data, family="elman", hidden_size=64), batch, cfg)
    lstm_model = make_model(cfg, data, family="lstm", hidden_size=64)
    with torch.no_grad():
        for name in ("bias_ih_l0", "bias_hh_l0"):
            getattr(lstm_model.encoder.rnn, name)[64:128] = 0.5  # forget gate block: total bias 1
    lstm = collect(lstm_model, batch, cfg)
    assert elman["diag/hidden_grad_ratio"] < 1e-3
    assert lstm["diag/hidden_grad_ratio"] > 1e6 * elman["diag/hidden_grad_ratio"]
    profile = [elman[f"diag/hidden_grad/t={t}"] for t in (0, 50, 100, 149, 199)]
    assert profile == sorted(profile)  # monotone: the later the step, the larger its gradient
    assert elman["diag/spectral_radius/weight_hh_l0"] < 1


def test_collect_reports_gru_diagnostics_and_leaves_the_model_untouched():
    cfg, data, batch = adding_batch(seq_len=20, batch_size=8)
    model = make_model(cfg, data, family="gru", hidden_size=16, dropout=0.0)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    metrics = collect(model, batch, cfg)
    assert model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert metrics["diag/grad_norm/encoder.rnn.weight_hh_l0"] > 0
    assert {"diag/spectral_radius/weight_hh_l0/update", "diag/gate_saturation/l0/reset"} <= metrics.keys()
    assert all(0 <= metrics[f"diag/gate_saturation/l0/{g}"] <= 1 for g in ("reset", "update"))
    assert {f"diag/hidden_grad/t={t}" for t in (0, 5, 10, 14, 19)} <= metrics.keys()


def test_esn_reports_its_spectral_radius_and_state_statistics():
    cfg, data, batch = adding_batch(seq_len=30, batch_size=8)
    cfg.model = model_config("esn", esn=ESNConfig(units=50, spectral_radius=0.8, density=0.5))
    torch.manual_seed(0)
    model = build_model(cfg, data.input_size, data.vocab_size, data.output_size, data.task)
    metrics = collect(model, batch, cfg)
    radii = [v for k, v in metrics.items() if k.startswith("diag/spectral_radius/")]
    assert radii and all(r == pytest.approx(0.8, rel=1e-6) for r in radii)
    assert 0 < metrics["diag/reservoir/mean_abs"] < 1 and metrics["diag/reservoir/std"] > 0
    assert 0 <= metrics["diag/reservoir/saturation"] <= 1
