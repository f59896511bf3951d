"""The contract every registered model keeps: shapes, finiteness, causality, padding invariance, learning."""

import dataclasses

import pytest
import torch

from rnnlab.config import Config, ModelConfig
from rnnlab.models import MODELS, build_model
from rnnlab.models.encoder import Encoder

B, T, D = 3, 7, 4


def small_config(family: str, bidirectional: bool = False, num_layers: int = 1) -> ModelConfig:
    """The family's own config, small: only the settings it has are set."""
    cfg = MODELS[family].config(family=family)
    small = {"hidden_size": 8, "num_layers": num_layers, "bidirectional": bidirectional}
    cfg = dataclasses.replace(cfg, **{k: v for k, v in small.items() if hasattr(cfg, k)})
    if hasattr(cfg, "esn"):
        cfg.esn = dataclasses.replace(cfg.esn, units=16, density=0.5)
    return cfg


def sequence_families() -> list[str]:
    """Families that map a sequence to per-step outputs (the classical Hopfield memory maps a cue to a pattern)."""
    return [name for name, family in MODELS.items() if family.encoder.sequence_encoder]


VARIANTS = [(f, bi, layers) for f in sequence_families() for bi in (False, True) for layers in (1, 2)]


def make_encoder(family, bidirectional, num_layers):
    torch.manual_seed(0)
    return MODELS[family].build(small_config(family, bidirectional, num_layers), D).eval()


@pytest.mark.parametrize("family,bidirectional,num_layers", VARIANTS)
def test_shapes_and_finite(family, bidirectional, num_layers):
    encoder = make_encoder(family, bidirectional, num_layers)
    x = torch.randn(B, T, D)
    out, last, _ = encoder(x, torch.full((B,), T))
    assert out.shape == (B, T, encoder.output_size)
    assert last.shape == (B, encoder.output_size)
    assert torch.isfinite(out).all() and torch.isfinite(last).all()


def step_gradient(encoder, t: int) -> torch.Tensor:
    """|d out[:, t] / d x| summed per time step of the input."""
    x = torch.randn(1, T, D, requires_grad=True)
    out, _, _ = encoder(x, torch.tensor([T]))
    out[:, t].sum().backward()
    return x.grad.abs().sum(dim=(0, 2))


@pytest.mark.parametrize("family,bidirectional,num_layers", VARIANTS)
def test_causality_by_gradient(family, bidirectional, num_layers):
    encoder = make_encoder(family, bidirectional, num_layers)
    assert encoder.bidirectional == bidirectional
    grad = step_gradient(encoder, t=3)
    assert grad[:4].sum() > 0, "the output must depend on the past"
    if bidirectional:
        assert grad[4:].sum() > 0, "a bidirectional model must see the future"
    else:
        assert torch.all(grad[4:] == 0), "a unidirectional model must never see the future"


@pytest.mark.parametrize("family,bidirectional,num_layers", VARIANTS)
def test_padding_changes_nothing(family, bidirectional, num_layers):
    encoder = make_encoder(family, bidirectional, num_layers)
    short = torch.randn(1, 4, D)
    out_alone, last_alone, _ = encoder(short, torch.tensor([4]))
    padded = torch.cat([torch.cat([short, torch.zeros(1, T - 4, D)], dim=1), torch.randn(1, T, D)])
    out_batch, last_batch, _ = encoder(padded, torch.tensor([4, T]))
    torch.testing.assert_close(out_batch[:1, :4], out_alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(last_batch[:1], last_alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", sequence_families())
def test_one_training_step_changes_the_trainable_parameters(family):
    torch.manual_seed(0)
    cfg = Config(model=small_config(family))
    model = build_model(cfg, input_size=D, vocab_size=0, output_size=3, task="classification")
    if model.closed_form:
        before = model.head.weight.detach().clone()
        x, y = torch.randn(12, T, D), torch.arange(12) % 3
        model.fit_closed_form([(x, torch.full((12,), T), y)])
        assert not torch.equal(before, model.head.weight)
        return
    params = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(B, T, D), torch.tensor([0, 1, 2])
    out, _ = model(x, torch.full((B,), T))
    torch.nn.functional.cross_entropy(out, y).backward()
    optimizer.step()
    unchanged = [n for n, p in model.named_parameters() if p.requires_grad and torch.equal(p, params[n])]
    assert not unchanged, f"parameters without an update: {unchanged}"


def test_registry_lists_valid_names_on_error():
    from rnnlab.config import ConfigError

    with pytest.raises(ConfigError, match="valid choices: .*lstm"):
        build_model(Config(model=ModelConfig(family="transformer")), 4, 0, 2, "classification")


@pytest.mark.parametrize("name", list(MODELS))
def test_every_family_keeps_the_encoder_contract(name):
    """Its config is its own (a ModelConfig subclass named for the family, valid by default) and builds an Encoder
    whose contract answers (the defaults or the family's own) are of the types the loop and diagnostics expect."""
    family = MODELS[name]
    cfg = family.config(family=name)
    assert isinstance(cfg, ModelConfig) and cfg.family == name
    cfg.validate()
    encoder = family.build(small_config(name), D)
    assert isinstance(encoder, Encoder) and isinstance(encoder.output_size, int) and encoder.output_size > 0
    assert isinstance(encoder.closed_form, bool) and isinstance(encoder.warmup_steps, int)
    assert encoder.readout_ridge is None or encoder.readout_ridge >= 0
    assert all(m.dim() == 2 for m in encoder.recurrent_matrices().values())
    assert all(u.dim() == 1 for u in encoder.elementwise_recurrences().values())
    encoder.after_step()


def test_torch_rnns_match_torch_nn_on_the_same_weights():
    """Our LSTM encoder is torch.nn.LSTM: same weights, same outputs, padded or not."""
    encoder = make_encoder("lstm", True, 2)
    reference = torch.nn.LSTM(D, 8, num_layers=2, bidirectional=True, batch_first=True)
    reference.load_state_dict(encoder.rnn.state_dict())
    x = torch.randn(B, T, D)
    torch.testing.assert_close(encoder(x, torch.full((B,), T))[0], reference(x)[0])
