"""The adding problem at T=100 (Hochreiter & Schmidhuber, 1997) with an LSTM; always answering 1 scores MSE 0.167.

At T=500 the LSTM stalls at that baseline, as in the IndRNN paper (test MSE 0.172 after 20 epochs, 20 min on one
thread; indrnn_adding.py solves it): `--set data.seq_len=500 data.num_samples=10000 train.patience=0`.
"""

from rnnlab.config import Config, DataConfig, OptimConfig, TrainConfig
from rnnlab.models.encoder import RecurrentConfig

config = Config(
    metric="val/mse",
    mode="min",
    model=RecurrentConfig(family="lstm", hidden_size=128),
    data=DataConfig(
        source="builtin", name="adding", task="regression", seq_len=100, num_samples=20000, normalize=False
    ),
    optim=OptimConfig(optimizer="adam", learning_rate=2e-3, grad_clip=1.0),
    train=TrainConfig(epochs=20, batch_size=64, patience=5),
)
