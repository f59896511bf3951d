"""`search.trial_time_limit_s` ends a trial stuck inside one step, not only between batches: one stuck in native
code (here: reading its data cache from a hung file, a FIFO no one writes) and one stuck in a Python loop (a
closed-form Storkey fit of 10000 patterns) end FAIL with their reason in result.json, Optuna and Ray, are not
retried, and the worker goes on to the next trial."""

import contextlib
import json
import os
import textwrap
from pathlib import Path

import pytest

from rnnlab.cli import main
from rnnlab.search_folder import load_study

ROOT = Path(__file__).resolve().parent.parent
HOPFIELD = str(ROOT / "experiments" / "hopfield_capacity.py")
LIMIT_S = 4.0

STUCK_SPACE = """
from rnnlab.experiment import extend

config = extend({base!r}, {{"search.sampler": "random", "search.scheduler": "none", "search.max_failures": 2,
                           "search.trial_time_limit_s": {limit}, "data.seq_len": 64, "data.num_samples": 4}})


def search_space(trial):
    space = {{"model.hopfield.max_iterations": trial.suggest_int("model.hopfield.max_iterations", 5, 20)}}
    if trial.study.study_name == "search" and trial.number == 0:  # its data cache is a FIFO: open() blocks
        space["data.cache_dir"] = {hung!r}
    if trial.study.study_name == "search" and trial.number == 1:  # minutes of a Python loop in one fit step
        space.update({{"model.hopfield.rule": "storkey", "data.seq_len": 1000, "data.num_samples": 10000}})
    return space
"""


@pytest.fixture(scope="module")
def local_ray():
    import ray

    from rnnlab.tune import connect

    connect(None)
    yield
    ray.shutdown()


def hung_cache(folder: Path, experiment: Path) -> Path:
    """A FIFO where trial 0's prepared data would be cached: reading it blocks in open(2) until a writer comes."""
    from rnnlab.data import cache
    from rnnlab.experiment import load_experiment

    cfg = load_experiment(str(experiment)).config
    assert cfg.data.source == "builtin"
    from rnnlab.tasks import task_of

    identity = {"builtin": cfg.data.name}  # as load_prepared keys a built-in dataset; cache_dir is not in the key
    key = cache.fingerprint(cfg.data, cfg.seed, identity, task_of(cfg.data.task))
    folder.mkdir()
    path = folder / cache.cache_path(cfg.data, key).name
    os.mkfifo(path)
    return path


@pytest.mark.slow
def test_time_limit_ends_stuck_trials_and_the_search_goes_on(tmp_path, local_ray):
    from ray.tune import ExperimentAnalysis

    experiment = tmp_path / "stuck.py"
    hung = tmp_path / "hung"
    experiment.write_text(textwrap.dedent(STUCK_SPACE.format(base=HOPFIELD, limit=LIMIT_S, hung=str(hung))))
    fifo = hung_cache(hung, experiment)
    try:
        code = main(
            ["tune", str(experiment), "--storage", str(tmp_path), "--name", "s", "--samples", "3", "--concurrency", "1"]
        )
    finally:
        with contextlib.suppress(OSError):  # let the thread left stuck in open() go: it reads an empty file
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    assert code == 0
    folder = tmp_path / "s"
    study = {t.number: t for t in load_study(folder).trials}
    ray_trials = {t.trial_id: t for t in ExperimentAnalysis(str(folder / "ray")).trials}
    pids = {}
    for number in (0, 1):
        trial = study[number]
        trial_id = trial.user_attrs["ray_trial_id"]
        result = json.loads((folder / "trials" / trial_id / "result.json").read_text())
        assert trial.state.name == "FAIL", (number, trial.user_attrs)
        assert f"search.trial_time_limit_s={LIMIT_S:g}" in trial.user_attrs["reason"]
        assert result["status"] == "failed" and result["reason"] == trial.user_attrs["reason"]
        assert ray_trials[trial_id].run_metadata.num_failures == 0  # not retried as a transient fault
        assert ray_trials[trial_id].last_result["status"] == "failed"
        pids[number] = (folder / "trials" / trial_id / "pid").read_text()
    assert "native code" in study[0].user_attrs["reason"]  # taken over: the thread never left open()
    assert "native code" not in study[1].user_attrs["reason"]  # interrupted in Python: it recorded its own end
    done = study[2]
    assert done.state.name == "COMPLETE" and ray_trials[done.user_attrs["ray_trial_id"]].run_metadata.num_failures == 0
    pids[2] = (folder / "trials" / done.user_attrs["ray_trial_id"] / "pid").read_text()
    assert pids[0] == pids[1] == pids[2]  # one worker ran all three: the stuck trials left it usable


def test_a_late_exit_of_an_abandoned_trials_memory_cap_keeps_the_next_trials_cap():
    """A thread the time limit abandoned may leave its memory cap after the worker's next trial set its own: the
    next trial's cap stays (the process-wide RLIMIT_AS is not reset under it)."""
    import resource

    from rnnlab.tune.trainable import memory_cap

    before = resource.getrlimit(resource.RLIMIT_AS)
    abandoned = memory_cap(8192)
    abandoned.__enter__()
    try:
        with memory_cap(4096):
            cap = resource.getrlimit(resource.RLIMIT_AS)[0]
            abandoned.__exit__(None, None, None)  # the stuck thread wakes and leaves its trial
            assert resource.getrlimit(resource.RLIMIT_AS)[0] == cap
    finally:
        resource.setrlimit(resource.RLIMIT_AS, before)
