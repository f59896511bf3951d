"""Encoders fitted on the train split: token vocabularies, label maps, padding, and series standardisation.

Token ids: 0 is padding, 1 is unknown, real tokens start at 2. Integer tokens (e.g. the copy task's symbols) are
kept as given and shifted by one, so 0 stays padding.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from rnnlab.checkpoint import atomic_write_bytes
from rnnlab.data.taskdata import IGNORE_INDEX, DataError

log = logging.getLogger(__name__)

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


def save_labels(labels: list, path: str | Path) -> None:
    """Write class id -> label as read from the data (0/1 numbers, "NA" a word, true a boolean) as JSON: what each of
    a classifier's outputs means (the trainer stores it in the run folder)."""
    data = json.dumps({"labels": list(labels)}, ensure_ascii=False, indent=0, default=str).encode("utf-8")
    atomic_write_bytes(Path(path), data)


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


# --- labels ----------------------------------------------------------------------------------------------------


# pandas' default missing-value words: a CSV cell holding one is kept as written (sources.CSV_CELLS), a class of its
# own among words ("NA": North America), but a missing label among numbers (0, 1, "nan")
PANDAS_NA = "#N/A,#N/A N/A,#NA,-1.#IND,-1.#QNAN,-NaN,-nan,1.#IND,1.#QNAN,<NA>,N/A,NA,NULL,NaN,None,n/a,nan,null"
MISSING_WORDS = frozenset(PANDAS_NA.split(","))


def check_labels(labels: Sequence, column: str) -> None:
    """Labels that would make a classifier's results meaningless: missing, nested, real-valued, a single class."""
    field_path = f"data.{column}"
    missing = sum(
        x is None or isinstance(x, str) and not x.strip() or isinstance(x, float) and math.isnan(x) for x in labels
    )
    if missing:  # a CSV cell of blanks (" ") is kept as written, but is no class
        raise DataError(
            field_path,
            f"{missing} of {len(labels)} train rows have no label (empty, blank or missing); fill or drop them",
        )
    check_missing_words(labels, field_path)
    nested = next((x for x in labels if isinstance(x, (dict, list, tuple))), None)
    if nested is not None:
        raise DataError(
            field_path,
            f"labels must be scalars, but the column holds {type(nested).__name__} values "
            f"(e.g. {str(nested)[:60]}); name a scalar column",
        )
    fractional = sum(isinstance(x, float) and not float(x).is_integer() for x in labels)
    if fractional:
        raise DataError(
            field_path,
            f"{fractional} of {len(labels)} train labels are real numbers (e.g. "
            f"{next(x for x in labels if isinstance(x, float) and not float(x).is_integer())}): a "
            "classifier needs classes; for a numeric target set data.task=regression",
        )
    if len(set(labels)) == 1:
        raise DataError(
            field_path,
            f"the train split has a single class ({labels[0]!r}) in {len(labels)} rows: "
            "nothing to classify (any model scores 1.0)",
        )


def is_numeric_label(x) -> bool:
    return isinstance(x, (int, float, np.number)) and not isinstance(x, bool) or isinstance(x, str) and is_number(x)


def check_missing_words(labels: Sequence, field_path: str, split: str = "train") -> None:
    """Numbers with a missing-value word among them ("NA", "nan", "null" in a column of 0/1) are refused as missing
    labels; booleans among numbers are refused too (True == 1: the two would be one class)."""
    words = sorted({x for x in labels if isinstance(x, str) and x.strip() in MISSING_WORDS})
    rest = [x for x in labels if not (isinstance(x, str) and x.strip() in MISSING_WORDS)]
    if words and rest and all(is_numeric_label(x) for x in rest):
        count = sum(isinstance(x, str) and x.strip() in MISSING_WORDS for x in labels)
        raise DataError(
            field_path,
            f"{count} of {len(labels)} {split} rows have the label {' or '.join(map(repr, words[:3]))} among numeric "
            f"labels (e.g. {rest[0]!r}): a missing value, not a class; fill or drop them",
        )
    flags = sorted({x for x in labels if isinstance(x, (bool, np.bool_))})
    numbers = sorted({x for x in labels if is_numeric_label(x) and not isinstance(x, str)})
    if flags and numbers:
        raise DataError(
            field_path,
            f"the labels mix booleans and numbers ({flags[0]!r}, {numbers[0]!r}): True equals 1 and False 0, so each "
            "pair would be one class; make the column all booleans or all numbers",
        )


def fit_label_map(labels: Sequence, column: str) -> dict:
    """Original label -> 0..C-1, sorted (numbers numerically, strings alphabetically), from train labels."""
    unique = set(labels)
    if not unique:
        raise DataError(f"data.{column}", "the train split has no labels")
    check_labels(list(labels), column)
    try:
        ordered = sorted(unique)
    except TypeError:  # mixed ints and strings
        ordered = sorted(unique, key=str)
    numeric = [x for x in ordered if isinstance(x, str) and is_number(x)]
    if numeric and len(numeric) < len(ordered):  # a CSV column of 0/1 with one stray word reads as text: 3 classes
        words = [x for x in ordered if x not in numeric]
        log.warning(
            f"data.{column}: the labels mix numbers and words ({', '.join(map(repr, [*numeric[:3], *words[:3]]))}); "
            f"each is its own class, {len(ordered)} in all"
        )
    spaced = {}
    for label in (x for x in ordered if isinstance(x, str)):
        spaced.setdefault(label.strip(), []).append(label)
    if twins := next((found for found in spaced.values() if len(found) > 1), None):  # "pos" and "pos ": 2 classes
        log.warning(
            f"data.{column}: labels differ only in the spaces around them ({', '.join(map(repr, twins))}); each is "
            f"its own class, {len(ordered)} in all"
        )
    if twins := spelling_twins(ordered):  # a CSV column read as text for them (sources.label_as_text)
        log.warning(
            f"data.{column}: labels spell one value in different ways ({', '.join(map(repr, twins))}); they are "
            f"kept as written, each its own class, {len(ordered)} in all: write them alike to make them one class"
        )
    return {label: i for i, label in enumerate(ordered)}


PANDAS_BOOLEANS = {"True": True, "TRUE": True, "true": True, "False": False, "FALSE": False, "false": False}


def spelling_twins(labels) -> list[str]:
    """The first set of distinct texts that spell one whole number ('01' and '1', '1.0' and '1', '007' and '7') or
    one boolean ('True' and 'true'), sorted; [] when there is none. pandas reads such a CSV column as numbers or
    booleans, which would make them one class. Fractions are left to pandas: read as numbers, `check_labels`
    refuses them as no classes."""
    spellings: dict[object, set[str]] = {}
    for label in labels:
        if isinstance(label, str) and is_number(label) and float(label).is_integer():  # fractions: check_labels
            spellings.setdefault(float(label), set()).add(label)
        elif isinstance(label, str) and label in PANDAS_BOOLEANS:
            spellings.setdefault(str(PANDAS_BOOLEANS[label]), set()).add(label)
    return next((sorted(found) for found in spellings.values() if len(found) > 1), [])


def class_names(feature) -> list[str] | None:
    """The names of a datasets `ClassLabel` feature, or of the one a list of tags holds (`List(ClassLabel)`); None
    for any other feature. Such a column holds class ids; these name them."""
    from datasets import ClassLabel

    inner = getattr(feature, "feature", feature)
    return list(inner.names) if isinstance(inner, ClassLabel) else None


def named_labels(label_map: dict, names: list[str] | None, column: str) -> list:
    """What each class id means, in `label_map`'s order: the label itself, or a ClassLabel id's name (the map keeps
    datasets' id order; a class absent from train has no id here, so the names follow the map, not the positions)."""
    if names is None:
        return list(label_map)
    if unnamed := sorted(x for x in label_map if not 0 <= x < len(names)):
        raise DataError(
            f"data.{column}",
            f"train labels {', '.join(map(str, unnamed[:5]))} are no class of the column's ClassLabel ({len(names)} "
            f"names: {', '.join(names[:10])}); -1 is datasets' missing label: fill or drop those rows",
        )
    return [names[x] for x in label_map]


def is_number(text: str) -> bool:
    """A finite number ("nan" and "inf" are words here)."""
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def label_text(label, names: list[str] | None) -> str:
    """A label as the user knows it: a ClassLabel id by its name, the id after it ("pos (2)"); else as it is."""
    named = names is not None and isinstance(label, int) and 0 <= label < len(names)
    return f"{names[label]} ({label})" if named else str(label)


def apply_label_map(labels: Sequence, label_map: dict, column: str, split: str, names: list | None = None) -> list:
    """Each label's class id; a label train never had is a DataError naming it (by its ClassLabel `names`)."""
    unseen = sorted({x for x in labels if x not in label_map and x != IGNORE_INDEX}, key=str)
    if unseen:
        raise DataError(
            f"data.{column}",
            f"split {split!r} has labels never seen in train: {', '.join(label_text(x, names) for x in unseen[:10])}; "
            f"train labels: {', '.join(label_text(x, names) for x in list(label_map)[:20])}",
        )
    return [IGNORE_INDEX if x == IGNORE_INDEX and x not in label_map else label_map[x] for x in labels]


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
