"""Faults at known points of a search: an experiment whose search space holds the driver before it draws trial k.

Tiny trials can all end between two polls of a test, so a test that waits for "a trial's first epoch" and then
kills the driver races the search. The gated experiment below extends experiments/search_digits.py; while a file
`hold-k` exists beside it, the driver (the Optuna searcher, inside Ray Tune's loop) waits before it draws trial k,
after touching `held-k`. The test injects its fault then: trials drawn before k have started or ended, trial k and
later ones have not. Removing `hold-k` lets the driver go on. A gate holds for at most 10 minutes.
"""

from __future__ import annotations

import time
from pathlib import Path

SEARCH_DIGITS = str(Path(__file__).resolve().parent.parent / "experiments" / "search_digits.py")

GATED = """
import time
from pathlib import Path

from rnnlab.experiment import extend, load_experiment
from rnnlab.search_folder import STUDY_NAME

config = extend({base!r})
_space = load_experiment({base!r}).search_space


def search_space(trial):
    gate = Path(__file__).with_name(f"hold-{{trial.number}}")
    if trial.study.study_name == STUDY_NAME and gate.exists():
        gate.with_name(f"held-{{trial.number}}").touch()
        deadline = time.monotonic() + 600
        while gate.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    return _space(trial)
"""


class Gates:
    """`tmp/gated.py` and its gates: `hold(k)` before the search starts, `held(k)` once the driver waits at k."""

    def __init__(self, tmp: Path, base: str = SEARCH_DIGITS):
        self.tmp = tmp
        self.experiment = tmp / "gated.py"
        self.experiment.write_text(GATED.format(base=base))

    def hold(self, *numbers: int) -> None:
        for k in numbers:
            (self.tmp / f"hold-{k}").touch()

    def held(self, k: int) -> Path:
        """The file the driver touches when it starts waiting before trial k (a predicate: `.exists`)."""
        return self.tmp / f"held-{k}"

    def release(self, k: int) -> None:
        (self.tmp / f"hold-{k}").unlink(missing_ok=True)


def live_trial(folder: Path, wait_s: float) -> Path | None:
    """The folder of a trial begun on a worker (its pid written) with no result yet and RUNNING in the study,
    waiting up to `wait_s` for one: at a gate, the trial drawn just before it may not have started yet."""
    from rnnlab.search_folder import load_study

    deadline = time.monotonic() + wait_s
    while True:
        running = {t.user_attrs.get("ray_trial_id") for t in load_study(folder).trials if t.state.name == "RUNNING"}
        for pid in folder.glob("trials/*/pid"):
            if pid.parent.name in running and not (pid.parent / "result.json").exists():
                return pid.parent
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.2)
