"""A Config addressed by dotted paths: flat dicts and typed `--set a.b=v` field setting (`coerce`).

Standard library only, and nothing of the registries: `rnnlab.registries.apply_overrides` builds on `set_fields`
and on `rnnlab.config.checks.check_fields`, and adds what needs the model families and built-in datasets.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import operator
import types
import typing
from typing import Any, Literal, get_args, get_origin

from rnnlab.config.schema import Config, ConfigError

# --- flattening and overrides ----------------------------------------------------------------------------------


@functools.cache  # a config class's hints never change; resolving them is most of a validate()
def field_types(cls: type) -> dict[str, Any]:
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
    for name, tp in field_types(type(cfg)).items():
        value = getattr(cfg, name)
        if dataclasses.is_dataclass(value):
            paths.update(field_paths(value, f"{prefix}{name}."))
        else:
            paths[f"{prefix}{name}"] = tp
    return paths


def type_name(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if _is_optional(tp):
        return type_name(_strip_optional(tp)) + " or None"
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
    raise ConfigError(path, f"cannot set a field of type {type_name(tp)}")


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
