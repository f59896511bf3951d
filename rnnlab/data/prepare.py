"""The preparers of the first six tasks: splits -> the task's encoders fitted on train -> tensors.

Each takes {"train", "val", "test"} `datasets.Dataset`s and returns a
`TaskData` whose shapes follow the contract in `rnnlab.data.__init__`. A task reaches its own as `Task.prepare`
(`rnnlab.tasks`, which sits above data/: nothing here imports it, the task comes in as an argument).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import torch

from rnnlab.config import DataConfig
from rnnlab.data import classlabels, encoders, sequences, splitting
from rnnlab.data.encoders import FEATURES_COLUMN
from rnnlab.data.taskdata import IGNORE_INDEX, SPLITS, DataError, Split, TaskData

if TYPE_CHECKING:
    from datasets import Dataset

log = logging.getLogger(__name__)
LINE_END = {"char": "\n", "word": "<eos>"}  # lm: rows of a text file are lines; keep their boundaries as a token


# --- shared encoders -------------------------------------------------------------------------------------------


def token_sequences(split: Dataset, column: str, tokenizer: str, field_path: str, name: str) -> list:
    """Strings are tokenized; lists (of words or integer ids) are taken as already tokenized. Real numbers are
    refused: they are numeric sequences (`data.sequence_columns`), not a vocabulary; so are rows without a token
    (an empty CSV cell, empty text), which no recurrence can read (torch failed packing them, with a traceback)."""
    values = split[column]
    if missing := sum(v is None for v in values):
        raise DataError(
            field_path,
            f"{missing} of {len(values)} {name} rows have no {column!r} (empty or missing); fill or drop them",
        )
    scalar = next((v for v in values if not isinstance(v, (str, list, tuple))), None)
    if scalar is not None:
        kind = type(scalar).__name__
        raise DataError(
            field_path,
            f"column {column!r} holds {kind} values (e.g. {scalar!r}), not text or "
            "token lists: name the text column, or data.task=regression for numeric features",
        )
    first = next((v for v in values if isinstance(v, (list, tuple)) and len(v)), None)
    if any(isinstance(x, float) for x in first or ()) or sequences.looks_numeric(values):
        raise DataError(
            field_path,
            f"column {column!r} holds real numbers (e.g. {str(first or values[0])[:40]}), which would be read as "
            f"tokens: for numeric sequences set data.sequence_columns={column}",
        )
    tokens = [tokenize_value(v, tokenizer) for v in values]
    if empty := sum(not t for t in tokens):
        raise DataError(
            field_path,
            f"{empty} of {len(values)} {name} rows have an empty {column!r} (no tokens); a sequence needs at least "
            "one step: fill or drop them",
        )
    return tokens


def tokenize_value(value, tokenizer: str) -> list:
    """A row's tokens; a missing row (None: an empty cell) has none, as an empty line of text has none."""
    if value is None:
        return []
    return encoders.tokenize(value, tokenizer) if isinstance(value, str) else list(value)


def encode_token_splits(by_split: dict[str, list], cfg: DataConfig, column: str) -> tuple[dict, list[str]]:
    """Token ids per split and the vocabulary (fitted on train)."""
    by_split = {name: encoders.truncate(seqs, cfg.max_length) for name, seqs in by_split.items()}
    if encoders.is_integer_sequences(by_split["train"]):
        return encoders.encode_integer_tokens(by_split, column)
    vocab = encoders.build_vocab(by_split["train"], cfg.max_vocab, cfg.min_freq)
    return {name: encoders.encode_tokens(seqs, vocab) for name, seqs in by_split.items()}, vocab


def sequence_columns(train: Dataset, cfg: DataConfig) -> list[str]:
    """The numeric input columns: `data.sequence_columns`, else `inputs` when the data has it; [] for tokens."""
    if cfg.sequence_columns:
        return list(cfg.sequence_columns)
    return [FEATURES_COLUMN] if FEATURES_COLUMN in train.column_names else []


def encode_inputs(splits: dict[str, Dataset], cfg: DataConfig) -> tuple[dict, int, list[str] | None]:
    """(inputs, lengths) per split: numeric sequences (`sequence_columns`) if any, else tokens of `text_column`."""
    train = splits["train"]
    if cfg.tokens_column != DataConfig.tokens_column and cfg.tokens_column != cfg.text_column:
        raise DataError(
            "data.tokens_column",
            f"is read by data.task=tagging only; {cfg.task} reads its inputs from data.text_column (text or token "
            "lists) or data.sequence_columns (numeric sequences)",
        )
    if columns := sequence_columns(train, cfg):
        rows = {name: sequences.read_sequences(s, columns) if len(s) else [] for name, s in splits.items()}
        dim = sequences.width(rows["train"])
        for name, split_rows in rows.items():
            if split_rows and sequences.width(split_rows) not in (0, dim):
                raise DataError(
                    sequences.FIELD,
                    f"split {name!r} has {sequences.width(split_rows)} features per step, train has {dim}",
                )
        padded = {
            name: encoders.pad_features(encoders.truncate(r, cfg.max_length), "sequence_columns", dim)
            for name, r in rows.items()
        }
        field_path = sequences.FIELD if cfg.sequence_columns else "data.name"
        encoders.check_finite({n: p[0].numpy() for n, p in padded.items()}, field_path, ", ".join(columns))
        return padded, dim, None
    if cfg.text_column not in train.column_names:
        raise DataError(
            "data.text_column",
            f"{splitting.no_column(cfg.text_column, train.column_names, 'data.text_column')}. Inputs are "
            "token text (data.text_column) or numeric sequences (data.sequence_columns)",
        )
    ids, vocab = encode_token_splits(
        {n: token_sequences(s, cfg.text_column, cfg.tokenizer, "data.text_column", n) for n, s in splits.items()},
        cfg,
        "text_column",
    )
    return {name: encoders.pad_ids(seqs) for name, seqs in ids.items()}, 0, vocab


def encode_labels(splits: dict[str, Dataset], cfg: DataConfig) -> tuple[dict[str, list[int]], list]:
    """Each split's class ids, and what each id means (a label, or a ClassLabel id's name)."""
    splitting.require_column(splits["train"], cfg.label_column, "data.label_column")
    label_map = classlabels.fit_label_map(splits["train"][cfg.label_column], "label_column")
    names = classlabels.class_names(splits["train"].features[cfg.label_column])
    for name in ("val", "test"):  # "NA" among a named split's 0/1: a missing label there too
        classlabels.check_missing_words(splits[name][cfg.label_column], "data.label_column", name)
    ids = {}
    for name, s in splits.items():  # each split's labels in train's terms: its ClassLabel ids matched by name
        terms = split_terms(s, cfg.label_column, names, label_map)
        labels = [terms.get(x, x) for x in s[cfg.label_column]] if terms else s[cfg.label_column]
        ids[name] = classlabels.apply_label_map(labels, label_map, "label_column", name, names)
    return ids, classlabels.named_labels(label_map, names, "label_column")


def split_terms(split: Dataset, column: str, train_names: list[str] | None, label_map: dict) -> dict:
    """`classlabels.train_terms` for `split`'s own ClassLabel names (a split read from other files may have others)."""
    return classlabels.train_terms(classlabels.class_names(split.features.get(column)), train_names, label_map)


def float_targets(split: Dataset, column: str) -> np.ndarray:
    """A split's regression targets, float64 (N, D)."""
    try:
        values = np.asarray(split[column], dtype=np.float64) if len(split) else np.zeros((0, 1))
    except (TypeError, ValueError):
        which = encoders.not_a_number(split[column], sequences.data_rows(split))
        message = f"column {column!r} must hold numbers or equal-length lists{which}"
        raise DataError("data.target_column", message) from None
    return values.reshape(len(values), -1) if len(values) else values  # (0, 1) for an empty split


def check_columns(splits: dict[str, Dataset], column: str, field_path: str) -> None:
    for split in splits.values():
        if len(split):
            splitting.require_column(split, column, field_path)


# --- one preparer per task -------------------------------------------------------------------------------------


def check_not_an_input(cfg: DataConfig, column: str, field_path: str) -> None:
    """What the model predicts must not be one of its inputs (it would read its answer: test/acc 1.0)."""
    if column in cfg.sequence_columns or (not cfg.sequence_columns and column == cfg.text_column):
        raise DataError(
            field_path,
            f"column {column!r} is also an input (data.sequence_columns / data.text_column): the model "
            "would read what it predicts; name another column",
        )


def prepare_classification(splits: dict[str, Dataset], cfg: DataConfig, seed: int) -> TaskData:
    """One label per sequence."""
    check_not_an_input(cfg, cfg.label_column, "data.label_column")
    inputs, input_size, vocab = encode_inputs(splits, cfg)
    labels, label_names = encode_labels(splits, cfg)
    parts = {n: Split(*inputs[n], torch.tensor(labels[n], dtype=torch.int64)) for n in SPLITS}
    return TaskData(
        cfg.task,
        **parts,
        input_size=input_size,
        vocab_size=len(vocab or []),
        output_size=len(label_names),
        vocab=vocab,
        meta={"labels": label_names},
    )


def prepare_regression(splits: dict[str, Dataset], cfg: DataConfig, seed: int) -> TaskData:
    """A float vector per sequence; targets standardised with train statistics when `normalize`.

    Inputs are left as they are: features such as the adding problem's 0/1 markers carry meaning in their scale.
    """
    check_not_an_input(cfg, cfg.target_column, "data.target_column")
    inputs, input_size, vocab = encode_inputs(splits, cfg)
    check_columns(splits, cfg.target_column, "data.target_column")
    targets = {n: float_targets(s, cfg.target_column) for n, s in splits.items()}
    encoders.check_finite(targets, "data.target_column", cfg.target_column)  # an empty cell is a NaN
    meta: dict = {}
    if cfg.normalize:
        stats = encoders.fit_standardizer(targets["train"])
        targets = {n: encoders.standardize(t, stats) for n, t in targets.items()}
        meta = {"normalization": {"target": stats}, "target_mean": stats["mean"], "target_std": stats["std"]}
    output_size = targets["train"].shape[1]
    parts = {
        n: Split(*inputs[n], torch.tensor(targets[n].reshape(-1, output_size), dtype=torch.float32)) for n in SPLITS
    }
    return TaskData(
        cfg.task,
        **parts,
        input_size=input_size,
        vocab_size=len(vocab or []),
        output_size=output_size,
        vocab=vocab,
        meta=meta,
    )


def check_no_sequence_columns(cfg: DataConfig, reads: str) -> None:
    """A task that reads no numeric input columns refuses `data.sequence_columns` rather than ignore it."""
    if cfg.sequence_columns:
        raise DataError(
            sequences.FIELD,
            f"data.task={cfg.task} reads {reads}, not data.sequence_columns (got {', '.join(cfg.sequence_columns)}); "
            "unset it (input series -> target series: data.task=series)",
        )


def prepare_tagging(splits: dict[str, Dataset], cfg: DataConfig, seed: int) -> TaskData:
    """A tag per token: `tokens_column` lists of tokens, `label_column` lists of tags (IGNORE_INDEX: no tag)."""
    check_no_sequence_columns(cfg, "data.tokens_column")
    check_columns(splits, cfg.tokens_column, "data.tokens_column")
    check_columns(splits, cfg.label_column, "data.label_column")
    tokens = {
        n: token_sequences(s, cfg.tokens_column, cfg.tokenizer, "data.tokens_column", n) for n, s in splits.items()
    }
    ids, vocab = encode_token_splits(tokens, cfg, "tokens_column")
    for n, s in splits.items():  # a row without tags (None: a missing cell) failed in len() with a traceback
        if missing := sum(not isinstance(row, (list, tuple)) for row in s[cfg.label_column]):
            raise DataError("data.label_column", f"split {n!r}: {missing} rows have no list of tags; fill or drop them")
    tags = {n: encoders.truncate(list(s[cfg.label_column]), cfg.max_length) for n, s in splits.items()}
    for n in SPLITS:
        if any(len(a) != len(b) for a, b in zip(ids[n], tags[n])):
            raise DataError("data.label_column", f"split {n!r}: a row has a different number of tags and tokens")
    label_map = classlabels.fit_label_map(
        [t for row in tags["train"] for t in row if t != IGNORE_INDEX], "label_column"
    )
    names = classlabels.class_names(splits["train"].features[cfg.label_column])
    parts = {}
    for n in SPLITS:
        terms = split_terms(splits[n], cfg.label_column, names, label_map)  # its ClassLabel tags matched by name
        rows = [[terms.get(t, t) for t in row] for row in tags[n]] if terms else tags[n]
        mapped = [classlabels.apply_label_map(row, label_map, "label_column", n, names) for row in rows]
        inputs, lengths = encoders.pad_ids(ids[n])
        parts[n] = Split(inputs, lengths, encoders.pad_ids(mapped, fill=IGNORE_INDEX)[0])
    return TaskData(
        cfg.task,
        **parts,
        input_size=0,
        vocab_size=len(vocab),
        output_size=len(label_map),
        vocab=vocab,
        meta={"labels": classlabels.named_labels(label_map, names, "label_column")},
    )


def prepare_lm(splits: dict[str, Dataset], cfg: DataConfig, seed: int) -> TaskData:
    """Each split one token stream (L,); rows end with a line-end token. Targets are the stream itself."""
    check_no_sequence_columns(cfg, "data.text_column")
    check_columns(splits, cfg.text_column, "data.text_column")
    end = LINE_END[cfg.tokenizer]
    streams = {
        n: [[tok for row in s[cfg.text_column] for tok in [*tokenize_value(row, cfg.tokenizer), end]]]
        for n, s in splits.items()
    }
    vocab = encoders.build_vocab(streams["train"], cfg.max_vocab, cfg.min_freq)
    parts = {}
    for n in SPLITS:
        stream = torch.tensor(encoders.encode_tokens(streams[n], vocab)[0], dtype=torch.int64)
        parts[n] = Split(stream, torch.tensor([len(stream)]), stream)
    return TaskData(cfg.task, **parts, input_size=0, vocab_size=len(vocab), output_size=len(vocab), vocab=vocab)


def prepare_forecast(splits: dict[str, Dataset], cfg: DataConfig, seed: int) -> TaskData:
    """Per-step targets `horizon` steps ahead; series standardised with train mean/std when `normalize`."""
    check_no_sequence_columns(cfg, "data.target_column alone (its own past)")
    check_columns(splits, cfg.target_column, "data.target_column")
    series = {
        n: encoders.as_series(s[cfg.target_column] if len(s) else [], cfg.target_column) for n, s in splits.items()
    }
    encoders.check_finite(series, "data.target_column", cfg.target_column)  # inputs and targets both
    dim = series["train"].shape[1]
    meta: dict = {}
    if cfg.normalize:
        stats = encoders.fit_standardizer(series["train"])
        series = {n: encoders.standardize(x.reshape(-1, dim), stats) for n, x in series.items()}
        meta = {"normalization": {"series": stats}, "target_mean": stats["mean"], "target_std": stats["std"]}
    parts = {}
    for n in SPLITS:
        inputs, targets = encoders.cut_windows(series[n].reshape(-1, dim), cfg.window, cfg.horizon)
        if cfg.window and len(series[n]) and not len(inputs):
            raise DataError(
                "data.window",
                f"a window of {cfg.window} steps (+ horizon {cfg.horizon}) is longer than "
                f"the {n} series ({len(series[n])} steps); lower data.window",
            )
        lengths = torch.full((len(inputs),), inputs.shape[1], dtype=torch.int64)
        parts[n] = Split(torch.tensor(inputs, dtype=torch.float32), lengths, torch.tensor(targets, dtype=torch.float32))
    meta["stride"] = max(1, cfg.window // 2) if cfg.window else 0
    return TaskData(cfg.task, **parts, input_size=dim, vocab_size=0, output_size=dim, meta=meta)


def flip_bits(patterns: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A copy with exactly round(fraction * D) signs flipped per pattern."""
    noisy = patterns.copy()
    flips = round(fraction * patterns.shape[1])
    for row in noisy:
        row[rng.choice(patterns.shape[1], size=flips, replace=False)] *= -1
    return noisy


def prepare_recall(splits: dict[str, Dataset], cfg: DataConfig, seed: int) -> TaskData:
    """Associative recall: train cues are the stored ±1 patterns; val/test cues flip a fraction `noise` of bits."""
    check_columns(splits, FEATURES_COLUMN, "data.name")
    patterns = np.asarray(splits["train"][FEATURES_COLUMN], dtype=np.float32)
    encoders.check_finite({"train": patterns}, "data.name", FEATURES_COLUMN)  # NaN > 0 is False: it would be a -1
    stored = np.where(patterns > 0, 1.0, -1.0)
    stored = stored.reshape(len(stored), -1).astype(np.float32)
    cues = {
        "train": stored,
        "val": flip_bits(stored, cfg.noise, np.random.default_rng([seed, 1])),
        "test": flip_bits(stored, cfg.noise, np.random.default_rng([seed, 2])),
    }
    lengths = torch.ones(len(stored), dtype=torch.int64)
    targets = torch.from_numpy(stored)
    parts = {n: Split(torch.from_numpy(cues[n])[:, None, :], lengths.clone(), targets.clone()) for n in SPLITS}
    dim = stored.shape[1]
    return TaskData(cfg.task, **parts, input_size=dim, vocab_size=0, output_size=dim, meta={"noise": cfg.noise})
