"""The reservoir, IndRNN and Hopfield families against references: reservoirpy, the papers' equations, numpy."""

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from rnnlab.config import Config
from rnnlab.models import build_model, indrnn, indrnn_kernel, model_config
from rnnlab.models.esn import ESN, ESNModelConfig
from rnnlab.models.hopfield import HopfieldLayer, HopfieldMemory
from rnnlab.models.indrnn import IndRNN, IndRNNKernelRecurrence, IndRNNModelConfig, IndRNNRecurrence

# --- echo state network ----------------------------------------------------------------------------------------


def esn_config(**esn) -> ESNModelConfig:
    cfg = model_config("esn")
    cfg.esn = dataclasses.replace(cfg.esn, **{"units": 50, "density": 0.2, **esn})
    return cfg


def test_esn_states_equal_reservoirpy_step_by_step():
    pytest.importorskip("reservoirpy")
    from reservoirpy.nodes import Reservoir

    torch.manual_seed(3)
    encoder = ESN(esn_config(leak_rate=0.3, spectral_radius=1.1, bias_scaling=0.5, input_scaling=0.7), 2)
    layer = encoder.layers[0][0]
    reference = Reservoir(
        lr=0.3, W=layer.weight.numpy().copy(), Win=layer.input_weight.numpy().copy(), bias=layer.bias.numpy().copy()
    )
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
    model.fit_closed_form([(x, lengths, y)])  # the encoder's readout_ridge: model.esn.ridge
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


# --- IndRNN ----------------------------------------------------------------------------------------------------


def indrnn_config(**indrnn) -> IndRNNModelConfig:
    cfg = model_config("indrnn", hidden_size=6)
    cfg.indrnn = dataclasses.replace(cfg.indrnn, **indrnn)
    return cfg


def naive_indrnn(x_BTD, weight, recurrent, bias):
    """The paper's equation, one autograd step at a time: h_t = relu(W x_t + u * h_{t-1} + b)."""
    h = torch.zeros(x_BTD.shape[0], weight.shape[0], dtype=x_BTD.dtype)
    states = []
    for t in range(x_BTD.shape[1]):
        h = torch.relu(x_BTD[:, t] @ weight.T + recurrent * h + bias)
        states.append(h)
    return torch.stack(states, dim=1)


def test_indrnn_outputs_and_gradients_equal_the_naive_recurrence():
    torch.manual_seed(0)
    encoder = IndRNN(indrnn_config(), 3).double()
    layer = encoder.layers[0][0]
    with torch.no_grad():  # recurrent weights past 1 and negative ones exercise both the growth and the relu mask
        layer.recurrent.copy_(torch.tensor([1.2, -0.9, 0.5, 1.0, -1.1, 0.0]))
        layer.input.bias.uniform_(-0.3, 0.3)
    x = torch.randn(4, 25, 3, dtype=torch.float64, requires_grad=True)
    weights = (x, layer.input.weight, layer.recurrent, layer.input.bias)
    upstream = torch.randn(4, 25, 6, dtype=torch.float64)
    out = encoder(x, torch.full((4,), 25))[0]
    ours = torch.autograd.grad((out * upstream).sum(), weights)
    expected = naive_indrnn(x, layer.input.weight, layer.recurrent, layer.input.bias)
    reference = torch.autograd.grad((expected * upstream).sum(), weights)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    for name, a, b in zip(("x", "W", "u", "b"), ours, reference):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=f"gradient wrt {name}")


def test_indrnn_recurrence_passes_gradcheck():
    torch.manual_seed(1)
    drive = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    recurrent = torch.tensor([0.7, -1.3, 1.1], dtype=torch.float64, requires_grad=True)
    h0 = torch.rand(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(IndRNNRecurrence.apply, (drive, recurrent, h0))


@pytest.fixture
def compiled_indrnn():
    """The C++ recurrence, compiled (or found in torch's extension cache) on first use; skip where it can't build."""
    if indrnn_kernel.load() is None:
        pytest.skip(f"the C++ IndRNN recurrence did not compile: {indrnn_kernel._failed}")


def naive_indrnn_encoder(encoder, x_BTD, lengths_B):
    """One layer, uni- or bidirectional, by the paper's equation on each sequence cut to its length, zero-padded."""
    B, T, _ = x_BTD.shape
    rows = []
    for b in range(B):
        x = x_BTD[b : b + 1, : lengths_B[b]]
        steps = []
        for direction, layer in enumerate(encoder.layers[0]):
            seq = x.flip(1) if direction else x
            h = naive_indrnn(seq, layer.input.weight, layer.recurrent, layer.input.bias)
            steps.append(h.flip(1) if direction else h)
        h = torch.cat(steps, dim=-1)[0]
        rows.append(torch.cat([h, h.new_zeros(T - h.shape[0], h.shape[1])]))
    return torch.stack(rows)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_indrnn_compiled_and_python_recurrences_equal_the_naive_one_with_padding(
    compiled_indrnn, monkeypatch, bidirectional
):
    torch.manual_seed(2)
    cfg = indrnn_config()
    cfg.bidirectional = bidirectional
    encoder = IndRNN(cfg, 3).double()
    with torch.no_grad():  # |u| > 1, negative u and u = 0 exercise growth, sign flips and the relu mask
        for layer in encoder.layers[0]:
            layer.recurrent.copy_(torch.tensor([1.2, -0.9, 0.5, 1.0, -1.1, 0.0]))
            layer.input.bias.uniform_(-0.3, 0.3)
    x = torch.randn(4, 17, 3, dtype=torch.float64, requires_grad=True)
    lengths = torch.tensor([17, 9, 1, 13])
    upstream = torch.randn(4, 17, encoder.output_size, dtype=torch.float64)
    weights = (x, *encoder.parameters())
    expected = naive_indrnn_encoder(encoder, x, lengths)
    reference = torch.autograd.grad((expected * upstream).sum(), weights)
    for kernel, function in (("cpp", IndRNNKernelRecurrence), ("python", IndRNNRecurrence)):
        monkeypatch.setenv("RNNLAB_INDRNN_KERNEL", kernel)
        calls = []
        monkeypatch.setattr(function, "apply", lambda *args, f=function.apply, calls=calls: calls.append(1) or f(*args))
        out = encoder(x, lengths)[0]
        ours = torch.autograd.grad((out * upstream).sum(), weights)
        assert len(calls) == len(encoder.layers[0]), f"{kernel}: the {function.__name__} path did not run"
        torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12, msg=f"{kernel}: outputs")
        for index, (a, b) in enumerate(zip(ours, reference)):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg=f"{kernel}: gradient {index}")


@pytest.mark.parametrize("dtype,tolerance", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
def test_indrnn_compiled_recurrence_equals_the_python_one_with_h0(compiled_indrnn, dtype, tolerance):
    torch.manual_seed(3)
    drive = torch.randn(5, 30, 7, dtype=dtype, requires_grad=True)
    recurrent = (torch.rand(7, dtype=dtype) * 2.4 - 1.2).requires_grad_()
    h0 = torch.rand(5, 7, dtype=dtype, requires_grad=True)
    upstream = torch.randn(5, 30, 7, dtype=dtype)
    results = []
    for function in (IndRNNKernelRecurrence, IndRNNRecurrence):
        h = function.apply(drive, recurrent, h0)
        results.append((h, *torch.autograd.grad((h * upstream).sum(), (drive, recurrent, h0))))
    for name, a, b in zip(("h", "drive", "u", "h0"), *results):
        torch.testing.assert_close(a, b, rtol=tolerance, atol=tolerance, msg=name)


def test_indrnn_compiled_recurrence_passes_gradcheck(compiled_indrnn):
    torch.manual_seed(1)
    drive = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    recurrent = torch.tensor([0.7, -1.3, 1.1], dtype=torch.float64, requires_grad=True)
    h0 = torch.rand(2, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(IndRNNKernelRecurrence.apply, (drive, recurrent, h0))


def test_indrnn_falls_back_to_the_python_loop(monkeypatch, caplog):
    def no_kernel(*args):
        raise AssertionError("the C++ recurrence ran")

    drive, recurrent, h0 = torch.randn(2, 4, 3), torch.rand(3), torch.zeros(2, 3)
    monkeypatch.setattr(IndRNNKernelRecurrence, "apply", no_kernel)
    monkeypatch.setenv("RNNLAB_INDRNN_KERNEL", "python")
    monkeypatch.setattr(indrnn_kernel, "load", no_kernel)  # python never even compiles
    expected = IndRNNRecurrence.apply(drive, recurrent, h0)
    torch.testing.assert_close(indrnn.recurrence(drive, recurrent, h0), expected)
    # auto, when compiling failed (load() returns None) or on dtypes the kernel lacks: Python, said once per reason
    monkeypatch.setattr(indrnn_kernel, "load", lambda: None)
    monkeypatch.setattr(indrnn_kernel, "_failed", "RuntimeError: no compiler")
    monkeypatch.setattr(indrnn, "_said_fallback", set())
    monkeypatch.setenv("RNNLAB_INDRNN_KERNEL", "auto")
    with caplog.at_level("WARNING", logger="rnnlab.models.indrnn"):
        for _ in range(3):
            torch.testing.assert_close(indrnn.recurrence(drive, recurrent, h0), expected)
        indrnn.recurrence(drive.half(), recurrent.half(), h0.half())
        indrnn.recurrence(drive.to("meta"), recurrent.to("meta"), h0.to("meta"))  # as CUDA: not a CPU tensor
    assert [r.getMessage() for r in caplog.records] == [
        "IndRNN: the Python recurrence runs (the C++ one could not be built: RuntimeError: no compiler)",
        "IndRNN: the Python recurrence runs (dtype torch.float16)",
        "IndRNN: the Python recurrence runs (tensors on meta)",
    ]
    monkeypatch.setenv("RNNLAB_INDRNN_KERNEL", "cpp")
    with pytest.raises(RuntimeError, match="can't run: the C\\+\\+ one could not be built"):
        indrnn.recurrence(drive, recurrent, h0)
    monkeypatch.setenv("RNNLAB_INDRNN_KERNEL", "fortran")
    with pytest.raises(ValueError, match="auto, cpp, python"):
        indrnn.recurrence(drive, recurrent, h0)


def test_indrnn_falls_back_when_the_build_fails_in_a_fresh_process(tmp_path):
    """No working compiler (CXX points nowhere) and an empty extension dir: auto trains on the Python loop, one
    log line."""
    code = (
        "import logging, torch; logging.basicConfig(format='%(message)s'); "
        "from rnnlab.models.indrnn import IndRNN; from rnnlab.models import model_config; "
        "model = IndRNN(model_config('indrnn', hidden_size=4), 2); x = torch.randn(3, 5, 2); "
        "[model(x, torch.full((3,), 5))[0].sum().backward() for _ in range(2)]; "
        "assert model.layers[0][0].recurrent.grad.abs().sum() > 0"
    )
    env = {**os.environ, "CXX": str(tmp_path / "no-compiler"), "TORCH_EXTENSIONS_DIR": str(tmp_path / "ext")}
    env.pop("RNNLAB_INDRNN_KERNEL", None)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "IndRNN" in line]
    assert len(lines) == 1 and "Python recurrence runs (the C++ one could not be built" in lines[0], done.stderr


def test_indrnn_kernel_compiles_lazily_in_a_fresh_process():
    """Importing the models (and building an IndRNN) compiles nothing: the build waits for the first forward."""
    code = (
        "import sys; from rnnlab.models import indrnn_kernel; from rnnlab.models.indrnn import IndRNN; "
        "from rnnlab.models import model_config; IndRNN(model_config('indrnn', hidden_size=4), 2); "
        "assert indrnn_kernel._module is None and 'torch.utils.cpp_extension' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_indrnn_keeps_recurrent_weights_within_the_bound_while_training():
    torch.manual_seed(0)
    cfg = Config(model=indrnn_config(recurrent_gamma=2.0, time_steps=0))
    cfg.model.num_layers = 2
    model = build_model(cfg, input_size=2, vocab_size=0, output_size=1, task="regression")
    optimizer = torch.optim.Adam(model.parameters(), lr=0.5)  # steps of ~0.5 push u far past the bound
    for _ in range(5):
        out, _ = model(torch.rand(8, 20, 2), torch.full((8,), 20))
        loss = -out.sum()  # grows with every |u|
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.encoder.after_step()
    bound = 2.0 ** (1 / 20)
    recurrent = torch.cat([d.recurrent for layer in model.encoder.layers for d in layer])
    assert recurrent.abs().max() <= bound + 1e-7
    assert recurrent.abs().max() > 1.0  # the clamp binds at the bound, not at 1


def test_indrnn_bidirectional_with_batch_norm_and_residual_ignores_padding():
    torch.manual_seed(0)
    cfg = indrnn_config(batch_norm=True, residual=True)
    cfg.num_layers, cfg.bidirectional = 3, True
    encoder = IndRNN(cfg, 4).train()
    short = torch.randn(1, 5, 4)
    padded = torch.cat([torch.cat([short, torch.zeros(1, 4, 4)], dim=1)] * 2)
    out_alone, last_alone, _ = encoder(torch.cat([short, short]), torch.tensor([5, 5]))
    out_padded, last_padded, _ = encoder(padded, torch.tensor([5, 5]))
    torch.testing.assert_close(out_padded[:, :5], out_alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(last_padded, last_alone, atol=1e-5, rtol=1e-5)


# --- Hopfield --------------------------------------------------------------------------------------------------


def hopfield_memory(rule: str, update: str, size: int) -> HopfieldMemory:
    cfg = model_config("hopfield")
    cfg.hopfield = dataclasses.replace(cfg.hopfield, rule=rule, update=update, max_iterations=20)
    return HopfieldMemory(cfg, size)


def corrupt(patterns: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """Each pattern with `fraction` of its bits flipped (exactly that many, at random places)."""
    flips = torch.rand(patterns.shape, generator=generator).argsort(dim=1) < int(fraction * patterns.shape[1])
    return torch.where(flips, -patterns, patterns)


@pytest.mark.parametrize("rule,update", [("hebbian", "async"), ("hebbian", "sync"), ("storkey", "async")])
def test_hopfield_recalls_stored_patterns_from_corrupted_cues(rule, update):
    generator = torch.Generator().manual_seed(0)
    patterns = torch.randint(0, 2, (5, 100), generator=generator).float() * 2 - 1
    memory = hopfield_memory(rule, update, 100)
    memory.fit_closed_form([(patterns[:, None], torch.ones(5, dtype=torch.long), patterns)])
    assert torch.all(memory.weight.diagonal() == 0) and torch.allclose(memory.weight, memory.weight.T)
    cues = corrupt(patterns, 0.1, generator)
    out, recalled, state = memory(cues[:, None], torch.ones(5, dtype=torch.long))
    assert out.shape == (5, 1, 100) and state is None
    assert torch.equal(recalled, patterns)


def test_hopfield_energy_never_increases_under_asynchronous_updates():
    generator = torch.Generator().manual_seed(1)
    patterns = torch.randint(0, 2, (12, 60), generator=generator).double() * 2 - 1
    memory = hopfield_memory("hebbian", "async", 60)
    memory.store(patterns)  # past capacity: recall wanders through spurious states, the energy still falls
    state = torch.randint(0, 2, (4, 60), generator=generator).double() * 2 - 1
    weight = memory.weight.double()
    energies = [memory.energy(state)]
    for i in torch.randperm(60, generator=generator).tolist() * 3:
        field = state @ weight[i]
        state[:, i] = torch.where(field > 0, 1.0, torch.where(field < 0, -1.0, state[:, i]))
        energies.append(memory.energy(state))
    steps = torch.stack(energies)
    assert torch.all(steps[1:] <= steps[:-1] + 1e-12)
    assert torch.all(steps[-1] < steps[0])


def test_hopfield_async_recall_is_deterministic():
    generator = torch.Generator().manual_seed(2)
    patterns = torch.randint(0, 2, (20, 50), generator=generator).float() * 2 - 1
    memory = hopfield_memory("hebbian", "async", 50)
    memory.store(patterns)
    cues = corrupt(patterns, 0.3, generator)
    assert torch.equal(memory.recall(cues.clone()), memory.recall(cues.clone()))


def test_modern_hopfield_layer_is_the_update_rule_without_projections():
    torch.manual_seed(0)
    layer = HopfieldLayer(8, 8, 8, beta=2.0, projections=False)
    stored_BSY, xi_BQR = torch.randn(3, 5, 8), torch.randn(3, 2, 8)
    X = stored_BSY.transpose(1, 2)  # (B, d, S): the stored patterns as columns
    expected = (X @ torch.softmax(2.0 * X.transpose(1, 2) @ xi_BQR.transpose(1, 2), dim=1)).transpose(1, 2)
    torch.testing.assert_close(layer(xi_BQR, stored_BSY), expected)


@pytest.mark.parametrize("encoder", ["none", "lstm", "gru"])
def test_hopfield_pooling_learns_over_an_encoder(encoder):
    torch.manual_seed(0)
    cfg = Config(model=model_config("hopfield_pool", hidden_size=8))
    cfg.model.hopfield = dataclasses.replace(cfg.model.hopfield, encoder=encoder, num_queries=2)
    model = build_model(cfg, input_size=3, vocab_size=0, output_size=2, task="classification")
    assert model.encoder.output_size == 16
    x, y = torch.randn(16, 6, 3), (torch.arange(16) % 2)
    x[:, 2, 0] += 3 * y  # the class is written at one step; pooling must find it
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(40):
        out, _ = model(x, torch.full((16,), 6))
        loss = torch.nn.functional.cross_entropy(out, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(loss.detach()) < 0.2
