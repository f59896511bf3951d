"""A 1-layer LSTM on scikit-learn's digits read row by row: the smallest sequence classifier to debug with."""

from rnnlab.config import Config, DataConfig, OptimConfig, TrainConfig
from rnnlab.models.encoder import RecurrentConfig

config = Config(
    metric="val/acc",
    mode="max",
    model=RecurrentConfig(family="lstm", hidden_size=64),
    data=DataConfig(source="builtin", name="digits", task="classification"),
    optim=OptimConfig(optimizer="adam", learning_rate=5e-3, schedule="cosine", grad_clip=1.0),
    train=TrainConfig(epochs=20, batch_size=32),
)
