"""Encoders fitted on the train split: token vocabularies, padding, and series standardisation (class labels and
their map to class ids: classlabels.py).

Token ids: 0 is padding, 1 is unknown, real tokens start at 2. Integer tokens (e.g. the copy task's symbols) are
kept as given and shifted by one, so 0 stays padding.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from rnnlab.checkpoint import atomic_write_bytes
from rnnlab.data.taskdata import DataError

FEATURES_COLUMN = "inputs"  # float feature sequences (T, D) or (T,) are read from this column when present
PAD, UNK = "<pad>", "<unk>"


# --- vocabularies ----------------------------------------------------------------------------------------------


def tokenize(text: str, tokenizer: str) -> list[str]:
    """Characters, or whitespace-separated words (kept as written: casing is the data's business)."""
    return list(text) if tokenizer == "char" else text.split()


def build_vocab(sequences: Sequence[Sequence[str]], max_vocab: int, min_freq: int) -> list[str]:
    """id -> token: pad, unk, then up to `max_vocab` tokens seen >= `min_freq` times, most frequent first."""
    counts = Counter(token for seq in sequences for token in seq)
    # Ties broken by the token itself, so the vocabulary does not depend on the order rows were read.
    ranked = sorted((t for t, c in counts.items() if c >= min_freq), key=lambda t: (-counts[t], t))
    return [PAD, UNK, *ranked[:max_vocab]]


def encode_tokens(sequences: Sequence[Sequence[str]], vocab: list[str]) -> list[list[int]]:
    index = {token: i for i, token in enumerate(vocab)}
    unk = index[UNK]
    return [[index.get(token, unk) for token in seq] for seq in sequences]


def save_vocab(vocab: list[str], path: str | Path) -> None:
    """Write id -> token as JSON (the trainer stores it in the run folder)."""
    data = json.dumps({"tokens": list(vocab)}, ensure_ascii=False, indent=0).encode("utf-8")
    atomic_write_bytes(Path(path), data)  # whole or not at all: a replay reads it back


def load_vocab(path: str | Path) -> list[str]:
    return list(json.loads(Path(path).read_text(encoding="utf-8"))["tokens"])


def is_integer_sequences(sequences: Sequence[Sequence]) -> bool:
    first = next((seq for seq in sequences if len(seq)), [])
    return bool(first) and all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in first)


def encode_integer_tokens(splits: dict[str, list], column: str) -> tuple[dict[str, list[list[int]]], list[str]]:
    """Integer tokens as ids + 1 (0 stays padding); the vocabulary is their string form."""
    top = max((max(seq) for seq in splits["train"] if len(seq)), default=0)
    for name, seqs in splits.items():
        low = min((min(seq) for seq in seqs if len(seq)), default=0)
        high = max((max(seq) for seq in seqs if len(seq)), default=0)
        if low < 0 or high > top:
            raise DataError(
                f"data.{column}", f"integer tokens of split {name!r} span {low}..{high}; train spans 0..{top}"
            )
    vocab = [PAD, *[str(i) for i in range(top + 1)]]
    return {name: [[t + 1 for t in seq] for seq in seqs] for name, seqs in splits.items()}, vocab


# --- padding ---------------------------------------------------------------------------------------------------


def truncate(sequences: list, max_length: int) -> list:
    return [seq[:max_length] for seq in sequences] if max_length > 0 else sequences


def pad_ids(sequences: Sequence[Sequence[int]], fill: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """int64 (N, T) right-padded with `fill`, and int64 (N,) true lengths."""
    lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
    width = int(lengths.max()) if len(sequences) else 0
    out = np.full((len(sequences), width), fill, dtype=np.int64)
    # One flat copy into the valid steps (row-major, so in sequence order): no per-row tensor.
    out[np.arange(width)[None, :] < lengths[:, None]] = np.fromiter(
        itertools.chain.from_iterable(sequences), dtype=np.int64, count=int(lengths.sum())
    )
    return torch.from_numpy(out), torch.from_numpy(lengths)


def pad_features(sequences: Sequence, column: str, dim: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 (N, T, D) right-padded with zeros, and true lengths; a (T,) sequence counts as D=1.

    `dim` gives D when there are no sequences (an empty split still has the train split's width)."""
    arrays = [np.asarray(seq, dtype=np.float32) for seq in sequences]
    arrays = [a[:, None] if a.ndim == 1 else a for a in arrays]
    dims = {a.shape[1] for a in arrays if a.ndim == 2}
    if any(a.ndim != 2 for a in arrays) or len(dims) > 1:
        raise DataError(f"data.{column}", f"expected sequences of equal-width feature vectors, got widths {dims}")
    lengths = torch.tensor([len(a) for a in arrays], dtype=torch.int64)
    width = int(lengths.max()) if arrays else 0
    out = torch.zeros((len(arrays), width, dims.pop() if dims else dim), dtype=torch.float32)
    for i, a in enumerate(arrays):
        out[i, : len(a)] = torch.from_numpy(a)
    return out, lengths


# --- numbers ---------------------------------------------------------------------------------------------------


def not_a_number(values: Sequence, rows: Sequence[str] | None = None) -> str:
    """', not 'NA' in row 7 ...': the first text value that is no number, for an error (a CSV cell is kept as
    written, so "NA" in a numeric column arrives as text); `rows` names each row; "" when there is none."""
    for i, value in enumerate(values):
        if isinstance(value, str):
            try:
                float(value)
            except ValueError:
                return f", not {value[:40]!r}" + (f" in row {rows[i]}" if rows else "")
    return ""


def check_finite(by_split: dict[str, np.ndarray], field_path: str, column: str) -> None:
    """A DataError naming `column` and counting, per split, the rows (N, ...) that hold a NaN or an infinity."""
    bad = {
        n: int((~np.isfinite(v.reshape(len(v), -1))).any(axis=1).sum()) if len(v) else 0 for n, v in by_split.items()
    }
    if total := sum(bad.values()):
        rows = sum(len(v) for v in by_split.values())
        where = ", ".join(f"{n} {c}" for n, c in bad.items() if c)
        raise DataError(
            field_path,
            f"column {column!r}: {total} of {rows} rows hold a NaN or infinite value ({where}); fill or drop them",
        )


# --- series ----------------------------------------------------------------------------------------------------


def fit_standardizer(values: np.ndarray) -> dict[str, list[float]]:
    """Per-dimension train mean and std of (N, D) values; a constant dimension keeps std 1."""
    mean = values.mean(axis=0)
    std = values.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return {"mean": mean.tolist(), "std": std.tolist()}


def standardize(values: np.ndarray, stats: dict[str, list[float]]) -> np.ndarray:
    return (values - np.asarray(stats["mean"])) / np.asarray(stats["std"])


def cut_windows(series: np.ndarray, window: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs x[s:s+W] and per-step targets x[s+h:s+h+W]; window 0 keeps one sequence.

    Stride is W // 2 (at least 1): half-overlapping windows double the samples without near-duplicates.
    """
    length = len(series) - horizon
    if window == 0:
        if length <= 0:  # an empty split (e.g. val_fraction=0): no sequence at all
            empty = np.zeros((0, 0, series.shape[1]))
            return empty, empty
        return series[None, :length], series[None, horizon:]
    starts = list(range(0, length - window + 1, max(1, window // 2)))
    if not starts:  # too short for one window
        empty = np.zeros((0, window, series.shape[1]))
        return empty, empty
    inputs = np.stack([series[s : s + window] for s in starts])
    targets = np.stack([series[s + horizon : s + horizon + window] for s in starts])
    return inputs, targets


def as_series(values: Sequence, column: str, field_path: str = "data.target_column") -> np.ndarray:
    """One row per time step, scalar or vector -> float64 (L, D)."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(
            field_path, f"series column {column!r} must hold numbers or equal-length lists{not_a_number(values)}"
        ) from None
    return array[:, None] if array.ndim == 1 else array.reshape(len(array), -1)
