"""A Config resolved against the registries it names: `cfg.model` becomes the config class of its family
(`rnnlab.models.MODELS`); task and built-in dataset names are checked (`rnnlab.tasks.TASKS`, `rnnlab.data.DATASETS`).
The one `apply_overrides` for `--set`, experiment files and Tune trials.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from rnnlab.config import Config, ConfigError, DataConfig, ModelConfig
from rnnlab.config.checks import check_fields
from rnnlab.config.overrides import coerce, field_paths, set_fields
from rnnlab.data import BUILTIN_SETTINGS, DATASETS
from rnnlab.models import MODELS, family_of
from rnnlab.tasks import TASKS, task_of


def switch_family(model: ModelConfig, family: str) -> ModelConfig:
    """`model` as the config of `family`: the settings both families have carry over, the others take defaults."""
    config_class = family_of(family).config
    if type(model) is config_class:
        return dataclasses.replace(model, family=family)
    new = config_class(family=family)
    for f in dataclasses.fields(model):
        value = getattr(model, f.name)
        if f.name != "family" and hasattr(new, f.name) and type(getattr(new, f.name)) is type(value):
            setattr(new, f.name, copy.deepcopy(value))
    return new


def owners_of(path: str) -> list[str]:
    """The families whose config has the dotted `path` (model.esn.units: esn)."""
    return [name for name, family in MODELS.items() if path in field_paths(family.config(), "model.")]


def validate(cfg: Config) -> Config:
    """Raise a ConfigError for the first invalid field or unknown registry name; return cfg otherwise, its model
    as its family's config class (a bare ModelConfig, as `Config()` holds, becomes the family's defaults)."""
    if type(cfg.model) is not family_of(cfg.model.family).config:
        cfg.model = switch_family(cfg.model, cfg.model.family)
    task_of(cfg.data.task)
    check_fields(cfg)
    cfg.model.validate()
    if cfg.data.source == "builtin" and cfg.data.name not in DATASETS:
        raise ConfigError("data.name", f"unknown built-in task {cfg.data.name!r}; valid: {', '.join(DATASETS)}")
    check_read_data(cfg.data)
    return cfg


def readers_of(settings: dict[str, tuple[str, ...]]) -> dict[str, list[str]]:
    """{setting: the names that read it} from {name: the settings it reads}."""
    fields = dict.fromkeys(f for names in settings.values() for f in names)
    return {f: [name for name, names in settings.items() if f in names] for f in fields}


def check_read_data(data: DataConfig) -> None:
    """A data.* setting that only some tasks or built-in datasets read, changed from its default where neither the
    task nor the dataset reads it, is refused naming those that do (it was silently ignored)."""
    default = DataConfig()
    dataset = BUILTIN_SETTINGS.get(data.name, ()) if data.source == "builtin" else ()
    where = f"data.name={data.name}" if data.source == "builtin" else f"data.source={data.source}"
    by_task = readers_of({name: task.settings for name, task in TASKS.items()})
    unread = [(f, f"data.task={' or '.join(ts)}", data.task) for f, ts in by_task.items() if data.task not in ts]
    unread += [
        (f, f"the built-in dataset(s) {', '.join(names)}", where)
        for f, names in readers_of(BUILTIN_SETTINGS).items()
        if f not in dataset
    ]
    for name, readers, here in unread:
        value = getattr(data, name)
        if value != getattr(default, name):
            raise ConfigError(
                f"data.{name}",
                f"is read by {readers} only, not {here}, so {value!r} would be ignored: leave it at its default "
                f"({getattr(default, name)!r})",
            )


def apply_overrides(cfg: Config, overrides: dict[str, Any]) -> Config:
    """A copy of `cfg` with dotted-path overrides applied, type-checked and validated.

    `model.family` goes first, whatever its place in `overrides`: it decides which settings `model.*` holds. A
    setting of another family is refused naming the family it belongs to.
    """
    overrides = dict(overrides)
    for path in overrides:  # a search_space's {1: ...} or an API caller's: not a path to look up
        if not isinstance(path, str):
            raise ConfigError(repr(path), f"a config path is a dotted string like 'model.hidden_size', got {path!r}")
    family = coerce("model.family", str, overrides.pop("model.family", cfg.model.family))
    cfg = copy.copy(cfg)
    cfg.model = switch_family(cfg.model, family)
    paths = field_paths(cfg)
    for path in overrides:
        owners = [] if path in paths or not path.startswith("model.") else owners_of(path)
        if owners:
            which = f"{'family' if len(owners) == 1 else 'families'} {', '.join(owners)}"
            raise ConfigError(path, f"a setting of {which}, not of model.family={family}")
    return validate(set_fields(cfg, overrides))


def from_flat_dict(flat: dict[str, Any]) -> Config:
    """Inverse of `to_flat_dict`: a Config from a (possibly partial) flat dict, validated."""
    return apply_overrides(Config(), flat)
