"""Built-in datasets: synthetic sequence benchmarks and small bundled data, each a `datasets.Dataset`, by name in
`DATASETS` (with the tasks each serves in `BUILTIN_TASKS`).

Every generator is `generate_x(cfg, seed)`, deterministic in (cfg, seed), and writes the column names the config
asks for, so built-in tasks go through the same encoding as local and hub data. Float feature sequences go in the
column `inputs` (see `rnnlab.data.encoders.FEATURES_COLUMN`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from rnnlab.config import DataConfig
from rnnlab.data.taskdata import IGNORE_INDEX, DataError

if TYPE_CHECKING:
    from datasets import Dataset

FEATURES = "inputs"  # mirrors encoders.FEATURES_COLUMN (kept literal: the generators need nothing of the encoders)

# Copy-memory symbols (Arjovsky et al., 2016): data symbols 1..8, blank 0, delimiter 9.
COPY_SYMBOLS = 10  # data symbols to remember
COPY_BLANK, COPY_DELIMITER = 0, 9
NARMA_TRANSIENT = 200  # NARMA-10 steps dropped from its zero start


def to_dataset(columns: dict[str, list]) -> Dataset:
    """The generated columns as a `datasets.Dataset`."""
    from datasets import Dataset  # late: see rnnlab/data/__init__.py

    return Dataset.from_dict(columns)


def generate_adding(cfg: DataConfig, seed: int) -> Dataset:
    """Adding problem (Hochreiter & Schmidhuber, 1997; Le et al., 2015): sum the two marked values.

    Input (T, 2): a uniform value in [0, 1) and a marker channel with exactly one 1 in each half of the sequence.
    """
    rng = np.random.default_rng(seed)
    n, length = cfg.num_samples, cfg.seq_len
    if length < 2:
        raise ValueError("the adding problem needs data.seq_len >= 2")
    values = rng.random((n, length))
    half = length // 2
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, length, size=n)
    markers = np.zeros((n, length))
    rows = np.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    inputs = np.stack([values, markers], axis=-1)
    targets = values[rows, first] + values[rows, second]
    return to_dataset({FEATURES: inputs.tolist(), cfg.target_column: targets.tolist()})


def generate_copy(cfg: DataConfig, seed: int) -> Dataset:
    """Copy memory (Hochreiter & Schmidhuber, 1997; Arjovsky et al., 2016): recall 10 symbols after a delay.

    Sequence of length seq_len + 20: 10 symbols from 1..8, seq_len - 1 blanks, the delimiter 9, then 10 blanks
    during which the 10 symbols must be output. Tags are the symbols there and IGNORE_INDEX everywhere else.
    """
    rng = np.random.default_rng(seed)
    n, delay = cfg.num_samples, cfg.seq_len
    symbols = rng.integers(1, 9, size=(n, COPY_SYMBOLS))
    tokens = np.full((n, delay + 2 * COPY_SYMBOLS), COPY_BLANK)
    tokens[:, :COPY_SYMBOLS] = symbols
    tokens[:, COPY_SYMBOLS + delay - 1] = COPY_DELIMITER
    tags = np.full_like(tokens, IGNORE_INDEX)
    tags[:, -COPY_SYMBOLS:] = symbols
    return to_dataset({cfg.tokens_column: tokens.tolist(), cfg.label_column: tags.tolist()})


def integrate_mackey_glass(
    history: np.ndarray, num_steps: int, x0: float = 1.2, a: float = 0.2, b: float = 0.1, n: int = 10
) -> np.ndarray:
    """Mackey-Glass dx/dt = a x(t-tau) / (1 + x(t-tau)^n) - b x(t), one RK4 step of dt=1 per point.

    tau = len(history). The delayed value is held for the whole step (its half-step value would need
    interpolation), which is also what reservoirpy does, so series agree with reservoirpy's `mackey_glass`.
    """
    tau = len(history)
    series = np.empty(tau + num_steps)
    series[:tau] = history
    x = x0
    for t in range(tau, tau + num_steps):
        series[t] = x
        delayed = series[t - tau]
        drive = a * delayed / (1.0 + delayed**n)
        k1 = drive - b * x
        k2 = drive - b * (x + 0.5 * k1)
        k3 = drive - b * (x + 0.5 * k2)
        k4 = drive - b * (x + k3)
        x = x + (k1 + 2 * k2 + 2 * k3 + k4) / 6.0
    return series[tau:]


def generate_mackey_glass(cfg: DataConfig, seed: int) -> Dataset:
    """Mackey-Glass (tau=17, x0=1.2): num_samples points, one row per time step in `target_column`.

    The seed draws the initial history x0 + U(-0.1, 0.1), as reservoirpy does.
    """
    tau, x0 = 17, 1.2
    rng = np.random.default_rng(seed)
    history = x0 + 0.2 * (rng.random(tau) - 0.5)
    series = integrate_mackey_glass(history, cfg.num_samples, x0=x0)
    return to_dataset({cfg.target_column: series.tolist()})


def generate_narma10(cfg: DataConfig, seed: int) -> Dataset:
    """NARMA-10 (Atiya & Parlos, 2000; Jaeger, 2003), a driven nonlinear system with a 10-step memory:

        y[t+1] = 0.3 y[t] + 0.05 y[t] (y[t] + ... + y[t-9]) + 1.5 u[t-9] u[t] + 0.1,    u[t] ~ U[0, 0.5] i.i.d.

    num_samples steps after NARMA_TRANSIENT steps from y = 0 are dropped; row t holds u[t] in `inputs` and y[t+1]
    in `target_column`, so the target depends on inputs up to its row only.
    """
    rng = np.random.default_rng(seed)
    steps = NARMA_TRANSIENT + cfg.num_samples
    u = rng.uniform(0.0, 0.5, steps + 10)
    y = np.zeros(steps + 11)
    for t in range(9, steps + 10):
        y[t + 1] = 0.3 * y[t] + 0.05 * y[t] * y[t - 9 : t + 1].sum() + 1.5 * u[t - 9] * u[t] + 0.1
    if not np.isfinite(y).all():  # the system can diverge for rare input draws; none seen for u in [0, 0.5]
        raise ValueError(f"NARMA-10 diverged for seed {seed}")
    rows = slice(10 + NARMA_TRANSIENT, steps + 10)
    return to_dataset({FEATURES: u[rows].tolist(), cfg.target_column: y[11 + NARMA_TRANSIENT :].tolist()})


def generate_memory_capacity(cfg: DataConfig, seed: int) -> Dataset:
    """Jaeger's (2002) short-term memory task: i.i.d. u[t] ~ U(-1, 1) in `inputs`, and per row the delayed inputs
    u[t-1], ..., u[t-K] (K = data.max_delay) in `target_column`: num_samples rows, from t = K on."""
    if cfg.max_delay < 1:
        raise DataError("data.max_delay", f"must be >= 1, got {cfg.max_delay}")
    rng = np.random.default_rng(seed)
    K = cfg.max_delay
    u = rng.uniform(-1.0, 1.0, cfg.num_samples + K)
    delayed = np.stack([u[K - k : len(u) - k] for k in range(1, K + 1)], axis=1)  # row j: u[j+K-1], ..., u[j]
    return to_dataset({FEATURES: u[K:].tolist(), cfg.target_column: delayed.tolist()})


def _load_digit_images() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # late: scikit-learn is slow to import and only needed here

    digits = load_digits()
    return digits.images, digits.target


def generate_digits(cfg: DataConfig, seed: int) -> Dataset:
    """scikit-learn's 1797 8x8 digits as sequences: each image row is a time step (T=8, D=8), pixels / 16."""
    images, labels = _load_digit_images()
    return to_dataset({FEATURES: (images / 16.0).tolist(), cfg.label_column: labels.tolist()})


def generate_patterns(cfg: DataConfig, seed: int) -> Dataset:
    """num_samples random ±1 patterns of length seq_len, for associative recall."""
    rng = np.random.default_rng(seed)
    patterns = rng.choice([-1.0, 1.0], size=(cfg.num_samples, cfg.seq_len))
    return to_dataset({FEATURES: patterns.tolist()})


def generate_digits_patterns(cfg: DataConfig, seed: int) -> Dataset:
    """Binarised digits as 64-dim ±1 patterns (pixel > 8 of 16 is +1), classes taken in turn 0, 1, ..., 9, 0, ...

    Taking classes in turn keeps a small memory (a Hopfield net holds ~0.14 x 64 patterns) class-balanced.
    """
    images, labels = _load_digit_images()
    rng = np.random.default_rng(seed)
    by_class = [rng.permutation(np.flatnonzero(labels == c)) for c in range(10)]
    count = min(cfg.num_samples, len(labels))
    picks = [by_class[k % 10][k // 10 % len(by_class[k % 10])] for k in range(count)]
    patterns = np.where(images[picks].reshape(count, 64) > 8, 1.0, -1.0)
    return to_dataset({FEATURES: patterns.tolist(), cfg.label_column: labels[picks].tolist()})


DATASETS = {
    "adding": generate_adding,
    "copy": generate_copy,
    "mackey_glass": generate_mackey_glass,
    "digits": generate_digits,
    "patterns": generate_patterns,
    "digits_patterns": generate_digits_patterns,
    "narma10": generate_narma10,
    "memory_capacity": generate_memory_capacity,
}

# The data.* settings only some built-in datasets read: those each one's generator does (other sources read none).
# data.num_samples is left out: it is the one knob that shrinks any experiment (a cap where it is not read).
BUILTIN_SETTINGS = {
    "adding": ("seq_len",),
    "copy": ("seq_len",),
    "mackey_glass": (),
    "digits": (),
    "patterns": ("seq_len",),
    "digits_patterns": (),
    "narma10": (),
    "memory_capacity": ("max_delay",),
}

# The task(s) each built-in dataset serves; the first is the one to suggest when data.task does not fit.
BUILTIN_TASKS = {
    "adding": ("regression",),
    "copy": ("copy", "tagging"),  # copy: every step's target (the literature's loss); tagging: the recall steps
    "mackey_glass": ("forecast",),
    "digits": ("classification",),
    "patterns": ("recall",),
    "digits_patterns": ("recall", "classification"),
    "narma10": ("series",),
    "memory_capacity": ("memory_capacity", "series"),
}
