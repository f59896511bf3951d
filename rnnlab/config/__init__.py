"""Configs: the typed dataclasses of a trial and ConfigError (in `schema.py`); dotted paths, `--set` overrides and
validation in `rnnlab.config.overrides`. Standard library only: the training core imports it.
"""

from rnnlab.config.schema import (
    Config,
    ConfigError,
    DataConfig,
    ESNConfig,
    HopfieldConfig,
    IndRNNConfig,
    ModelConfig,
    OptimConfig,
    SearchConfig,
    TrackingConfig,
    TrainConfig,
)

__all__ = [
    "Config",
    "ConfigError",
    "DataConfig",
    "ESNConfig",
    "HopfieldConfig",
    "IndRNNConfig",
    "ModelConfig",
    "OptimConfig",
    "SearchConfig",
    "TrackingConfig",
    "TrainConfig",
]
