"""A 2-layer bidirectional LSTM on scikit-learn's digits read row by row (8 steps of 8 pixels)."""

from rnnlab.config import Config, DataConfig, ModelConfig, OptimConfig, TrainConfig

config = Config(
    metric="val/acc",
    mode="max",
    model=ModelConfig(family="lstm", hidden_size=128, num_layers=2, bidirectional=True, dropout=0.1),
    data=DataConfig(source="builtin", name="digits", task="classification"),
    optim=OptimConfig(optimizer="adamw", learning_rate=3e-3, weight_decay=1e-4, schedule="cosine", grad_clip=1.0),
    train=TrainConfig(epochs=30, batch_size=32),
)
