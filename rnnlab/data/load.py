"""The one entry point of data: `load_prepared(cfg, seed, task)` takes the raw data from its source (built-in, hub or
local files), cuts its splits and hands them to the task's own preparer, through the on-disk cache."""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import TYPE_CHECKING, Protocol

from rnnlab.config import DataConfig
from rnnlab.data import cache, hub, sources, splitting
from rnnlab.data.builtin import BUILTIN_TASKS, DATASETS
from rnnlab.data.taskdata import DataError, TaskData, content_digest

if TYPE_CHECKING:
    from datasets import Dataset

log = logging.getLogger(__name__)


class PreparedTask(Protocol):
    """What loading asks of a task (`rnnlab.tasks.Task`): its name, its split rules and its preparer."""

    name: str
    chronological: bool
    cues_from_train: bool

    def prepare(self, splits: dict[str, Dataset], cfg: DataConfig, seed: int) -> TaskData: ...


def builtin_generator(cfg: DataConfig):
    if cfg.name not in DATASETS:
        raise DataError("data.name", f"unknown built-in task {cfg.name!r}; valid: {', '.join(DATASETS)}")
    if cfg.task not in BUILTIN_TASKS[cfg.name]:
        raise DataError(
            "data.task",
            f"built-in {cfg.name!r} is a {' or '.join(BUILTIN_TASKS[cfg.name])} task, got "
            f"{cfg.task!r}; set data.task={BUILTIN_TASKS[cfg.name][0]}",
        )
    return DATASETS[cfg.name]


class Recorder(logging.Handler):
    """Keeps (logger, message) of each warning this thread logs under `rnnlab` while it is attached."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.thread, self.said = threading.get_ident(), []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.said.append([record.name, record.getMessage()])


@contextlib.contextmanager
def recorded_warnings():
    """The warnings a preparer logs (labels that mix numbers and words, say), to store with the cache entry: a hit
    says them again, as the first preparation did, without reading the data."""
    recorder, package = Recorder(), logging.getLogger("rnnlab")
    package.addHandler(recorder)
    try:
        yield recorder.said
    finally:
        package.removeHandler(recorder)


def load_prepared(cfg: DataConfig, seed: int, task: PreparedTask) -> TaskData:
    """Prepared, encoded data for `cfg` and its `task`: from the cache when the fingerprint matches, else built by
    the task's preparer and cached. (`rnnlab.tasks.load_task_data(cfg, seed)` looks the task up by name.)"""
    cache.check_cache_root(cfg)
    if cfg.source == "builtin":
        generate = builtin_generator(cfg)
        raw, commit, identity = None, None, {"builtin": cfg.name}  # (cfg, seed) are keyed; no need to generate
    else:
        raw, commit = hub.load_hub(cfg) if cfg.source == "hub" else (sources.load_local(cfg), None)
        identity = {name: split._fingerprint for name, split in raw.items()}  # private: datasets bounded (pyproject)
        if commit:
            identity["commit"] = commit
        if cfg.source == "local":
            identity["files"] = sources.local_identity(cfg)
    key = cache.fingerprint(cfg, seed, identity, task)
    path = cache.cache_path(cfg, key)
    data = cache.read_cached(path)
    if data is not None:
        log.info("data cache hit: %s", path)
        for name, message in data.meta.get("warnings", []):
            logging.getLogger(name).warning(message)
        if raw is not None and not task.cues_from_train:
            splitting.warn_unused_splits(raw, cfg)
        data.meta["cache"] = "hit"
        return data
    if raw is None:
        raw = generate(cfg, seed)
    splits = splitting.split_columns(raw, cfg, seed, task)
    with recorded_warnings() as said:
        data = task.prepare(splits, cfg, seed)
    if said:
        data.meta["warnings"] = said
    data.fingerprint, data.content = key, content_digest(data)
    data.meta.update(source=cfg.source, name=cfg.name, revision=cfg.revision, config_name=cfg.config_name)
    if cfg.source == "hub":
        data.meta["commit"] = commit  # the revision's resolved commit sha: a branch moves, this does not
    cache.write_cached(path, data)
    log.info("data prepared and cached: %s", path)
    data.meta["cache"] = "miss"
    return data
