"""A character-level LSTM language model on a local text file (experiments/data/corpus.txt), truncated BPTT."""

from pathlib import Path

from rnnlab.config import Config, DataConfig, OptimConfig, TrainConfig
from rnnlab.models.encoder import RecurrentConfig

DATA = Path(__file__).with_name("data")  # found from any folder, as the experiment is

config = Config(
    metric="val/bpc",
    mode="min",
    model=RecurrentConfig(family="lstm", hidden_size=256, embedding_size=32),
    data=DataConfig(source="local", name=str(DATA / "corpus.txt"), task="lm", tokenizer="char", text_column="text"),
    optim=OptimConfig(optimizer="adam", learning_rate=3e-3, grad_clip=0.5),
    train=TrainConfig(epochs=6, batch_size=32, bptt=100),
)
