"""Configs: the typed dataclasses of a trial and ConfigError (in `schema.py`); dotted paths, `--set` overrides and
checks in `rnnlab.config.checks`. Standard library only: the training core imports it.
"""

from rnnlab.config.schema import (
    Config,
    ConfigError,
    DataConfig,
    EvalConfig,
    ModelConfig,
    OptimConfig,
    SearchConfig,
    TrackingConfig,
    TrainConfig,
    check,
)

__all__ = [
    "Config",
    "ConfigError",
    "check",
    "DataConfig",
    "EvalConfig",
    "ModelConfig",
    "OptimConfig",
    "SearchConfig",
    "TrackingConfig",
    "TrainConfig",
]
