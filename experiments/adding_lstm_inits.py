"""The adding problem at T=200 with an LSTM: torch's default init, a forget-gate bias, chrono init (and a GRU).

Predicting the mean scores test MSE 0.167 (the variance of a sum of two U(0, 1)). Measured (seed 0, 15 epochs of 75
batches of 64, 1125 Adam steps, hidden 64; 4-6 min each on a shared, loaded 2-core CPU), val MSE by epoch:
    rnnlab run adding_lstm_inits                                test MSE 0.180  (val 0.17 at every epoch)
    rnnlab run adding_lstm_inits --set model.forget_bias=1.0    test MSE 0.181  (val 0.17 at every epoch)
    rnnlab run adding_lstm_inits --set model.chrono_init=200    test MSE 0.067  (val leaves 0.17 at epoch 13: 0.096)
    rnnlab run adding_lstm_inits --set model.family=gru         test MSE 0.0081 (val leaves 0.17 at epoch 11: 0.090)
Chrono init (T_max = T) gets the LSTM off the baseline within the budget, two epochs behind a GRU; the default and
the forget-gate bias do not. At T=500 (`--set data.seq_len=500 model.chrono_init=500`) both the default and chrono
LSTM stay at the baseline for 15 epochs (test MSE 0.162 and 0.161, 15-16 min each).
"""

from pathlib import Path

from rnnlab.experiment import extend

# experiments/adding_lstm.py, longer sequences, a smaller and shorter run (the CPU budget is small)
config = extend(
    Path(__file__).with_name("adding_lstm.py"),
    {
        "data.seq_len": 200,
        "data.num_samples": 6000,
        "model.hidden_size": 64,
        "train.epochs": 15,
        "train.patience": 0,
        "train.threads": 1,
    },
)
