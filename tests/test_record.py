"""The study's record of each trial equals the trial's own record (result.json, metrics.jsonl) and Ray's last result:
the value, the intermediate values per epoch, the state and the reason."""

import json
import math
from pathlib import Path

import pytest

from rnnlab.cli import main
from rnnlab.search_folder import SearchSpec, load_study

ROOT = Path(__file__).resolve().parent.parent
SEARCH_DIGITS = str(ROOT / "experiments" / "search_digits.py")
STATES = {"completed": "COMPLETE", "stopped": "PRUNED", "diverged": "PRUNED", "out_of_memory": "FAIL", "failed": "FAIL"}


def test_scheduler_stop_records_the_epoch_it_stopped_on(tmp_path):
    """Ray hands the epoch a scheduler stops on to on_trial_complete only: it must still be the trial's value."""
    from rnnlab.experiment import load_experiment
    from rnnlab.tune import make_searcher
    from rnnlab.tune.trainable import FINAL_KEY

    experiment = load_experiment(SEARCH_DIGITS)
    searcher = make_searcher(experiment.search_space, experiment.config, tmp_path)
    searcher.suggest("aaa")
    searcher.suggest("bbb")
    searcher.on_trial_result("aaa", {"epoch": 1, "training_iteration": 1, "val/acc": 0.5})
    searcher.on_trial_complete("aaa", {"epoch": 2, "training_iteration": 2, "val/acc": 0.85})
    searcher.on_trial_result("bbb", {"epoch": 1, "training_iteration": 1, "val/acc": 0.25})
    searcher.on_trial_result("bbb", {"epoch": 2, "training_iteration": 2, "val/acc": 0.5})
    searcher.on_trial_complete("bbb", {FINAL_KEY: True, "training_iteration": 3, "status": "completed", "val/acc": 0.5})
    trials = {t.user_attrs["ray_trial_id"]: t for t in load_study(tmp_path).trials}
    assert trials["aaa"].state.name == "PRUNED" and trials["aaa"].value == 0.85
    assert trials["aaa"].intermediate_values == {1: 0.5, 2: 0.85}
    assert trials["aaa"].user_attrs["reason"] == "stopped by the scheduler after epoch 2"
    assert trials["bbb"].state.name == "COMPLETE" and trials["bbb"].value == 0.5
    assert trials["bbb"].intermediate_values == {1: 0.25, 2: 0.5}  # the summary row is no epoch


def check_record(folder: Path) -> list[str]:
    """Compare every trial's Optuna record with its folder and Ray's last result; the statuses seen."""
    from ray.tune import ExperimentAnalysis

    spec = SearchSpec.load(folder)
    trials = [t for run in spec.ray_runs for t in ExperimentAnalysis(str(folder / run)).trials]
    ray_last = {t.trial_id: t.last_result for t in trials}
    statuses = []
    for t in load_study(folder).trials:
        trial_id = t.user_attrs["ray_trial_id"]
        result = json.loads((folder / "trials" / trial_id / "result.json").read_text())
        rows = [json.loads(line) for line in (folder / "trials" / trial_id / "metrics.jsonl").read_text().splitlines()]
        statuses.append(result["status"])
        assert t.state.name == STATES[result["status"]], (trial_id, result)
        assert t.intermediate_values == {r["epoch"]: r[spec.metric] for r in rows}, trial_id
        assert math.isclose(t.value, result[spec.metric]), (trial_id, t.value, result)
        assert math.isclose(ray_last[trial_id][spec.metric], result[spec.metric]), trial_id
        if result["status"] != "completed":
            assert t.user_attrs["reason"] == result["reason"], trial_id
    return statuses


@pytest.mark.slow
def test_search_record_equals_trial_records(tmp_path):
    """ASHA with a grace period of 2 stops trials after epoch 2 of 3: a stopped trial's value is epoch 2's."""
    import ray

    from rnnlab.tune import connect

    connect(None)
    try:
        code = main(
            [
                "tune",
                SEARCH_DIGITS,
                "--storage",
                str(tmp_path),
                "--name",
                "r",
                "--samples",
                "6",
                "--concurrency",
                "2",
                "--set",
                "train.epochs=3",
                "train.max_batches=4",
                "search.grace_period=2",
                "search.sampler=random",
            ]
        )
    finally:
        ray.shutdown()
    assert code == 0
    statuses = check_record(tmp_path / "r")
    assert len(statuses) == 6 and "completed" in statuses


@pytest.mark.parametrize("seeds", [1, 3])
def test_a_train_metric_is_in_the_result_and_told_to_the_study(tmp_path, seeds):
    """An ESN with no validation split monitors `train/rmse`. Its result.json held only `best/train/rmse`, so the
    searcher found "no finite value of train/rmse" and failed every trial of such a search, each "completed" in its
    folder; with seeds, `seeds/train/rmse` was all NaN. Now the result holds the best epoch's train metrics, and the
    study's value is that result's."""
    from rnnlab.experiment import load_experiment
    from rnnlab.registries import apply_overrides
    from rnnlab.trial import read_metrics, run_trial
    from rnnlab.tune import make_searcher
    from rnnlab.tune.trainable import FINAL_KEY

    cfg = load_experiment(ROOT / "experiments" / "esn_mackey_glass.py").config
    cfg = apply_overrides(cfg, {"search.seeds": seeds, "tracking.mode": "disabled", "model.esn.units": 50})
    assert cfg.metric == "train/rmse" and cfg.data.val_fraction == 0
    result = run_trial(cfg, out_dir=tmp_path / "t")
    [row] = read_metrics(tmp_path / "t" / "metrics.jsonl")
    assert math.isfinite(result["train/rmse"]) and result["train/rmse"] == row["train/rmse"] == row["best/train/rmse"]
    if seeds > 1:
        own = [json.loads((tmp_path / "t" / f"seed_{i}" / "result.json").read_text())["train/rmse"] for i in range(3)]
        assert result["seeds/train/rmse"] == own and math.isclose(result["train/rmse"], sum(own) / 3)

    space = lambda trial: {"model.esn.leak_rate": trial.suggest_float("model.esn.leak_rate", 0.1, 1.0)}  # noqa: E731
    (tmp_path / "s").mkdir()
    searcher = make_searcher(space, cfg, tmp_path / "s")
    searcher.suggest("aaa")
    searcher.on_trial_complete("aaa", {**result, FINAL_KEY: True, "training_iteration": 2})
    [trial] = load_study(tmp_path / "s").trials
    assert trial.state.name == "COMPLETE" and trial.value == result["train/rmse"], trial.user_attrs
