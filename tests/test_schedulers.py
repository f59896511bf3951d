"""The search's schedulers decide on real Ray Tune trials (stubs: Ray's own Trial objects, not run)."""

import pytest

from rnnlab.config import Config
from rnnlab.registries import apply_overrides

pytest.importorskip("ray")


def asha_config(epochs: int = 4) -> Config:
    return apply_overrides(
        Config(),
        {
            "train.epochs": epochs,
            "search.scheduler": "asha",
            "search.grace_period": 1,
            "metric": "val/acc",
            "mode": "max",
        },
    )


def decisions(scheduler, values_by_trial: dict[str, list[float]], config: dict | None = None) -> dict[str, list]:
    """Each trial reports its epochs in turn, trial after trial; the scheduler's action for every row."""
    from ray.tune.experiment import Trial

    trials = {name: Trial("rnnlab-test", config=dict(config or {}), stub=True) for name in values_by_trial}
    for trial in trials.values():
        scheduler.on_trial_add(None, trial)
    actions = {}
    for name, values in values_by_trial.items():
        row = lambda epoch, value: {"training_iteration": epoch, "epoch": epoch, "val/acc": value}  # noqa: E731
        actions[name] = [scheduler.on_trial_result(None, trials[name], row(e, v)) for e, v in enumerate(values, 1)]
    return actions


# trial b passes the rung at epoch 1 and falls below the one at epoch 4 (ASHA's rungs: 1 and 4 below max_t = 5)
VALUES = {"a": [0.9, 0.9, 0.9, 0.9], "b": [0.95, 0.5, 0.4, 0.1]}


def test_asha_lets_a_trial_at_its_last_epoch_finish():
    """Plain ASHA stops b at its last epoch: it trained every epoch, then was PRUNED with no test metrics."""
    from ray.tune.schedulers import ASHAScheduler, TrialScheduler

    from rnnlab.tune.schedulers import make_scheduler

    cfg = asha_config()
    plain = ASHAScheduler(metric="val/acc", mode="max", max_t=cfg.train.epochs + 1, grace_period=1)
    assert decisions(plain, VALUES)["b"][-1] == TrialScheduler.STOP  # what the test guards against
    ours = decisions(make_scheduler(cfg), VALUES)
    assert ours["b"] == [TrialScheduler.CONTINUE] * 4


def test_asha_still_stops_a_trial_below_a_rung_before_its_last_epoch():
    from ray.tune.schedulers import TrialScheduler

    from rnnlab.tune.schedulers import make_scheduler

    values = {"a": [0.9, 0.9, 0.9, 0.9, 0.9, 0.9], "b": [0.95, 0.9, 0.9, 0.1, 0.9, 0.9]}
    assert decisions(make_scheduler(asha_config(6)), values)["b"][3] == TrialScheduler.STOP  # rung 4 of 6 epochs


def test_asha_reads_a_searched_train_epochs():
    """A trial whose train.epochs is a searched parameter ends at its own last epoch, not the base config's."""
    from ray.tune.schedulers import TrialScheduler

    from rnnlab.tune.schedulers import make_scheduler

    values = {"a": [0.9, 0.9, 0.9, 0.9], "b": [0.95, 0.5, 0.4, 0.1]}
    actions = decisions(make_scheduler(asha_config(6)), values, {"train.epochs": 4})
    assert actions["b"][-1] == TrialScheduler.CONTINUE


def test_the_status_line_best_counts_finished_trials_only(caplog):
    """A running trial's epoch (0.95 here, which then diverges) is not "best" on the live status line; the best is
    that of a finished trial, by the value Optuna is told, as in the report."""
    import logging

    from ray.tune.experiment import Trial

    from rnnlab.tune.progress import SearchProgress
    from rnnlab.tune.trainable import FINAL_KEY

    progress = SearchProgress("val/acc", "max", 2)
    done, diverging = Trial("rnnlab-test", stub=True), Trial("rnnlab-test", stub=True)
    with caplog.at_level(logging.INFO, logger="rnnlab"):
        for trial in (done, diverging):
            progress.on_trial_start(0, [], trial)
        progress.on_trial_result(0, [], diverging, {"epoch": 1, "val/acc": 0.95})
        progress.on_trial_result(0, [], done, {"epoch": 1, "val/acc": 0.7})
        assert progress.best is None
        progress.on_trial_result(0, [], done, {"val/acc": 0.8, "status": "completed", FINAL_KEY: True})
        progress.on_trial_complete(0, [], done)
        progress.on_trial_result(0, [], diverging, {"val/acc": float("nan"), "status": "diverged", FINAL_KEY: True})
        progress.on_trial_complete(0, [], diverging)
    assert progress.best == (0.8, done.trial_id)
    assert f"best val/acc=0.8 ({done.trial_id})" in caplog.records[-1].getMessage()
    assert "0.95" not in caplog.text


def test_the_status_line_counts_a_trial_without_a_value_as_the_study_does(caplog):
    """A trial that completed with no finite value of the metric is failed by the searcher ("no finite value"); the
    status line counted it "done" and printed "finished (train/rmse=nan)"."""
    import logging

    from ray.tune.experiment import Trial

    from rnnlab.tune.progress import SearchProgress
    from rnnlab.tune.trainable import FINAL_KEY

    progress = SearchProgress("train/rmse", "min", 1)
    trial = Trial("rnnlab-test", stub=True)
    with caplog.at_level(logging.INFO, logger="rnnlab"):
        progress.on_trial_start(0, [], trial)
        progress.on_trial_result(0, [], trial, {"train/rmse": float("nan"), "status": "completed", FINAL_KEY: True})
        progress.on_trial_complete(0, [], trial)
    assert progress.counts == {"done": 0, "pruned": 0, "errored": 1} and progress.best is None
    assert "no finite value of train/rmse" in caplog.records[-1].getMessage()


def test_the_status_line_counts_paused_trials_as_paused_not_running(caplog):
    """HyperBand pauses a trial at a milestone (no worker, waiting): the status line counted it "running" until it
    ended. Now it is "paused" while Ray's trials list says PAUSED, "running" again once resumed (said so)."""
    import logging

    from ray.tune.experiment import Trial

    from rnnlab.tune.progress import SearchProgress

    progress = SearchProgress("val/acc", "max", 3)
    trials = [Trial("rnnlab-test", stub=True) for _ in range(3)]
    with caplog.at_level(logging.INFO, logger="rnnlab"):
        for trial in trials:
            trial.set_status(Trial.RUNNING)
            progress.on_trial_start(0, trials, trial)
        assert "running 3 | paused 0 |" in caplog.records[-1].getMessage()
        trials[0].set_status(Trial.PAUSED)
        trials[1].set_status(Trial.PAUSED)
        progress.on_step_end(0, trials)
        progress.on_trial_recover(0, trials, trials[2])
        assert "3/3 started | running 1 | paused 2 |" in caplog.records[-1].getMessage()
        trials[0].set_status(Trial.RUNNING)
        progress.on_trial_start(0, trials, trials[0])
    assert "3/3 started | running 2 | paused 1 |" in caplog.records[-1].getMessage()
    assert caplog.records[-1].getMessage().endswith(f"<- {trials[0].trial_id} resumed")
