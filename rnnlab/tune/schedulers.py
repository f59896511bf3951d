"""The scheduler a search runs with, from `search.scheduler`: ASHA, HyperBand or FIFO, over a trial's epochs.

Each trial reports one row per epoch and then its summary row (`trainable.FINAL_KEY`), so a scheduler's `max_t`
is train.epochs + 1: at max_t a scheduler stops a trial, and the summary must come first. ASHA's rungs fall at
grace_period x 4^k below max_t, so one can fall on the last epoch itself (train.epochs=4, grace_period=1: rungs 1
and 4). A trial below that rung's cutoff was stopped having trained every epoch: PRUNED in the study, with no test
metrics, though it had spent all its budget. `LastEpochASHA` lets a trial at its last epoch go on to its end; its
value still counts in the rung, for the trials after it.
"""

from __future__ import annotations

from ray.tune import schedulers
from ray.tune.schedulers import TrialScheduler

from rnnlab.config import Config, ConfigError


class LastEpochASHA(schedulers.ASHAScheduler):
    """ASHA that never stops a trial at its last epoch (`epochs`, or the trial's own searched train.epochs)."""

    def __init__(self, epochs: int, **kwargs):
        super().__init__(**kwargs)
        self.epochs = epochs

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        from rnnlab.tune.trainable import FINAL_KEY

        action = super().on_trial_result(tune_controller, trial, result)  # records the value in its rung
        last = int(trial.config.get("train.epochs", self.epochs))
        if action == TrialScheduler.STOP and not result.get(FINAL_KEY) and result.get("epoch", 0) >= last:
            return TrialScheduler.CONTINUE
        return action


def make_scheduler(cfg: Config):
    s = cfg.search
    max_t = cfg.train.epochs + 1  # the summary row comes after the last epoch: never cut a trial before it
    if s.scheduler == "asha":
        return LastEpochASHA(
            cfg.train.epochs,
            metric=cfg.metric,
            mode=cfg.mode,
            max_t=max_t,
            grace_period=min(s.grace_period, cfg.train.epochs),
        )
    if s.scheduler == "hyperband":
        return schedulers.HyperBandScheduler(metric=cfg.metric, mode=cfg.mode, max_t=max_t)
    if s.scheduler == "pbt":  # PBT mutates hyperparameters by its own ranges; a define-by-run space has none
        raise ConfigError(
            "search.scheduler",
            "pbt is not supported with an Optuna define-by-run space (it needs "
            "explicit mutation ranges); valid: asha, hyperband, none",
        )
    return schedulers.FIFOScheduler()
