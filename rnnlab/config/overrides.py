"""A Config addressed by dotted paths: flat dicts, typed `--set a.b=v` field setting, and the checks of each value.

Standard library only, and nothing of the registries: `rnnlab.registries.apply_overrides` builds on `set_fields`
and `check_fields` and adds what needs the model families and built-in datasets.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import operator
import re
import sys
import types
import typing
from typing import Any, Literal, get_args, get_origin

from rnnlab.config.schema import Config, ConfigError, check

FLOAT32_MAX = 3.4028234663852886e38  # numpy.finfo(numpy.float32).max

# --- flattening and overrides ----------------------------------------------------------------------------------


@functools.cache  # a config class's hints never change; resolving them is most of a validate()
def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def to_flat_dict(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """{"model.hidden_size": 128, ...}: the names used by --set, Optuna, W&B and Ray."""
    flat: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            flat.update(to_flat_dict(value, key + "."))
        else:
            flat[key] = list(value) if isinstance(value, list) else value
    return flat


def field_paths(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """Every dotted path of the dataclass tree `cfg` and its type annotation, following the instances' own types
    (`cfg.model` is the config class of its family)."""
    paths: dict[str, Any] = {}
    for name, tp in _field_types(type(cfg)).items():
        value = getattr(cfg, name)
        if dataclasses.is_dataclass(value):
            paths.update(field_paths(value, f"{prefix}{name}."))
        else:
            paths[f"{prefix}{name}"] = tp
    return paths


def _type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if _is_optional(tp):
        return _type_name(_strip_optional(tp)) + " or None"
    return getattr(tp, "__name__", str(tp))


def _is_optional(tp: Any) -> bool:
    return get_origin(tp) in (typing.Union, types.UnionType) and type(None) in get_args(tp)


def _strip_optional(tp: Any) -> Any:
    rest = [a for a in get_args(tp) if a is not type(None)]
    return functools.reduce(operator.or_, rest)  # X | Y | ...


def coerce(path: str, tp: Any, value: Any) -> Any:
    """`value` (a CLI string or a Python value) as type `tp`, or a ConfigError naming `path`."""
    if _is_optional(tp):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return coerce(path, _strip_optional(tp), value)
    if get_origin(tp) is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(path, f"got {value!r}; valid choices: {', '.join(map(str, choices))}")
        return value
    if get_origin(tp) is list:
        if isinstance(value, str):  # a,b or the list as Python or JSON writes it: [a, b], ['a', 'b']
            text = value.strip()
            text = text[1:-1] if text.startswith("[") and text.endswith("]") else text
            value = [v.strip().strip("'\"") for v in text.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(path, f"expected a list, got {value!r}")
        return [coerce(path, get_args(tp)[0], v) for v in value]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(path, f"expected a bool (true/false), got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(path, f"expected an int, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        try:
            return int(str(value))
        except ValueError:
            raise ConfigError(path, f"expected an int, got {value!r}") from None
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        try:
            return float(str(value))
        except ValueError:
            raise ConfigError(path, f"expected a float, got {value!r}") from None
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(path, f"expected a string, got {value!r}")
        return value
    raise ConfigError(path, f"cannot set a field of type {_type_name(tp)}")


def set_fields(cfg: Config, overrides: dict[str, Any]) -> Config:
    """A copy of `cfg` with dotted-path overrides applied and type-coerced (unknown paths refused)."""
    cfg = copy.deepcopy(cfg)
    paths = field_paths(cfg)
    for path, value in overrides.items():
        if path not in paths:
            raise ConfigError(path, f"unknown field; {_closest(path, paths)}")
        *parents, leaf = path.split(".")
        target = cfg
        for p in parents:
            target = getattr(target, p)
        setattr(target, leaf, coerce(path, paths[path], value))
    return cfg


def parse_set_args(items: list[str]) -> dict[str, str]:
    """["a.b=1", ...] from `--set` into {"a.b": "1"}; a key given twice is refused (the last one silently won)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(item, "--set expects key=value, e.g. --set model.hidden_size=64")
        key, value = key.strip(), value.strip()
        if key in out:
            raise ConfigError(key, f"given twice in --set ({out[key]!r} and {value!r}); give it once")
        out[key] = value
    return out


def _closest(path: str, paths: dict[str, Any]) -> str:
    import difflib

    close = difflib.get_close_matches(path, list(paths), n=3, cutoff=0.5)
    if close:
        return "did you mean " + " or ".join(close) + "?"
    section = path.split(".")[0]
    same = [p for p in paths if p.startswith(section + ".")]
    return "valid fields: " + ", ".join(same or sorted({p.split(".")[0] for p in paths}))


# --- validation ------------------------------------------------------------------------------------------------


def _check_types(obj: Any, prefix: str = "") -> None:
    for name, tp in _field_types(type(obj)).items():
        value = getattr(obj, name)
        if dataclasses.is_dataclass(value):
            _check_types(value, f"{prefix}{name}.")
        elif tp is float and type(value) is int:  # `weight_decay=0` in an experiment file means 0.0
            setattr(obj, name, float(value))
        else:
            coerced = coerce(f"{prefix}{name}", tp, value)
            check(type(coerced) is type(value), f"{prefix}{name}", f"expected {_type_name(tp)}, got {value!r}")


def check_magnitudes(cfg: Config) -> None:
    """Each number of the model and the optimizer within train.dtype's range: 1e40, inf or nan in float32 failed
    where torch takes it (a learning rate, weight decay or value clip: "value cannot be converted to type float
    without overflow"; a spectral radius: an internal error of torch.linalg.lstsq on the reservoir's inf states)."""
    largest = FLOAT32_MAX if cfg.train.dtype == "float32" else sys.float_info.max
    for path, value in to_flat_dict(cfg).items():
        if path.split(".")[0] in ("model", "optim") and isinstance(value, float) and not abs(value) <= largest:
            raise ConfigError(
                path, f"must be at most {largest:.3g} in size (train.dtype={cfg.train.dtype}), got {value}"
            )


def check_fields(cfg: Config) -> Config:
    """Raise a ConfigError for the first invalid field; return cfg unchanged otherwise. The model's settings are
    checked by its family's config (`cfg.model.validate()`); names of registry entries by `rnnlab.registries`."""
    _check_types(cfg)
    d, o, t, s = cfg.data, cfg.optim, cfg.train, cfg.search
    check(
        cfg.name not in ("", ".", "..") and not set(cfg.name) & {"/", "\\"},
        "name",
        f"got {cfg.name!r}: it names the run and search folders (runs/NAME-TIME, <storage>/NAME-TIME), so one "
        "folder name, without / or \\, not . or ..",
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
    e = cfg.eval
    check(e.free_run_steps >= 0, "eval.free_run_steps", f"must be >= 0 (0: off), got {e.free_run_steps}")
    check(e.free_run_warmup >= 1, "eval.free_run_warmup", f"must be >= 1, got {e.free_run_warmup}")
    check(s.samples >= 1, "search.samples", f"must be >= 1, got {s.samples}")
    check(s.concurrency >= 1, "search.concurrency", f"must be >= 1, got {s.concurrency}")
    check(s.cpus_per_trial > 0, "search.cpus_per_trial", "must be > 0")
    check(s.gpus_per_trial >= 0, "search.gpus_per_trial", "must be >= 0")
    check(s.seeds >= 1, "search.seeds", f"must be >= 1, got {s.seeds}")
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
    check_read(cfg)
    return cfg


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
