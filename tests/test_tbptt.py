"""Truncated BPTT on one long series (data.task=series, data.window=0): a gradient model trains on parallel streams
in chunks of train.bptt steps, each chunk starting from the previous chunk's final state; evaluation and the
reservoir's closed-form fit see the series whole, as before."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rnnlab.batches import lm_chunks, parallel_streams
from rnnlab.cli import main
from rnnlab.config import Config, DataConfig, TrainConfig
from rnnlab.models import build_model, model_config
from rnnlab.models.esn import ESNConfig
from rnnlab.tasks import load_task_data
from rnnlab.train import make_optimizer, run_epoch
from rnnlab.trial import run_trial


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNLAB_CACHE", str(tmp_path / "cache"))


def series_csv(tmp_path, steps: int = 1000):
    """y[t] = 0.5 u[t] + 0.3 u[t-1] - 0.2 u[t-3], a row per step."""
    u = np.random.default_rng(0).uniform(-1, 1, steps)
    y = 0.5 * u
    y[1:] += 0.3 * u[:-1]
    y[3:] -= 0.2 * u[:-3]
    path = tmp_path / "series.csv"
    path.write_text("inputs,target\n" + "".join(f"{float(a)!r},{float(b)!r}\n" for a, b in zip(u, y)))
    return path


def gru_config(path, **train) -> Config:
    cfg = Config(
        model=model_config("gru", hidden_size=8),
        data=DataConfig(source="local", name=str(path), task="series"),
        train=TrainConfig(**{"epochs": 1, "batch_size": 4, "bptt": 30, **train}),
        metric="val/nrmse",
    )
    cfg.optim.learning_rate = 1e-2
    return cfg


def test_each_chunk_starts_from_the_final_state_of_the_one_before(tmp_path):
    cfg = gru_config(series_csv(tmp_path))
    data = load_task_data(cfg.data, 0)
    assert len(data.train) == 1 and int(data.train.lengths[0]) == 800  # one long series
    torch.manual_seed(0)
    model = build_model(cfg, data.input_size, data.vocab_size, data.output_size, data.task)
    calls = []
    model.register_forward_hook(lambda module, args, output: calls.append((args[0], args[2], output[1])))
    run_epoch(model, data, "train", cfg, "cpu", make_optimizer(model, cfg), torch.Generator().manual_seed(0))
    assert len(calls) == 7  # 4 streams of 200 steps, chunks of 30: 6 full and one of 20
    assert [tuple(x.shape) for x, _, _ in calls] == [(4, 30, 1)] * 6 + [(4, 20, 1)]
    assert calls[0][1] is None
    for (_, _, final), (_, start, _) in zip(calls, calls[1:]):
        assert not start.requires_grad and torch.equal(start, final.detach())  # carried, cut from the graph
    streamed = torch.cat([x for x, _, _ in calls], dim=1)
    torch.testing.assert_close(streamed, parallel_streams(data.train.inputs[0], 4))
    torch.testing.assert_close(streamed.reshape(-1), data.train.inputs[0, :, 0])  # the series, in order
    calls.clear()
    run_epoch(model, data, "val", cfg, "cpu")
    assert len(calls) == 1 and calls[0][1] is None and calls[0][0].shape == (1, 100, 1)  # evaluated whole


def test_a_gru_learns_one_long_series_by_tbptt_through_the_cli(tmp_path):
    path = series_csv(tmp_path)
    out = tmp_path / "run"
    sets = [f"data.name={path}", "data.source=local", "model.family=gru", "train.dtype=float32"]
    sets += ["model.hidden_size=16", "train.epochs=15", "train.batch_size=4", "train.bptt=25"]
    sets += ["optim.learning_rate=0.01", "tracking.mode=disabled"]
    assert main(["run", "esn_narma10", "--out", str(out), "--set", *sets]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    result = json.loads((out / "result.json").read_text())
    assert rows[-1]["train/loss"] < 0.2 * rows[0]["train/loss"], rows
    assert result["status"] == "completed" and result["test/nrmse"] < 0.3, result


def test_the_reservoirs_closed_form_fit_ignores_bptt(tmp_path):
    path = series_csv(tmp_path)
    esn = ESNConfig(units=50, spectral_radius=0.5, leak_rate=1.0, input_scaling=0.2, washout=20)
    results = []
    for bptt in (7, 100000):
        cfg = Config(
            model=model_config("esn", esn=esn),
            data=DataConfig(source="local", name=str(path), task="series"),
            train=TrainConfig(epochs=1, batch_size=4, bptt=bptt, dtype="float64"),
            metric="val/nrmse",
        )
        results.append(run_trial(cfg, None, tmp_path / f"run{bptt}"))
    metrics = [{k: v for k, v in r.items() if k.startswith(("test/", "val/"))} for r in results]
    assert metrics[0] == metrics[1] and metrics[0]["test/nrmse"] < 0.05, metrics


def test_the_lm_stream_keeps_its_chunks_next_token_targets_one_step_ahead():
    stream = torch.arange(103)
    streams = parallel_streams(stream, 4)  # 4 streams of 25 tokens; the last 3 tokens are dropped
    assert streams.shape == (4, 25) and torch.equal(streams[1], torch.arange(25, 50))
    chunks = list(lm_chunks(streams, 10, "cpu"))
    assert [tuple(x.shape) for x, _, _ in chunks] == [(4, 10), (4, 10), (4, 4)]  # 24 inputs: the last has no next
    for (x, lengths, y), start in zip(chunks, (0, 10, 20)):
        assert torch.equal(x, streams[:, start : start + x.shape[1]]) and torch.equal(y, x + 1)
        assert lengths.tolist() == [x.shape[1]] * 4
