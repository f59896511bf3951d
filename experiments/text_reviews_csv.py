"""A word-level LSTM sentiment classifier on a local CSV (experiments/data/reviews.csv: columns text, label)."""

from pathlib import Path

from rnnlab.config import Config, DataConfig, OptimConfig, TrainConfig
from rnnlab.models.encoder import RecurrentConfig

DATA = Path(__file__).with_name("data")  # found from any folder, as the experiment is

config = Config(
    metric="val/acc",
    mode="max",
    model=RecurrentConfig(family="lstm", hidden_size=64, embedding_size=32),
    data=DataConfig(
        source="local",
        name=str(DATA / "reviews.csv"),
        task="classification",
        text_column="text",
        label_column="label",
        tokenizer="word",
    ),
    optim=OptimConfig(optimizer="adam", learning_rate=3e-3, grad_clip=1.0),
    train=TrainConfig(epochs=8, batch_size=32),
)
