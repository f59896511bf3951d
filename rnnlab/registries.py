"""A Config checked against the registries it names: model families (`rnnlab.models.MODELS`) and built-in
datasets (`rnnlab.data.DATASETS`). The one `apply_overrides` for `--set`, experiment files and Tune trials.
"""

from __future__ import annotations

from typing import Any

from rnnlab.config import Config, ConfigError
from rnnlab.config.overrides import check_fields, set_fields
from rnnlab.data import DATASETS
from rnnlab.models import MODELS


def validate(cfg: Config) -> Config:
    """Raise a ConfigError for the first invalid field or unknown registry name; return cfg unchanged otherwise."""
    family = cfg.model.family
    if family not in MODELS:
        raise ConfigError("model.family", f"unknown model {family!r}; valid choices: {', '.join(MODELS)}")
    check_fields(cfg)
    if cfg.data.source == "builtin" and cfg.data.name not in DATASETS:
        raise ConfigError("data.name", f"unknown built-in task {cfg.data.name!r}; valid: {', '.join(DATASETS)}")
    return cfg


def apply_overrides(cfg: Config, overrides: dict[str, Any]) -> Config:
    """A copy of `cfg` with dotted-path overrides applied, type-checked and validated."""
    return validate(set_fields(cfg, overrides))


def from_flat_dict(flat: dict[str, Any]) -> Config:
    """Inverse of `to_flat_dict`: a Config from a (possibly partial) flat dict, validated."""
    return apply_overrides(Config(), flat)
