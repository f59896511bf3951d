"""The model registry: one entry per recurrent family, each an encoder class `Encoder(cfg: ModelConfig, input_size)`.

Every encoder follows the contract of `rnnlab.models.rnn.TorchRNN`: forward(x_BTD, lengths_B, state) returns
(out_BTH, last_BH, state) and it exposes `output_size`. `build_model` puts the task's embedding and head around it.
"""

from __future__ import annotations

from torch import nn

from rnnlab.config import Config, ConfigError
from rnnlab.models.esn import ESN
from rnnlab.models.hopfield import HopfieldMemory, HopfieldPooling
from rnnlab.models.indrnn import IndRNN
from rnnlab.models.rnn import GRU, LSTM, ElmanRNN
from rnnlab.models.sequence import SequenceModel

MODELS: dict[str, type[nn.Module]] = {
    "elman": ElmanRNN,
    "lstm": LSTM,
    "gru": GRU,
    "esn": ESN,
    "indrnn": IndRNN,
    "hopfield": HopfieldMemory,
    "hopfield_pool": HopfieldPooling,
}


def build_model(cfg: Config, input_size: int, vocab_size: int, output_size: int, task: str) -> SequenceModel:
    """The task model for `cfg.model.family`; token inputs (vocab_size > 0) get an embedding first."""
    if cfg.model.family not in MODELS:
        raise ConfigError("model.family", f"unknown model {cfg.model.family!r}; valid choices: {', '.join(MODELS)}")
    if task == "lm" and cfg.model.bidirectional:
        raise ConfigError("model.bidirectional", "a language model must be unidirectional (it would see the future)")
    encoder_input = cfg.model.embedding_size if vocab_size else input_size
    encoder = MODELS[cfg.model.family](cfg.model, encoder_input)
    return SequenceModel(encoder, task, output_size, vocab_size, cfg.model.embedding_size)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
