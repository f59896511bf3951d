"""Hopfield pooling (Ramsauer et al., 2021) over an LSTM reading scikit-learn's digits row by row: 4 learned
queries retrieve from the 8 row states, instead of keeping only the last one (compare experiments/digits_lstm.py).

`--set model.hopfield.encoder=none` pools the raw rows (no recurrence at all).
"""

from rnnlab.config import Config, DataConfig, OptimConfig, TrainConfig
from rnnlab.models.hopfield import HopfieldPoolingConfig, HopfieldPoolModelConfig

config = Config(
    metric="val/acc",
    mode="max",
    model=HopfieldPoolModelConfig(
        hidden_size=64,
        hopfield=HopfieldPoolingConfig(encoder="lstm", num_queries=4, beta=0.125),
    ),
    data=DataConfig(source="builtin", name="digits", task="classification"),
    optim=OptimConfig(optimizer="adam", learning_rate=5e-3, schedule="cosine", grad_clip=1.0),
    train=TrainConfig(epochs=20, batch_size=32),
)
