"""A character-level LSTM language model on a local text file (experiments/data/corpus.txt), truncated BPTT."""

from rnnlab.config import Config, DataConfig, OptimConfig, TrainConfig
from rnnlab.models.encoder import RecurrentConfig

config = Config(
    metric="val/bpc",
    mode="min",
    model=RecurrentConfig(family="lstm", hidden_size=256, embedding_size=32),
    data=DataConfig(
        source="local", name="experiments/data/corpus.txt", task="lm", tokenizer="char", text_column="text"
    ),
    optim=OptimConfig(optimizer="adam", learning_rate=3e-3, grad_clip=0.5),
    train=TrainConfig(epochs=6, batch_size=32, bptt=100),
)
