"""LSTM gate-bias inits (`model.forget_bias`, `model.chrono_init`): the biases are what the papers say, in every
layer and direction, the other gates keep torch's init, and bad settings are refused naming the field."""

from __future__ import annotations

import math

import pytest
import torch

from rnnlab.cli import main
from rnnlab.config import Config, ConfigError
from rnnlab.models import build_model
from rnnlab.registries import apply_overrides

H = 64


def lstm(**settings):
    """The torch LSTM of a 2-layer bidirectional model built as run_trial builds it (the seed first)."""
    cfg = apply_overrides(
        Config(), {"model.family": "lstm", "model.hidden_size": H, "model.num_layers": 2, "model.bidirectional": True}
    )
    cfg = apply_overrides(cfg, settings)
    torch.manual_seed(0)
    return build_model(cfg, 3, 0, 2, "classification").encoder.rnn


def gate_biases(rnn) -> dict[str, dict[str, torch.Tensor]]:
    """{layer/direction suffix: {gate: b_ih + b_hh}}, gates in torch's order (input, forget, cell, output)."""
    out = {}
    for name, bias_ih in rnn.named_parameters():
        if name.startswith("bias_ih"):
            total = (bias_ih + getattr(rnn, name.replace("bias_ih", "bias_hh"))).detach()
            out[name[len("bias_ih") :]] = dict(zip(("i", "f", "g", "o"), total.split(H)))
    return out


def test_forget_bias_sets_every_forget_gate_and_leaves_the_others_as_torch_draws_them():
    default, biased = gate_biases(lstm()), gate_biases(lstm(**{"model.forget_bias": 1.0}))
    assert len(biased) == 4  # 2 layers x 2 directions
    for where, gates in biased.items():
        assert torch.equal(gates["f"], torch.ones(H)), where
        for gate in ("i", "g", "o"):
            assert torch.equal(gates[gate], default[where][gate]), (where, gate)


def test_chrono_init_draws_forget_biases_log_uniform_in_1_to_t_max_minus_1_and_input_biases_their_negatives():
    t_max = 100
    default, chrono = gate_biases(lstm()), gate_biases(lstm(**{"model.chrono_init": t_max}))
    for where, gates in chrono.items():
        forget = gates["f"]
        assert torch.equal(gates["i"], -forget), where
        timescales = forget.exp()  # b_f = log u, u ~ U(1, T_max - 1)
        assert timescales.min() >= 1 - 1e-5 and timescales.max() <= t_max - 1 + 1e-4, where
        # uniform, not log-uniform: mean (T_max / 2) within 4 standard errors, both ends reached
        assert abs(float(timescales.mean()) - t_max / 2) < 4 * (t_max - 2) / math.sqrt(12 * H), where
        assert timescales.min() < 1 + 0.1 * t_max and timescales.max() > 0.9 * t_max, where
        for gate in ("g", "o"):
            assert torch.equal(gates[gate], default[where][gate]), (where, gate)
    layers = list(chrono.values())
    assert not torch.equal(layers[0]["f"], layers[1]["f"])  # each layer and direction draws its own
    again = gate_biases(lstm(**{"model.chrono_init": t_max}))
    assert all(torch.equal(again[w]["f"], chrono[w]["f"]) for w in chrono)  # a function of the seed


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"model.chrono_init": 1}, "model.chrono_init"),
        ({"model.chrono_init": -5}, "model.chrono_init"),
        ({"model.chrono_init": 50, "model.forget_bias": 1.0}, "model.forget_bias"),
        ({"model.forget_bias": float("nan")}, "model.forget_bias"),  # before: ran, then "trial diverged"
        ({"model.forget_bias": float("inf")}, "model.forget_bias"),
    ],
)
def test_invalid_inits_are_refused_naming_the_field(settings, field):
    with pytest.raises(ConfigError) as err:
        apply_overrides(Config(), {"model.family": "lstm", **settings})
    assert err.value.field == field


def test_an_lstm_init_on_a_gru_is_refused_naming_the_family(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["run", "adding_lstm", "--out", str(out), "--set", "model.family=gru", "model.chrono_init=100"]
    assert main(args) == 2
    assert "a setting of family lstm" in capsys.readouterr().err and not out.exists()
