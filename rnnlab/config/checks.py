"""The checks of a Config's values: types, ranges, sizes the libraries can hold, strings that say something, and
settings another setting leaves unread. Standard library only; `rnnlab.registries.validate` adds what needs the
model families, tasks and built-in datasets.
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
from typing import Any

from rnnlab.config.overrides import coerce, field_paths, field_types, to_flat_dict, type_name
from rnnlab.config.schema import Config, ConfigError, check

FLOAT32_MAX = 3.4028234663852886e38  # numpy.finfo(numpy.float32).max
INT64 = 2**63  # torch's and numpy's integers are int64: an int field holds less in size
MAX_BYTES = 2**63 - 1  # the most bytes torch or numpy sizes one tensor or array by
WIDTHS = ("model.hidden_size", "model.embedding_size", "model.esn.units")  # each sizes a WIDTH x WIDTH matrix
MAX_LAYERS = 1024  # built and stepped a layer at a time in Python: 10**8 layers of LSTM never finished building
WANDB_PROJECT_FORBIDS = "/\\#?%:"  # characters W&B refuses in a project name
MAX_WAIT_S = 1e9  # seconds; Python's waits count nanoseconds in 64 bits (9.2e9 s) and overflow past them
MAX_THREADS = 1024  # libgomp sizes its pool by it: 2**31 - 1 threads aborted the process (a 432 GiB allocation)
# a trial is a folder under trials/ (~0.3 MB with its W&B run) and ~2 kB of Optuna journal that every report,
# dashboard and resume reads whole, and Ray's driver holds each one: 10**12 was taken, a search no disk could hold
MAX_SAMPLES = 10**6
# each seed is a whole run, one after another inside one trial, in its own folder seed_<i>: 10**9 seeds took 9 GB
# of memory before the first seed ran (the records of every seed are built first) and ended with no word
MAX_SEEDS = 1000
# trials at once: each holds a Ray worker process (~0.5 GB) and its share of the CPUs; 10**9 was taken (and recorded)
MAX_CONCURRENCY = 10**4


def _check_types(obj: Any, prefix: str = "") -> None:
    for name, tp in field_types(type(obj)).items():
        value = getattr(obj, name)
        if dataclasses.is_dataclass(value):
            _check_types(value, f"{prefix}{name}.")
        elif tp is float and type(value) is int:  # `weight_decay=0` in an experiment file means 0.0
            setattr(obj, name, float(value))
        else:
            coerced = coerce(f"{prefix}{name}", tp, value)
            check(type(coerced) is type(value), f"{prefix}{name}", f"expected {type_name(tp)}, got {value!r}")


def check_magnitudes(cfg: Config) -> None:
    """Each number of the model and the optimizer within train.dtype's range: 1e40, inf or nan in float32 failed
    where torch takes it (a learning rate, weight decay or value clip: "value cannot be converted to type float
    without overflow"; a spectral radius: an internal error of torch.linalg.lstsq on the reservoir's inf states).
    Every other float finite, and a time limit within what Python can wait (inf failed the trial's watchdog with an
    OverflowError in its worker)."""
    largest = FLOAT32_MAX if cfg.train.dtype == "float32" else sys.float_info.max
    for path, value in to_flat_dict(cfg).items():
        if not isinstance(value, float):
            continue
        if path.split(".")[0] in ("model", "optim") and not abs(value) <= largest:
            raise ConfigError(
                path, f"must be at most {largest:.3g} in size (train.dtype={cfg.train.dtype}), got {value}"
            )
        check(math.isfinite(value), path, f"must be a finite number, got {value}")
    limit = cfg.search.trial_time_limit_s
    check(limit <= MAX_WAIT_S, "search.trial_time_limit_s", f"must be at most {MAX_WAIT_S:g} s (0: none), got {limit}")


def check_integers(cfg: Config) -> None:
    """Each integer within what torch and numpy hold, and each size within a tensor they can allocate: a width of
    2**62 failed inside torch with a TypeError (a traceback in run, max_failures retries in a search), 2**62 built-in
    samples inside numpy ('array is too big'), 2**62 threads with torch's 'Overflow when unpacking long'."""
    flat = to_flat_dict(cfg)
    for path, value in flat.items():
        if path != "seed" and type(value) is int and not -INT64 <= value < INT64:  # seed: its own uint64 range
            raise ConfigError(path, f"must be below 2**63 in size (torch and numpy hold no larger int), got {value}")
    itemsize = 4 if cfg.train.dtype == "float32" else 8
    for path in WIDTHS:
        width = flat.get(path)
        if width is not None and width * width * itemsize > MAX_BYTES:
            raise ConfigError(
                path,
                f"a {width} x {width} weight matrix of {cfg.train.dtype} would exceed 2**63 bytes, the most torch "
                f"can allocate: must be at most {math.isqrt(MAX_BYTES // itemsize)}, got {width}",
            )
    layers = flat.get("model.num_layers", 1)
    check(layers <= MAX_LAYERS, "model.num_layers", f"must be at most {MAX_LAYERS}, got {layers}")
    t = cfg.train
    check(
        t.threads <= MAX_THREADS,
        "train.threads",
        f"must be at most {MAX_THREADS} (0: torch's default), got {t.threads}",
    )
    cap = cfg.search.memory_per_trial_mb
    check(
        cap * 2**20 <= MAX_BYTES,
        "search.memory_per_trial_mb",
        f"must be at most {MAX_BYTES >> 20} (2**63 bytes, the largest limit the OS takes), got {cap}",
    )
    d = cfg.data
    if d.source == "builtin" and d.num_samples * d.seq_len * 8 > MAX_BYTES:  # generated as float64 arrays
        raise ConfigError(
            "data.num_samples",
            f"{d.num_samples} sequences of data.seq_len={d.seq_len} would exceed 2**63 bytes, the most numpy can "
            "allocate: lower data.num_samples or data.seq_len",
        )


def check_strings(cfg: Config) -> None:
    """No string field empty or blank: '' is no split, column, project, device or name (data.val_split= was taken as
    a split named '', tracking.project= as W&B's default project). A field that may be None says so."""
    flat = to_flat_dict(cfg)
    for path, tp in field_paths(cfg).items():
        value = flat[path]
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, str) and not v.strip() for v in values):
            unset = "or None to unset it" if "None" in type_name(tp) else "or leave it at its default"
            raise ConfigError(path, f"is empty ({value!r}); give a value {unset}")


def check_fields(cfg: Config) -> Config:
    """Raise a ConfigError for the first invalid field; return cfg unchanged otherwise. The model's settings are
    checked by its family's config (`cfg.model.validate()`); names of registry entries by `rnnlab.registries`."""
    _check_types(cfg)
    check_strings(cfg)
    d, o, t, s = cfg.data, cfg.optim, cfg.train, cfg.search
    check(
        cfg.name not in ("", ".", "..") and not set(cfg.name) & {"/", "\\"},
        "name",
        f"got {cfg.name!r}: it names the run and search folders (runs/NAME-TIME, <storage>/NAME-TIME), so one "
        "folder name, without / or \\, not . or ..",
    )
    check(
        1 <= s.seeds <= MAX_SEEDS,
        "search.seeds",
        f"must be in [1, {MAX_SEEDS}] (each seed is a whole run, one after another in the trial), got {s.seeds}",
    )
    top = 2**64 - s.seeds  # torch's seeds are uint64; the replicates take seed, seed+1, ...
    check(0 <= cfg.seed < top, "seed", f"must be in [0, 2**64 - search.seeds), got {cfg.seed}")
    check(0 <= d.val_fraction < 1, "data.val_fraction", f"must be in [0, 1), got {d.val_fraction}")
    check(0 <= d.test_fraction < 1, "data.test_fraction", f"must be in [0, 1), got {d.test_fraction}")
    check(d.val_fraction + d.test_fraction < 1, "data.test_fraction", "val_fraction + test_fraction must be < 1")
    for name, source in (("revision", "hub"), ("config_name", "hub"), ("format", "local")):  # else ignored
        value = getattr(d, name)
        check(
            value is None or d.source == source,
            f"data.{name}",
            f"is read for data.source={source} only, not {d.source}; unset it (got {value!r})",
        )
    twice = sorted({c for c in d.sequence_columns if d.sequence_columns.count(c) > 1})
    check(not twice, "data.sequence_columns", f"names {', '.join(twice)} twice; name each input column once")
    for path, split in (("data.val_split", d.val_split), ("data.test_split", d.test_split)):  # scored on fit rows
        check(split != d.train_split, path, f"{split!r} is data.train_split; name another split or None (carved)")
    check(
        d.val_split is None or d.val_split != d.test_split,
        "data.test_split",
        f"{d.test_split!r} is data.val_split too: the test split would select the model; name two splits",
    )
    for name in ("max_vocab", "min_freq", "seq_len", "num_samples", "horizon"):
        check(getattr(d, name) >= 1, f"data.{name}", f"must be >= 1, got {getattr(d, name)}")
    check(d.max_length >= 0, "data.max_length", f"must be >= 0 (0: keeps all), got {d.max_length}")
    check(d.window >= 0, "data.window", f"must be >= 0 (0: each series whole), got {d.window}")
    check(0 <= d.noise <= 1, "data.noise", f"must be in [0, 1], got {d.noise}")
    check(math.isfinite(o.learning_rate) and o.learning_rate > 0, "optim.learning_rate", "must be > 0")
    check(o.weight_decay >= 0, "optim.weight_decay", f"must be >= 0, got {o.weight_decay}")
    check_magnitudes(cfg)
    check_integers(cfg)
    check(0 <= o.momentum < 1, "optim.momentum", f"must be in [0, 1), got {o.momentum}")
    check(o.grad_clip >= 0, "optim.grad_clip", f"must be >= 0 (0 disables), got {o.grad_clip}")
    check(o.step_size >= 1, "optim.step_size", "must be >= 1")
    check(0 < o.gamma <= 1, "optim.gamma", f"must be in (0, 1], got {o.gamma}")
    check(t.epochs >= 1, "train.epochs", f"must be >= 1, got {t.epochs}")
    check(t.batch_size >= 1, "train.batch_size", f"must be >= 1, got {t.batch_size}")
    check(t.patience >= 0, "train.patience", "must be >= 0 (0 disables)")
    check(t.bptt >= 1, "train.bptt", "must be >= 1")
    check(t.max_batches >= 0, "train.max_batches", f"must be >= 0 (0: all), got {t.max_batches}")
    check(t.threads >= 0, "train.threads", f"must be >= 0 (0: torch's default), got {t.threads}")
    check(t.diagnostics_every >= 0, "train.diagnostics_every", "must be >= 0 (0 disables)")
    check(
        re.fullmatch(r"auto|cpu|cuda(:\d+)?", t.device) is not None,
        "train.device",
        f"got {t.device!r}; valid: auto, cpu, cuda, cuda:N",
    )
    index = t.device.partition(":")[2]
    check(
        not index or int(index) <= 127,  # torch's DeviceIndex is an int8: cuda:128 became cuda:-128 (an AssertionError)
        "train.device",
        f"got {t.device!r}; torch numbers devices cuda:0..cuda:127",
    )
    check_tracking(cfg)
    e = cfg.eval
    check(e.free_run_steps >= 0, "eval.free_run_steps", f"must be >= 0 (0: off), got {e.free_run_steps}")
    check(e.free_run_warmup >= 1, "eval.free_run_warmup", f"must be >= 1, got {e.free_run_warmup}")
    check(
        1 <= s.samples <= MAX_SAMPLES,
        "search.samples",
        f"must be in [1, {MAX_SAMPLES}] (each trial keeps a folder and its records in the search), got {s.samples}",
    )
    check(
        1 <= s.concurrency <= MAX_CONCURRENCY,
        "search.concurrency",
        f"must be in [1, {MAX_CONCURRENCY}] (trials at once, each a Ray worker), got {s.concurrency}",
    )
    check(s.cpus_per_trial > 0, "search.cpus_per_trial", "must be > 0")
    check(s.gpus_per_trial >= 0, "search.gpus_per_trial", "must be >= 0")
    check(
        s.memory_per_trial_mb >= 0,
        "search.memory_per_trial_mb",
        f"must be >= 0 (0: no cap), e.g. 2048 for 2 GiB; got {s.memory_per_trial_mb}",
    )
    check(
        s.trial_time_limit_s >= 0,
        "search.trial_time_limit_s",
        f"must be >= 0 (0: no limit), got {s.trial_time_limit_s}",
    )
    check(s.max_failures >= 0, "search.max_failures", f"must be >= 0 (0: no retry), got {s.max_failures}")
    check(s.grace_period >= 1, "search.grace_period", f"must be >= 1, got {s.grace_period}")
    check("/" in cfg.metric, "metric", f"must be split/name like val/acc, got {cfg.metric!r}")
    for obj in s.objectives:
        name, _, mode = obj.partition(":")
        check("/" in name and mode in ("min", "max"), "search.objectives", f"{obj!r}: expected 'split/name:min|max'")
    names = [cfg.metric, *(obj.partition(":")[0] for obj in s.objectives)]  # the metric is the first objective
    twice = sorted({n for n in names if names.count(n) > 1})
    check(  # a search of one metric over and over, drawn as a Pareto front of a line
        not twice,
        "search.objectives",
        f"names {', '.join(twice)} twice (metric={cfg.metric} is the first objective); name each metric once",
    )
    check_read(cfg)
    return cfg


def check_tracking(cfg: Config) -> None:
    """W&B's own rules for a project name, a group and tags (wandb_settings' validators): broken, W&B did not start, and
    the run or every trial of a search trained on without its W&B record (a warning only)."""
    project, bad = cfg.tracking.project, sorted(set(cfg.tracking.project) & set(WANDB_PROJECT_FORBIDS))
    check(len(project) <= 128, "tracking.project", f"at most 128 characters (W&B's limit), got {len(project)}")
    check(not bad, "tracking.project", f"{project!r}: W&B forbids the characters {' '.join(bad)} in a project name")
    group = cfg.tracking.group or ""
    check(len(group) <= 128, "tracking.group", f"at most 128 characters (W&B's limit), got {len(group)}")
    for tag in cfg.tracking.tags:
        check(len(tag) <= 64, "tracking.tags", f"{tag!r}: a tag is at most 64 characters (W&B's limit)")


def check_read(cfg: Config) -> None:
    """A setting read only under another setting, changed from its default where that one leaves it unread, is
    refused naming the setting that would read it (it was silently ignored). Task and dataset settings: registries;
    eval.*: evaluation.check_protocols."""
    o, default = cfg.optim, Config()
    unread = [
        ("optim.momentum", o.momentum, default.optim.momentum, o.optimizer != "sgd", "optim.optimizer=sgd"),
        ("optim.step_size", o.step_size, default.optim.step_size, o.schedule != "step", "optim.schedule=step"),
        ("optim.gamma", o.gamma, default.optim.gamma, o.schedule != "step", "optim.schedule=step"),
        ("optim.clip_mode", o.clip_mode, default.optim.clip_mode, not o.grad_clip, "optim.grad_clip > 0"),
    ]
    for path, value, default_value, unused, reader in unread:
        check(
            not unused or value == default_value,
            path,
            f"is read by {reader} only, which this config does not have, so {value!r} would be ignored: set "
            f"{reader} or leave {path} at its default ({default_value!r})",
        )
