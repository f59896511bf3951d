"""The record of a search read outside in, value by value: each trial's folder (config.json, metrics.jsonl,
result.json), the Optuna study, the trial's offline W&B run and Ray's own rows say the same thing, for trials that
complete, diverge, outlive their time limit and raise (retried, then failed), of two epochs and of one (whose
epoch row rides in its summary row: one Ray row, no Ray checkpoint)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from rnnlab.cli import main
from rnnlab.search_folder import SearchSpec, load_study, read_json, trial_rows
from rnnlab.tracking.wandb_log import read_records, run_logs
from rnnlab.trial import read_metrics

sys.path.insert(0, str(Path(__file__).parent))
from test_faults import cli, env  # noqa: E402

# Each trial's end is set by its number; its values are drawn from one-point ranges, so they are Optuna parameters.
EXPERIMENT = """
from rnnlab.config import Config, DataConfig, OptimConfig, SearchConfig, TrainConfig
from rnnlab.models import model_config

config = Config(
    name="agree", metric="val/acc", mode="max",
    model=model_config("elman", nonlinearity="relu", hidden_size=8),
    data=DataConfig(source="builtin", name="digits", task="classification"),
    optim=OptimConfig(optimizer="sgd", learning_rate=0.05),
    train=TrainConfig(epochs=2, batch_size=32, max_batches=3),
    search=SearchConfig(samples=4, concurrency=2, sampler="random", scheduler="none", max_failures=1),
)

KINDS = {
    "completed": {"optim.learning_rate": 0.05},
    "diverged": {"optim.learning_rate": 1e30},  # SGD moves a ReLU RNN's weights by ~1e30: the loss becomes nan
    "time_limit": {"optim.learning_rate": 0.05, "search.trial_time_limit_s": 0.001},
    "raises": {"optim.learning_rate": 0.05},  # and a data cache whose entry is a folder: IsADirectoryError
}
CACHES = {"raises": CACHE_DIR}  # set by the test


def search_space(trial):
    kind = list(KINDS)[trial.number % len(KINDS)]
    space = {k: trial.suggest_float(k, v, v) for k, v in KINDS[kind].items()}
    if kind in CACHES:
        space["data.cache_dir"] = trial.suggest_categorical("data.cache_dir", [CACHES[kind]])
    return {**space, "model.hidden_size": trial.suggest_int("model.hidden_size", 8, 8)}
"""
FAILED_ENDS = ("failed", "diverged", "out_of_memory")  # a W&B run of such a trial ends with a non-zero exit code


def wandb_parts(folder: Path, run_id: str) -> list[dict]:
    """Each offline part of a run: config, history rows, summary (updates and removals) and exit code."""
    parts = []
    for log in run_logs(folder, run_id):
        part = {"config": {}, "history": [], "summary": {}, "exit": None}
        for r in read_records(log):
            kind = r.WhichOneof("record_type")
            if kind in ("run", "config"):
                items = r.run.config.update if kind == "run" else r.config.update
                part["config"].update({"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in items})
            elif kind == "history":
                part["history"].append(
                    {"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in r.history.item}
                )
            elif kind == "summary":
                part["summary"].update(
                    {"/".join(u.nested_key) or u.key: json.loads(u.value_json) for u in r.summary.update}
                )
                for u in r.summary.remove:
                    part["summary"].pop("/".join(u.nested_key) or u.key, None)
            elif kind == "exit":
                part["exit"] = r.exit.exit_code
        parts.append(part)
    return parts


def ray_rows(spec: SearchSpec, trial_id: str) -> list[dict]:
    path = Path(spec.folder, spec.ray_runs[0], trial_id, "result.json")
    if not path.is_file():  # a trial that raised before its first report
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def blocked_cache(folder: Path, cfg) -> str:
    """A data cache under `folder` whose entry for `cfg`'s data is a folder: a trial preparing that data reads no
    entry, builds the data and fails replacing the folder by its file (IsADirectoryError), on every retry."""
    from rnnlab.tasks import load_task_data

    cfg.data.cache_dir = str(folder)
    load_task_data(cfg.data, cfg.seed)
    (entry,) = folder.glob("*.pt")
    entry.unlink()
    entry.mkdir()
    return str(folder)


@pytest.mark.parametrize("epochs", [2, 1])
def test_folder_study_wandb_and_ray_agree_for_every_end(tmp_path, capsys, epochs):
    from rnnlab.experiment import load_experiment

    experiment = tmp_path / "agree.py"
    source = EXPERIMENT.replace("epochs=2", f"epochs={epochs}")
    experiment.write_text(source.replace("CACHE_DIR", "None"))
    cache = blocked_cache(tmp_path / "cache", load_experiment(str(experiment)).config)
    experiment.write_text(source.replace("CACHE_DIR", repr(cache)))
    argv = cli("tune", str(experiment), "--storage", str(tmp_path), "--name", "a")
    done = subprocess.run(argv, env=env(), capture_output=True, text=True, timeout=600)  # W&B offline in its workers
    assert done.returncode == 0, done.stderr[-3000:]
    spec = SearchSpec.load(tmp_path / "a")
    study = load_study(spec.folder)
    assert len(study.trials) == 4
    ends = {}
    for t in study.trials:
        trial_id = t.user_attrs["ray_trial_id"]
        folder = Path(spec.folder, "trials", trial_id)
        result, rows = read_json(folder / "result.json"), read_metrics(folder / "metrics.jsonl")
        # a trial that raised preparing its data has no config.json: what the searcher sent it (params.json)
        config = read_json(folder / "config.json").get("flat") or read_json(folder / "params.json")
        status = ends[t.number] = result["status"]
        # Optuna: the state of the end, the value of result.json, a step per recorded epoch, the reason
        assert t.state.name == {"completed": "COMPLETE", "diverged": "PRUNED"}.get(status, "FAIL"), (t, result)
        if status == "completed":
            assert t.value == result["val/acc"] == result["best/val/acc"]
            assert rows[result["best_epoch"] - 1]["val/acc"] == t.value
        else:
            assert result["reason"] in t.user_attrs["reason"]
        assert t.intermediate_values == {r["epoch"]: r["val/acc"] for r in rows}
        # one name per hyperparameter: Optuna's parameter = config.json's field = W&B's config key
        parts = wandb_parts(folder, f"a-{trial_id}")
        assert parts, trial_id
        wandb_config = {k: v for part in parts for k, v in part["config"].items()}
        for name, value in t.params.items():
            assert config[name] == wandb_config[name] == value, name
        # W&B: every epoch of metrics.jsonl, the end of result.json in the summary and the exit code
        history = {h["epoch"]: h for part in parts for h in part["history"] if "epoch" in h}
        assert {e: h["val/acc"] for e, h in history.items()} == {r["epoch"]: r["val/acc"] for r in rows}
        logged = [{k: v for k, v in h.items() if not k.startswith("_")} for part in parts for h in part["history"]]
        assert logged == rows, trial_id  # every key of every row, value for value
        summary = parts[-1]["summary"]
        # the summary is result.json's (it held the last epoch's train/* and {min, last} of val/* instead)
        assert {k: summary.get(k) for k in result} == result, trial_id
        assert summary.get("status") == status, (trial_id, summary)
        assert summary.get("reason") == result.get("reason"), (trial_id, summary)
        assert (parts[-1]["exit"] != 0) == (status in FAILED_ENDS), (trial_id, status, parts[-1]["exit"])
        # Ray: the epochs' rows are metrics.jsonl's; the summary row, when there is one, is result.json's end
        epochs = {r["epoch"]: r["val/acc"] for r in ray_rows(spec, trial_id) if "epoch" in r}
        assert epochs == {r["epoch"]: r["val/acc"] for r in rows}
        if epochs == 1 and rows:  # its epoch and its end in one row, and nothing for Ray to resume from
            [final] = ray_rows(spec, trial_id)
            assert final["trial/final"] and final["epoch"] == 1, final
            assert not list(Path(spec.folder, spec.ray_runs[0], trial_id).glob("checkpoint_*"))
        for final in [r for r in ray_rows(spec, trial_id) if r.get("trial/final")]:
            assert final["status"] == status
            value = result.get("val/acc", math.nan)  # a trial with no value: NaN, and the searcher says why
            assert final["val/acc"] == value or math.isnan(final["val/acc"]) and math.isnan(value)
    assert sorted(ends.values()) == ["completed", "diverged", "failed", "failed"], ends
    raised = next(t for t in study.trials if "data.cache_dir" in t.params)
    assert ends[raised.number] == "failed" and "IsADirectoryError" in raised.user_attrs["reason"], raised
    raised_id = raised.user_attrs["ray_trial_id"]  # retried once (search.max_failures=1): a W&B run part each
    assert len(wandb_parts(Path(spec.folder, "trials", raised_id), f"a-{raised_id}")) == 2
    # the report's reasons: Optuna's and result.json's, each once ("diverged: X; X", "E; replay ...; E" before)
    for row in trial_rows(spec, study):
        if row["state"] != "COMPLETE":
            own = read_json(Path(spec.folder, "trials", row["trial_id"], "result.json"))["reason"]
            assert row["reason"].count(own) == 1, row["reason"]
    # rnnlab replay of the diverged trial diverges the same way: that is what it reproduces (it said "nothing to
    # compare", exit 1, for a trial that diverged before its first epoch)
    diverged = next(t.user_attrs["ray_trial_id"] for t in study.trials if ends[t.number] == "diverged")
    capsys.readouterr()
    assert main(["replay", spec.folder, diverged, "--out", str(tmp_path / "replay")]) == 0
    out = capsys.readouterr().out
    assert "diverged    diverged" in out and "replay reproduces" in out, out
