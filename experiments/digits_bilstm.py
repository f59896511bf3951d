"""A 2-layer bidirectional LSTM on scikit-learn's digits read row by row (8 steps of 8 pixels)."""

from rnnlab.config import Config, DataConfig, OptimConfig, TrainConfig
from rnnlab.models.encoder import RecurrentConfig

config = Config(
    metric="val/acc",
    mode="max",
    model=RecurrentConfig(family="lstm", hidden_size=128, num_layers=2, bidirectional=True, dropout=0.1),
    data=DataConfig(source="builtin", name="digits", task="classification"),
    optim=OptimConfig(optimizer="adamw", learning_rate=3e-3, weight_decay=1e-4, schedule="cosine", grad_clip=1.0),
    train=TrainConfig(epochs=30, batch_size=32),
)
