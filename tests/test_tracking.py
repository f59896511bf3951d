"""W&B tracking end to end with real wandb in offline mode: what `rnnlab run` leaves in the run's `.wandb` logs.

wandb 0.31 has no Python reader for `.wandb` files any more (its readers live in wandb-core), so `read_records`
below decodes the log itself: a 7-byte header (":W&B", magic, version), then 32 KiB blocks of chunks, each with a
7-byte header (crc32c, length, type: full/first/middle/last) carrying one `wandb_internal_pb2.Record`.
"""

from __future__ import annotations

import json
import struct
import uuid
from pathlib import Path

import pytest

from rnnlab.cli import main

BLOCK_BYTES = 32 * 1024
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4

EXPERIMENT = """
from rnnlab.config import Config, DataConfig, ModelConfig, TrackingConfig, TrainConfig

config = Config(
    name="tiny_digits",
    metric="val/acc",
    mode="max",
    model=ModelConfig(family="gru", hidden_size=16),
    data=DataConfig(source="builtin", name="digits", task="classification"),
    train=TrainConfig(epochs=2, batch_size=64, max_batches=2, diagnostics_every=1),
    tracking=TrackingConfig(mode="offline", tags=["smoke"], log_checkpoints=True),
)
"""


def read_records(path: Path) -> list:
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    records, chunks, pos = [], [], 7
    while pos + 7 <= len(data):
        left_in_block = BLOCK_BYTES - pos % BLOCK_BYTES
        if left_in_block < 7:  # a block's tail too short for a header is zero padding
            pos += left_in_block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0:  # zero fill up to the end of the block
            pos += left_in_block
            continue
        chunks.append(data[pos + 7 : pos + 7 + length])
        pos += 7 + length
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(chunks))
            records.append(record)
            chunks = []
    return records


def read_run(run_dir: Path) -> dict:
    """The run record, history rows, latest summary and the artifacts of one offline run folder."""
    records = read_records(next(run_dir.glob("*.wandb")))
    out = {"run": None, "history": [], "summary": {}, "artifacts": [], "metrics": []}
    for r in records:
        kind = r.WhichOneof("record_type")
        if kind == "run":
            out["run"] = r.run
        elif kind == "history":
            out["history"].append({"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in r.history.item})
        elif kind == "summary":
            out["summary"].update({"/".join(u.nested_key) or u.key: json.loads(u.value_json) for u in r.summary.update})
        elif kind == "artifact":
            out["artifacts"].append(r.artifact)
        elif kind == "metric":
            out["metrics"].append(r.metric)
    return out


@pytest.fixture(scope="module")
def resumed_run(tmp_path_factory):
    """`rnnlab run` for 2 epochs, then `--resume` to 3, offline, with a made-up API key in the environment."""
    root = tmp_path_factory.mktemp("tracking")
    secret = f"rnnlab-secret-{uuid.uuid4().hex}"
    experiment = root / "tiny_digits.py"
    experiment.write_text(EXPERIMENT)
    out = root / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_API_KEY", secret)
        mp.setenv("RNNLAB_CACHE", str(root / "cache"))
        mp.chdir(root)
        assert main(["run", str(experiment), "--out", str(out)]) == 0
        assert main(["run", str(experiment), "--out", str(out), "--resume", "--set", "train.epochs=3"]) == 0
    run_dirs = sorted((out / "wandb").glob("offline-run-*"))
    return {"out": out, "secret": secret, "run_dirs": run_dirs, "runs": [read_run(d) for d in run_dirs]}


def test_every_epoch_metric_config_group_and_summary_are_in_the_run(resumed_run):
    out, runs = resumed_run["out"], resumed_run["runs"]
    local = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    logged = {row["epoch"]: row for run in runs for row in run["history"]}
    assert sorted(logged) == [row["epoch"] for row in local] == [1, 2, 3]
    for row in local:
        for key, value in row.items():
            assert logged[row["epoch"]][key] == pytest.approx(value), key
    assert any(k.startswith("diag/hidden_grad/") for k in logged[1])  # the training loop's diagnostics hook

    run = runs[-1]["run"]
    config = {u.key: json.loads(u.value_json) for u in run.config.update}
    assert config["model.hidden_size"] == 16 and config["optim.learning_rate"] == 1e-3
    assert config["provenance.packages.torch"] and config["provenance.seed"] == 0
    assert run.run_group == "tiny_digits" and run.job_type == "run"
    assert {"gru", "digits", "classification", "smoke"} <= set(run.tags)

    summary = runs[-1]["summary"]
    result = json.loads((out / "result.json").read_text())
    assert summary["test/acc"] == pytest.approx(result["test/acc"])
    assert summary["test/loss"] == pytest.approx(result["test/loss"])
    # an offline part summarises only its own epochs (here the resumed epoch 3); best/<metric> spans the trial
    assert summary["val/acc"]["max"] == pytest.approx(local[-1]["val/acc"])
    assert summary["best/val/acc"] == pytest.approx(max(r["val/acc"] for r in local))
    step_metrics = {m.glob_name or m.name: m.step_metric for m in runs[0]["metrics"]}
    assert step_metrics["*"] == "epoch"
    assert {a.type for a in runs[-1]["artifacts"]} == {"model", "dataset"}

    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["data.fingerprint"] == result["data/fingerprint"]
    assert provenance["packages.wandb"] and provenance["python"]


def test_resume_continues_the_same_run_with_increasing_steps(resumed_run):
    runs = resumed_run["runs"]
    assert len(runs) == 2
    assert runs[0]["run"].run_id == runs[1]["run"].run_id
    steps = [row["_step"] for run in runs for row in run["history"]]
    epochs = [row["epoch"] for run in runs for row in run["history"]]
    assert steps == epochs == [1, 2, 3]


def test_the_api_key_is_in_no_file_of_the_run(resumed_run):
    secret = resumed_run["secret"].encode()
    files = [p for p in resumed_run["out"].rglob("*") if p.is_file() and not p.is_symlink()]
    assert len(files) > 10
    leaked = [str(p) for p in files if secret in p.read_bytes()]
    assert not leaked


def test_sync_without_credentials_fails_per_run_without_hanging(resumed_run, monkeypatch, capsys):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "online")
    code = main(["sync", str(resumed_run["out"]), "--timeout", "60"])
    printed = capsys.readouterr().out
    assert code == 1
    assert printed.count("FAILED") == len(resumed_run["run_dirs"]) == 2
    assert "0 of 2 runs synced" in printed


def test_a_wandb_failure_warns_once_and_the_run_still_finishes(tmp_path, monkeypatch, capsys):
    experiment = tmp_path / "tiny_digits.py"
    experiment.write_text(
        EXPERIMENT.replace("epochs=2", "epochs=1").replace("diagnostics_every=1", "diagnostics_every=0")
    )
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_API_KEY", "not-a-valid-key")  # wandb rejects it before any network access
    out = tmp_path / "run"
    assert main(["run", str(experiment), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.count("rnnlab: warning:") == 1 and "W&B" in err
    assert (out / "result.json").exists() and (out / "metrics.jsonl").exists()
    assert json.loads((out / "provenance.json").read_text())["data.fingerprint"]
