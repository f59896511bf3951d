"""W&B tracking end to end with real wandb in offline mode: what `rnnlab run` leaves in the run's `.wandb` logs,
read back with `rnnlab.tracking.wandb_log` (also what a resumed offline run trusts over tracking.json)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from rnnlab.cli import main
from rnnlab.tracking.wandb_log import logged_steps, read_history, read_records, run_logs

EXPERIMENT = """
from rnnlab.config import Config, DataConfig, TrackingConfig, TrainConfig
from rnnlab.models import model_config

config = Config(
    name="tiny_digits",
    metric="val/acc",
    mode="max",
    model=model_config("gru", hidden_size=16),
    data=DataConfig(source="builtin", name="digits", task="classification"),
    train=TrainConfig(epochs=2, batch_size=64, max_batches=2, diagnostics_every=1),
    tracking=TrackingConfig(mode="offline", tags=["smoke"], log_checkpoints=True),
)
"""


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


def hold_elsewhere(folder: Path):
    """Another live process holding `folder` (rnnlab's folder lock), once it says so."""
    import subprocess
    import sys

    hold = f"from rnnlab.folder_lock import FolderLock; FolderLock({str(folder)!r}, 'path').acquire()"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"{hold}; print('held', flush=True); import time; time.sleep(60)"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


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
    assert not any(k.startswith(("model.esn.", "model.indrnn.", "model.nonlinearity")) for k in config)  # gru's only
    assert config["provenance.packages.torch"] and config["provenance.seed"] == 0
    assert run.run_group == "tiny_digits" and run.job_type == "run"
    assert {"gru", "digits", "classification", "smoke"} <= set(run.tags)

    summary = runs[-1]["summary"]
    result = json.loads((out / "result.json").read_text())
    # the summary is result.json, value for value: val/* of the best model (it held {max, last} of the resumed part
    # alone: a "max" that was epoch 3's, not the trial's best), test/*, the best epoch, how the run ended
    assert {k: summary.get(k) for k in result} == result
    assert summary["val/acc"] == max(r["val/acc"] for r in local) == summary["best/val/acc"]
    step_metrics = {m.glob_name or m.name: m.step_metric for m in runs[0]["metrics"]}
    assert step_metrics["*"] == "epoch"
    assert {a.type for a in runs[-1]["artifacts"]} == {"model", "dataset"}

    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["data.fingerprint"] == result["data/fingerprint"]
    assert provenance["packages.wandb"] and provenance["python"]


def test_indrnn_diagnostics_and_only_its_own_settings_reach_the_run(tmp_path, monkeypatch):
    """|u| of every IndRNN layer is in the W&B history, equal to the checkpointed weights; the W&B config holds
    IndRNN's settings and no other family's."""
    from rnnlab.checkpoint import load_latest

    experiment = tmp_path / "tiny_indrnn.py"
    indrnn = 'model_config("indrnn", hidden_size=8, num_layers=2)'
    experiment.write_text(
        EXPERIMENT.replace('model_config("gru", hidden_size=16)', indrnn).replace("epochs=2", "epochs=1")
    )
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    assert main(["run", str(experiment), "--out", str(out)]) == 0
    run = read_run(next((out / "wandb").glob("offline-run-*")))
    row = next(r for r in run["history"] if r.get("epoch") == 1)
    names = [f"layers.{layer}.0.recurrent" for layer in (0, 1)]
    assert {k for k in row if k.startswith("diag/indrnn_u/")} == {
        f"diag/indrnn_u/{n}/{stat}" for n in names for stat in ("mean", "max", "min")
    }
    weights = load_latest(out / "checkpoints", map_location="cpu")["model"]
    for name in names:
        u = weights[f"encoder.{name}"].abs()
        assert row[f"diag/indrnn_u/{name}/max"] == pytest.approx(float(u.max()))
        assert row[f"diag/indrnn_u/{name}/mean"] == pytest.approx(float(u.mean()))
        assert float(u.max()) <= 2.0 ** (1 / 8) + 1e-6  # the bound gamma^(1/T) on digits' 8 rows
    config = {u.key for u in run["run"].config.update}
    assert {"model.indrnn.recurrent_gamma", "model.hidden_size"} <= config
    assert not any(k.startswith(("model.esn.", "model.hopfield.", "model.nonlinearity")) for k in config)


def test_resume_continues_the_same_run_with_increasing_steps(resumed_run):
    runs = resumed_run["runs"]
    assert len(runs) == 2
    assert runs[0]["run"].run_id == runs[1]["run"].run_id
    steps = [row["_step"] for run in runs for row in run["history"]]
    epochs = [row["epoch"] for run in runs for row in run["history"]]
    assert steps == epochs == [1, 2, 3]


def test_a_log_cut_anywhere_reads_as_a_prefix_of_its_records(resumed_run, tmp_path):
    """A kill can stop wandb-core mid-write: the reader keeps the whole records before the cut, never raises."""
    log = next(resumed_run["run_dirs"][0].glob("*.wandb"))
    data = log.read_bytes()
    whole = [r.SerializeToString() for r in read_records(log)]
    block = 32 * 1024
    cuts = {0, 5, 7, 8, len(data) - 1, *range(7, len(data), len(data) // 50), *range(block - 3, len(data), block)}
    cut = tmp_path / "cut.wandb"
    counts = []
    for length in sorted(cuts):
        cut.write_bytes(data[:length])
        records = [r.SerializeToString() for r in read_records(cut)]
        assert records == whole[: len(records)], length
        counts.append(len(records))
    assert counts[0] == 0 and counts == sorted(counts) and counts[-1] == len(whole) - 1
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF  # a corrupt chunk fails its CRC: the records before it remain
    cut.write_bytes(bytes(flipped))
    records = [r.SerializeToString() for r in read_records(cut)]
    assert 0 < len(records) < len(whole) and records == whole[: len(records)]


def test_offline_resume_trusts_the_log_and_online_resume_tracking_json(tmp_path, monkeypatch):
    from rnnlab.tracking import resume_step

    (tmp_path / "tracking.json").write_text(json.dumps({"run_id": "r1", "last_step": 5}))
    assert resume_step(tmp_path, "r1", "online") == 5
    assert resume_step(tmp_path, "r2", "online") == 0
    assert resume_step(tmp_path, "r1", "offline") == 0  # no log holds a row


def test_a_resume_logs_the_rows_a_kill_kept_out_of_the_offline_log(tmp_path, monkeypatch):
    """tracking.json says epoch 2 is logged, but the log ends inside epoch 2's row (wandb-core killed mid-write):
    the resumed run continues after the log's last whole row, so W&B holds every epoch once, steps increasing."""
    experiment = tmp_path / "tiny_digits.py"
    experiment.write_text(EXPERIMENT.replace("log_checkpoints=True", "log_checkpoints=False"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    assert main(["run", str(experiment), "--out", str(out)]) == 0
    run_id = json.loads((out / "tracking.json").read_text())["run_id"]
    [log] = run_logs(out, run_id)
    data = log.read_bytes()
    lo, hi = 7, len(data)  # the shortest prefix holding epoch 2's row; one byte less tears that row
    while lo < hi:
        log.write_bytes(data[: (lo + hi) // 2])
        lo, hi = (lo, (lo + hi) // 2) if logged_steps(out, run_id) == 2 else ((lo + hi) // 2 + 1, hi)
    log.write_bytes(data[: lo - 1])
    assert logged_steps(out, run_id) == 1 and json.loads((out / "tracking.json").read_text())["last_step"] == 2

    assert main(["run", str(experiment), "--out", str(out), "--resume", "--set", "train.epochs=3"]) == 0
    logs = run_logs(out, run_id)
    rows = [read_history(p) for p in logs]
    assert [[row["epoch"] for row in part] for part in rows] == [[1], [2, 3]]
    assert [row["_step"] for part in rows for row in part] == [1, 2, 3]
    local = [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert local == [1, 2, 3]


def test_the_api_key_is_in_no_file_of_the_run(resumed_run):
    secret = resumed_run["secret"].encode()
    files = [p for p in resumed_run["out"].rglob("*") if p.is_file() and not p.is_symlink()]
    assert len(files) > 10
    leaked = [str(p) for p in files if secret in p.read_bytes()]
    assert not leaked


def test_sync_without_credentials_says_once_how_to_give_them(resumed_run, monkeypatch, capsys):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "online")
    code = main(["sync", str(resumed_run["out"]), "--timeout", "60"])
    printed = capsys.readouterr()
    assert code == 2 and printed.out == ""  # nothing was tried
    assert printed.err.count("\n") == 1 and "WANDB_API_KEY: not set; 2 offline run(s)" in printed.err
    assert not any(any(run_dir.glob("*.wandb.synced")) for run_dir in resumed_run["run_dirs"])


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


def test_run_ids_stay_distinct_past_the_64_characters_wandb_takes(tmp_path, monkeypatch):
    """Two trials of a search whose name is 70 characters long: each its own W&B run, not one run cut to 64."""
    from rnnlab.config import Config, DataConfig, TrackingConfig
    from rnnlab.tracking import open_tracker
    from rnnlab.tracking.wandb_run import wandb_name

    name = "n" * 70
    assert wandb_name("abc-1_2") == "abc-1_2" and len(wandb_name(name + "-search")) == 64
    assert len({wandb_name(text) for text in (name + "-a", name + "-b", "a.b-x", "a-b-x")}) == 4
    monkeypatch.setenv("WANDB_MODE", "offline")
    data = DataConfig(source="builtin", name="digits", task="classification")
    cfg = Config(name="long", data=data, tracking=TrackingConfig(mode="offline"))
    ids = []
    for trial_id in ("aaaa1111", "bbbb2222"):
        out = tmp_path / trial_id
        with open_tracker(cfg, out, "search", f"{name}-{trial_id}", group=name, name=trial_id) as tracker:
            tracker.log({"epoch": 1, "val/acc": 0.5})
        [run_dir] = (out / "wandb").glob("offline-run-*")
        ids.append(read_run(run_dir)["run"].run_id)
    assert ids[0] != ids[1] and all(len(i) <= 64 for i in ids), ids


def test_long_group_and_display_names_are_cut_apart_to_the_128_characters_wandb_takes(tmp_path, monkeypatch):
    """Two searches whose names share their first 128 characters (the group of their trials, W&B's limit): each its
    own group, both within the limit; a name within it is kept as it is, spaces and dots included."""
    from rnnlab.config import Config, DataConfig, TrackingConfig
    from rnnlab.tracking import open_tracker
    from rnnlab.tracking.wandb_run import wandb_label

    assert wandb_label("my search v1.2 (search)") == "my search v1.2 (search)"
    monkeypatch.setenv("WANDB_MODE", "offline")
    data = DataConfig(source="builtin", name="digits", task="classification")
    cfg = Config(name="long", data=data, tracking=TrackingConfig(mode="offline"))
    runs = []
    for group in ("g" * 130 + ".a", "g" * 130 + ".b"):
        out = tmp_path / group[-1]
        with open_tracker(cfg, out, "search", f"t-{group[-1]}", group=group, name=group) as tracker:
            tracker.log({"epoch": 1, "val/acc": 0.5})
        [run_dir] = (out / "wandb").glob("offline-run-*")
        runs.append(read_run(run_dir)["run"])
    groups, names = [r.run_group for r in runs], [r.display_name for r in runs]
    assert groups[0] != groups[1] and all(len(g) <= 128 for g in groups + names), groups
    assert names == groups and groups[0].startswith("g" * 100)


def test_sync_leaves_a_run_still_being_written_for_later(resumed_run, tmp_path, monkeypatch, capsys):
    """Another process (a run, a search's driver) holds the run's folder, and its log has no exit record yet (here:
    cut off, as wandb-core leaves it while writing). Before: `wandb sync` uploaded its rows so far and marked it
    synced, and the rows logged after were never uploaded. Now it is left for a later sync."""
    import shutil
    import time

    out = tmp_path / "run"
    shutil.copytree(resumed_run["out"], out)
    run_dirs = sorted((out / "wandb").glob("offline-run-*"))
    for log in [p for d in run_dirs for p in d.glob("*.wandb")]:
        records = read_records(log)
        log.write_bytes(log.read_bytes()[: len(log.read_bytes()) // 2])  # mid-write: no exit record
        assert len(read_records(log)) < len(records)

    holder = hold_elsewhere(out)
    try:
        monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
        started = time.monotonic()
        assert main(["sync", str(out), "--timeout", "60"]) == 1
        printed = capsys.readouterr().out
    finally:
        holder.kill()
        holder.wait()
    assert printed.count("FAILED") == len(run_dirs) and f"in use by pid {holder.pid}" in printed, printed
    assert "sync it again once that has ended" in printed and time.monotonic() - started < 30  # no upload was tried
    assert not any(any(run_dir.glob("*.wandb.synced")) for run_dir in run_dirs)


def test_a_run_its_dead_worker_left_open_is_ended_with_the_trial_result(tmp_path, monkeypatch):
    """A trial's offline run whose process died (an orphan of a killed driver) ends in a second part: the epochs its
    log lacks once, the result the driver wrote in its summary, exit 1 for a failed end; the config unchanged. A run
    that ended is left alone, and so is one ended this way."""
    from rnnlab.experiment import load_experiment
    from rnnlab.tracking.tracker import end_torn_run

    experiment = tmp_path / "tiny_digits.py"
    experiment.write_text(EXPERIMENT.replace("log_checkpoints=True", "log_checkpoints=False"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    assert main(["run", str(experiment), "--out", str(out)]) == 0
    cfg = load_experiment(experiment).config
    run_id = json.loads((out / "tracking.json").read_text())["run_id"]
    result = {"val/acc": 0.5, "status": "failed", "reason": "orphaned: its driver died"}
    assert not end_torn_run(cfg, out, run_id, "g", "t1", result), "a run that ended is left as it is"
    [log] = run_logs(out, run_id)
    data = log.read_bytes()
    lo, hi = 7, len(data)  # the shortest prefix holding epoch 1's row: the worker died in epoch 2
    while lo < hi:
        log.write_bytes(data[: (lo + hi) // 2])
        lo, hi = (lo, (lo + hi) // 2) if logged_steps(out, run_id) == 1 else ((lo + hi) // 2 + 1, hi)
    log.write_bytes(data[:lo])
    assert logged_steps(out, run_id) == 1

    assert end_torn_run(cfg, out, run_id, "g", "t1", result)
    first, second = (read_run(p.parent) for p in run_logs(out, run_id))
    assert [[row["epoch"] for row in part["history"]] for part in (first, second)] == [[1], [2]]
    assert {k: second["summary"].get(k) for k in result} == result, "the summary is the result the driver wrote"
    exits = [r.exit.exit_code for r in read_records(run_logs(out, run_id)[-1]) if r.WhichOneof("record_type") == "exit"]
    assert exits == [1]
    assert second["run"].run_id == first["run"].run_id and second["run"].run_group == "g"
    config = {u.key: json.loads(u.value_json) for u in second["run"].config.update}
    started = {u.key: json.loads(u.value_json) for u in first["run"].config.update}
    assert started.items() <= config.items() and "provenance.host" in config, "its config and provenance unchanged"
    assert not end_torn_run(cfg, out, run_id, "g", "t1", result) and len(run_logs(out, run_id)) == 2


def test_a_run_another_sync_is_uploading_is_left_to_it(resumed_run, tmp_path, monkeypatch, capsys):
    """Two `rnnlab sync` at once (two terminals, a cron job): the second uploaded every run again. Now a run the
    other holds is left to it, named; the runs it does not hold are synced (here: tried, there is no network)."""
    import shutil

    out = tmp_path / "run"
    shutil.copytree(resumed_run["out"], out)
    held, free = sorted((out / "wandb").glob("offline-run-*"))
    holder = hold_elsewhere(held)
    try:
        monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
        monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # the discard port: refused at once
        assert main(["sync", str(out), "--timeout", "3"]) == 1
        printed = capsys.readouterr().out
    finally:
        holder.kill()
        holder.wait()
    # by the whole name: a part begun in the same second as the one before is that folder's name with "-1" added
    [line_held] = [line for line in printed.splitlines() if f" {held} " in line]
    [line_free] = [line for line in printed.splitlines() if f" {free} " in line]
    assert f"not yet: pid {holder.pid}" in line_held and "is uploading it" in line_held, printed
    assert "not yet" not in line_free and "3s" in line_free, "a run no other sync holds is tried"
    assert not any(any(run_dir.glob("*.wandb.synced")) for run_dir in (held, free))
