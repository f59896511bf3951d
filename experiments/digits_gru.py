"""A 1-layer GRU on scikit-learn's digits read row by row."""

from rnnlab.config import Config, DataConfig, ModelConfig, OptimConfig, TrainConfig

config = Config(
    metric="val/acc",
    mode="max",
    model=ModelConfig(family="gru", hidden_size=64),
    data=DataConfig(source="builtin", name="digits", task="classification"),
    optim=OptimConfig(optimizer="adam", learning_rate=5e-3, schedule="cosine", grad_clip=1.0),
    train=TrainConfig(epochs=20, batch_size=32),
)
