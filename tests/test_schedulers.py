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
