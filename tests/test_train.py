"""The training loop: exact resume, divergence with a reason, early stopping, checkpoints that never tear."""

import json
import logging

import pytest
import torch

from rnnlab.checkpoint import list_checkpoints, load_latest, save_checkpoint
from rnnlab.config import Config, DataConfig, OptimConfig, TrainConfig
from rnnlab.models import model_config
from rnnlab.tasks import load_task_data
from rnnlab.trial import read_metrics, run_trial


def small_config(**train) -> Config:
    return Config(
        metric="val/acc",
        mode="max",
        model=model_config("gru", hidden_size=16),
        data=DataConfig(source="builtin", name="digits", task="classification"),
        optim=OptimConfig(learning_rate=1e-2, schedule="cosine"),
        train=TrainConfig(**{"epochs": 4, "batch_size": 32, "max_batches": 8, **train}),
    )


def test_resume_ends_with_the_same_metrics_as_an_uninterrupted_run(tmp_path):
    cfg = small_config()
    straight = run_trial(cfg, None, tmp_path / "straight")

    def killed_after_epoch_2(metrics, checkpoint=None):
        if metrics["epoch"] == 2:
            raise KeyboardInterrupt  # as if the process died right after the second checkpoint

    with pytest.raises(KeyboardInterrupt):
        run_trial(cfg, killed_after_epoch_2, tmp_path / "resumed")
    resumed = run_trial(cfg, None, tmp_path / "resumed", resume_from=tmp_path / "resumed" / "checkpoints")
    for key in ("val/acc", "val/loss", "test/acc", "test/loss", "best_epoch"):
        assert resumed[key] == straight[key], key
    rows = read_metrics(tmp_path / "resumed" / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4], "epochs continue, never repeat or go backwards"


def test_run_trial_runs_the_seed_replicates_a_config_asks_for(tmp_path):
    """search.seeds = 2: the one entry point runs both seeds, each a full record, and reports their mean."""
    cfg = small_config(epochs=2)
    cfg.search.seeds = 2
    reported = []
    result = run_trial(cfg, lambda metrics, checkpoint=None: reported.append(metrics), tmp_path / "two")
    seeds = [json.loads((tmp_path / "two" / f"seed_{i}" / "result.json").read_text()) for i in (0, 1)]
    assert [s["seed"] for s in seeds] == [0, 1] and result["seeds"] == 2
    assert result["val/acc"] == pytest.approx((seeds[0]["val/acc"] + seeds[1]["val/acc"]) / 2)
    assert result["seeds/val/acc"] == [s["val/acc"] for s in seeds]
    assert [m["epoch"] for m in reported] == [1, 2]  # the last seed reports, per epoch, the mean over seeds
    assert json.loads((tmp_path / "two" / "result.json").read_text()) == pytest.approx(result)


def test_a_resumed_run_counts_the_time_of_the_epochs_it_continues(tmp_path):
    """time/total_s of a run resumed from epoch 2 (a retried trial, `rnnlab run --resume`) covers its 4 epochs: it
    was the last attempt's alone, less than the epochs' own times in its metrics.jsonl."""
    cfg = small_config(max_batches=0)

    def killed_after_epoch_2(metrics, checkpoint=None):
        if metrics["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_trial(cfg, killed_after_epoch_2, tmp_path / "resumed")
    resumed = run_trial(cfg, None, tmp_path / "resumed", resume_from=tmp_path / "resumed" / "checkpoints")
    rows = read_metrics(tmp_path / "resumed" / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert resumed["time/total_s"] >= sum(r["time/epoch_s"] for r in rows)


def test_seed_replicates_list_each_seeds_best_epoch_not_their_mean(tmp_path):
    """Each seed picks its own best epoch: the mean of 2 and 4 is no epoch of the record (its metrics.jsonl row 3 is
    not what the result holds), so the replicates' result lists them per seed."""
    cfg = small_config(epochs=3)
    cfg.search.seeds = 2
    result = run_trial(cfg, None, tmp_path / "two")
    seeds = [json.loads((tmp_path / "two" / f"seed_{i}" / "result.json").read_text()) for i in (0, 1)]
    assert "best_epoch" not in result
    assert result["seeds/best_epoch"] == [s["best_epoch"] for s in seeds]
    assert all(isinstance(e, int) for e in result["seeds/best_epoch"])


def test_a_diverging_trial_ends_with_its_reason(tmp_path):
    cfg = small_config()
    data = load_task_data(cfg.data, cfg.seed)
    data.train.inputs[:, 3] = float("nan")  # every sequence: the first step's loss is NaN
    result = run_trial(cfg, None, tmp_path / "nan", data=data)
    assert result["status"] == "diverged"
    assert "nan" in result["reason"].lower() or "inf" in result["reason"].lower()
    assert json.loads((tmp_path / "nan" / "result.json").read_text())["status"] == "diverged"


def test_early_stopping_on_patience(tmp_path):
    cfg = small_config(epochs=30, patience=1)
    cfg.optim.learning_rate = 1e-6  # nothing improves much: stops after a few epochs
    result = run_trial(cfg, None, tmp_path / "early")
    rows = read_metrics(tmp_path / "early" / "metrics.jsonl")
    assert result["status"] == "early_stopped" and len(rows) < 30


def test_report_gets_every_epoch_with_a_checkpoint(tmp_path):
    seen = []
    run_trial(small_config(epochs=2), lambda m, c=None: seen.append((m["epoch"], c)), tmp_path / "r")
    assert [e for e, _ in seen] == [1, 2]
    assert all(c and (tmp_path / "r" / "checkpoints").as_posix() in c for _, c in seen)


def test_corrupted_newest_checkpoint_falls_back_to_the_previous(tmp_path, caplog):
    for epoch in (1, 2):
        save_checkpoint(tmp_path, epoch, {"epoch": epoch, "w": torch.ones(3) * epoch})
    newest = list_checkpoints(tmp_path)[-1] / "state.pt"
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="rnnlab.checkpoint"):
        state = load_latest(tmp_path)
    assert state["epoch"] == 1 and "corrupted" in caplog.text


def test_truncated_checkpoint_never_loads(tmp_path, caplog):
    save_checkpoint(tmp_path, 1, {"epoch": 1})
    folder = save_checkpoint(tmp_path, 2, {"epoch": 2})
    (folder / "state.pt").write_bytes((folder / "state.pt").read_bytes()[:10])
    with caplog.at_level(logging.WARNING, logger="rnnlab.checkpoint"):
        assert load_latest(tmp_path)["epoch"] == 1
    assert "corrupted" in caplog.text


def test_local_record_is_complete(tmp_path):
    run_trial(small_config(epochs=2), None, tmp_path / "r")
    for name in ("config.json", "metrics.jsonl", "result.json"):
        assert (tmp_path / "r" / name).exists(), name
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["flat"]["model.hidden_size"] == 16


@pytest.mark.parametrize("flush", [True, False])
def test_denormals_follow_the_trial_config(tmp_path, flush):
    """Denormal gradients (a last-step loss over long sequences) are flushed to 0 unless the config says no."""
    run_trial(small_config(epochs=1, flush_denormal=flush), None, tmp_path / "run")
    tiny = torch.tensor([1e-39]) * 2.0  # a denormal float32: 0 when flushed
    assert (tiny.item() == 0.0) == flush
    torch.set_flush_denormal(False)


def test_a_stop_request_drops_the_epoch_in_progress_and_resume_continues(tmp_path):
    """`should_stop` (a SIGTERM in `rnnlab run`) ends training at the next batch; completed epochs are kept."""
    cfg = small_config()  # 8 training batches per epoch
    polls = []

    def should_stop():
        polls.append(1)
        return "stop requested" if len(polls) > 8 + 3 else None  # during epoch 2, before its 4th batch

    result = run_trial(cfg, None, tmp_path / "run", should_stop=should_stop)
    assert result["status"] == "stopped" and result["reason"] == "stop requested" and result["epoch"] == 1
    assert [r["epoch"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl")] == [1]
    run_trial(cfg, None, tmp_path / "run", resume_from=tmp_path / "run" / "checkpoints")
    assert [r["epoch"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl")] == [1, 2, 3, 4]


def test_max_batches_caps_training_only_and_the_test_metric_is_over_the_whole_split(tmp_path):
    """train.max_batches=1 trains on one batch; test/acc still counts every test row (recomputed from a checkpoint)."""
    from rnnlab.models import build_model
    from rnnlab.train import run_epoch

    cfg = small_config(epochs=1, max_batches=1)
    result = run_trial(cfg, None, tmp_path / "one")
    data = load_task_data(cfg.data, cfg.seed)
    rows = data.test.lengths.shape[0]
    assert rows > cfg.train.batch_size, "a one-batch test metric would differ from a whole-split one"
    model = build_model(cfg, data.input_size, data.vocab_size, data.output_size, data.task)
    model.load_state_dict(load_latest(tmp_path / "one" / "checkpoints")["best_model"])
    whole = run_epoch(model, data, "test", small_config(epochs=1, max_batches=0), torch.device("cpu"))
    assert result["test/acc"] == pytest.approx(whole["test/acc"]) and result["test/loss"] == pytest.approx(
        whole["test/loss"]
    )
    assert result["test/acc"] * rows == pytest.approx(round(result["test/acc"] * rows)), "a count over all rows"
