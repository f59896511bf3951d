"""`train.dtype=float64` end to end: data, model and readout in float64, through the CLI and for gradient models."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from rnnlab.config import Config, DataConfig, TrainConfig
from rnnlab.registries import from_flat_dict
from rnnlab.trial import prepare_data, run_trial
from tests.test_zoo import model_config

SHRUNK = ["data.num_samples=400", "model.esn.units=30", "model.esn.washout=20", "tracking.mode=disabled"]


def test_cli_esn_mackey_glass_in_float64_equals_a_float64_reference(tmp_path):
    """The reservoir's states (reservoirpy on the run's own weights) and the ridge readout (numpy) recomputed in
    float64 from the checkpoint: the run's readout and train RMSE equal them to 1e-9 (float32 is off by ~1e-4)."""
    pytest.importorskip("reservoirpy")
    from reservoirpy.nodes import Reservoir

    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "rnnlab",
        "run",
        "experiments/esn_mackey_glass.py",
        "--out",
        str(out),
        "--set",
        "train.dtype=float64",
        *SHRUNK,
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    cfg = from_flat_dict(json.loads((out / "config.json").read_text())["flat"])
    assert cfg.train.dtype == "float64"  # recorded in the config
    state = torch.load(out / "checkpoints" / "epoch_0001" / "state.pt", weights_only=False)["model"]
    assert all(tensor.dtype == torch.float64 for tensor in state.values())
    weights = {name: state[f"encoder.layers.0.0.{name}"].numpy().copy() for name in ("weight", "input_weight", "bias")}
    train = prepare_data(cfg).train
    assert train.inputs.dtype == torch.float32 and train.inputs.shape[0] == 1  # one series, cast by the trial
    reservoir = Reservoir(
        lr=cfg.model.esn.leak_rate, W=weights["weight"], Win=weights["input_weight"], bias=weights["bias"]
    )
    u_TD = train.inputs[0, : int(train.lengths[0])].double().numpy()
    y_TD = train.targets[0, : int(train.lengths[0])].double().numpy()
    states_TU = reservoir.run(u_TD)[cfg.model.esn.washout :]
    targets_T = y_TD[cfg.model.esn.washout :, 0]
    head_weight, head_bias = state["head.weight"].numpy(), state["head.bias"].numpy()
    predictions_T = (states_TU @ head_weight.T + head_bias)[:, 0]
    rmse = float(np.sqrt(np.mean((predictions_T - targets_T) ** 2)))
    result = json.loads((out / "result.json").read_text())
    assert result["best/train/rmse"] == pytest.approx(rmse, rel=1e-10)  # the run's states were these, in float64
    # the readout is the ridge optimum on these states (ridge 1e-5 on 30 units is ill-conditioned: the weights
    # themselves are not unique to float precision, the objective is)
    X = np.hstack([states_TU, np.ones((len(states_TU), 1))])
    penalty = cfg.model.esn.ridge * np.eye(X.shape[1])
    penalty[-1, -1] = 0.0  # the bias is not penalised
    solution = np.linalg.solve(X.T @ X + penalty, X.T @ targets_T)

    def objective(w: np.ndarray) -> float:
        return float(np.sum((X @ w - targets_T) ** 2) + w @ penalty @ w)

    assert objective(np.append(head_weight[0], head_bias)) == pytest.approx(objective(solution), rel=1e-6)


def test_float64_gradient_model_learns_in_one_step(tmp_path):
    """A GRU regressor with train.dtype=float64: data and model in float64, and one epoch of steps lowers the loss."""
    data = DataConfig(source="builtin", name="mackey_glass", task="forecast", num_samples=300, horizon=1, window=16)
    train = TrainConfig(epochs=2, batch_size=16, dtype="float64")
    cfg = Config(model=model_config("gru", hidden_size=8), data=data, train=train)
    result = run_trial(cfg, out_dir=tmp_path / "gru")
    assert result["status"] == "completed"
    rows = [json.loads(line) for line in (tmp_path / "gru" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["train/loss"] < rows[0]["train/loss"]
    state = torch.load(next((tmp_path / "gru" / "checkpoints").glob("epoch_*")) / "state.pt", weights_only=False)
    assert all(tensor.dtype == torch.float64 for tensor in state["model"].values() if tensor.is_floating_point())
