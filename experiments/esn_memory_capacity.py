"""Short-term memory capacity of a 100-unit ESN with small input scaling (Jaeger, 2002, "Short term memory in echo
state networks", GMD Report 152): u[t] ~ U(-1, 1) i.i.d., readouts of u[t-k] for k = 1..200 fit by ridge
regression on the first 8000 steps (past a 200-step washout), MC = sum_k r^2 on the 2000 held-out steps.

Jaeger (2002) proves MC <= N (here 100). Measured (`rnnlab run experiments/esn_memory_capacity.py`, seed 0):
test/memory_capacity 38.80; reservoirpy 0.4.2's `reservoirpy.observables.memory_capacity` on the same weights and
series gives 38.72 (tests/test_memory_capacity.py). Larger input scaling drives the tanh units out of their linear
range and lowers it (0.1: 28.2, 1.0: 11.9; reservoirpy 28.1 and 11.8).
"""

from rnnlab.config import Config, DataConfig, TrainConfig
from rnnlab.models.esn import ESNConfig, ESNModelConfig

config = Config(
    metric="train/memory_capacity",  # no validation split: the readouts are fit once, in closed form
    mode="max",
    model=ESNModelConfig(
        esn=ESNConfig(
            units=100,
            spectral_radius=0.9,
            leak_rate=1.0,
            input_scaling=0.01,
            density=1.0,
            washout=200,  # = data.max_delay: every scored step has all its delayed targets inside the split
            ridge=1e-10,
            readout="ridge",
        ),
    ),
    data=DataConfig(
        source="builtin",
        name="memory_capacity",
        task="memory_capacity",
        num_samples=10000,
        max_delay=200,
        val_fraction=0.0,
        test_fraction=0.2,
    ),
    train=TrainConfig(epochs=1, batch_size=1, dtype="float64"),
)
