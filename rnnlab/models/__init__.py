"""The model registry: one `Family` per recurrent family, its config class (beside its model) and its encoder.

Every encoder keeps the contract of `rnnlab.models.encoder.Encoder`: forward(x_BTD, lengths_B, state) returns
(out_BTH, last_BH, state). `build_model` puts the task's embedding and head around it.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from rnnlab.config import Config, ConfigError, ModelConfig
from rnnlab.models.encoder import Family, RecurrentConfig
from rnnlab.models.esn import ESN, ESNModelConfig
from rnnlab.models.hopfield import HopfieldMemory, HopfieldModelConfig, HopfieldPooling, HopfieldPoolModelConfig
from rnnlab.models.indrnn import IndRNN, IndRNNModelConfig
from rnnlab.models.mingru import MinGRU, MinGRUConfig
from rnnlab.models.minlstm import MinLSTM, MinLSTMConfig
from rnnlab.models.rnn import GRU, LSTM, ElmanConfig, ElmanRNN, LSTMConfig
from rnnlab.models.sequence import SequenceModel
from rnnlab.tasks import Task, task_of

MODELS: dict[str, Family] = {
    "elman": Family(ElmanConfig, ElmanRNN),
    "lstm": Family(LSTMConfig, LSTM),
    "gru": Family(RecurrentConfig, GRU),
    "esn": Family(ESNModelConfig, ESN),
    "indrnn": Family(IndRNNModelConfig, IndRNN),
    "hopfield": Family(HopfieldModelConfig, HopfieldMemory),
    "hopfield_pool": Family(HopfieldPoolModelConfig, HopfieldPooling),
    "mingru": Family(MinGRUConfig, MinGRU),
    "minlstm": Family(MinLSTMConfig, MinLSTM),
}


def family_of(name: str) -> Family:
    if name not in MODELS:
        raise ConfigError("model.family", f"unknown model {name!r}; valid choices: {', '.join(MODELS)}")
    return MODELS[name]


def model_config(family: str, **settings: Any) -> ModelConfig:
    """The config of `family` with `settings` (its own fields; a field of another family is a ConfigError)."""
    config_class = family_of(family).config
    try:
        return config_class(family=family, **settings)
    except TypeError as err:
        raise ConfigError("model", f"{err} (family {family!r}, config {config_class.__name__})") from None


def build_model(cfg: Config, input_size: int, vocab_size: int, output_size: int, task: str | Task) -> SequenceModel:
    """The task model for `cfg.model`; token inputs (vocab_size > 0) get an embedding first."""
    family = family_of(cfg.model.family)
    task = task_of(task) if isinstance(task, str) else task
    encoder_input = cfg.model.embedding_size if vocab_size else input_size
    encoder = family.build(cfg.model, encoder_input)
    return SequenceModel(encoder, task, output_size, vocab_size, cfg.model.embedding_size)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
