"""A 1-layer GRU on scikit-learn's digits read row by row: experiments/digits_lstm.py with the other gated cell."""

from pathlib import Path

from rnnlab.experiment import extend

config = extend(Path(__file__).with_name("digits_lstm.py"), {"model.family": "gru"})
