"""Class labels: train's labels checked, mapped to class ids 0..C-1 (a map fitted on train, applied to every split),
and named (what each class id means, a ClassLabel id by its name); and ClassLabel names across splits.

A split's class ids mean what its own ClassLabel names say, so they are matched to train's by name, never by
position. Two splits may name one column's classes in different orders (train `[neg, pos]`, test `[pos, neg]`):
test's id 0 is then train's id 1. datasets' parquet builder reads every split with the first file's features, so
local parquet files that disagree are read one split at a time (`class_names_differ`), each keeping its own names,
and the preparers translate each split's labels into train's terms (`train_terms`).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from rnnlab.checkpoint import atomic_write_bytes
from rnnlab.data.taskdata import IGNORE_INDEX, DataError

log = logging.getLogger(__name__)


# --- train's labels: checks, the label map, names --------------------------------------------------------------


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


def save_labels(labels: list, path: str | Path) -> None:
    """Write class id -> label as read from the data (0/1 numbers, "NA" a word, true a boolean) as JSON: what each of
    a classifier's outputs means (the trainer stores it in the run folder)."""
    data = json.dumps({"labels": list(labels)}, ensure_ascii=False, indent=0, default=str).encode("utf-8")
    atomic_write_bytes(Path(path), data)


# --- ClassLabel names across splits ----------------------------------------------------------------------------


def file_class_names(path: str) -> dict[str, tuple[str, ...]]:
    """{column: its ClassLabel names} as the datasets features stored in a parquet file's schema give them (a
    tagger's List(ClassLabel) too); {} for a file without them or that pyarrow cannot read (datasets says why)."""
    import pyarrow.parquet as pq
    from datasets import Features

    try:
        features = Features.from_arrow_schema(pq.read_schema(path))
    except Exception:  # not parquet, torn, or no features datasets knows: load_dataset reports it in its words
        return {}
    return {column: tuple(names) for column, f in features.items() if (names := class_names(f)) is not None}


def class_names_differ(data_files: dict[str, list[str]]) -> bool:
    """True when two splits' parquet files name one column's classes differently (each split must then be read on
    its own to keep its names). The files of one split must agree: datasets reads them as one table with the first
    file's features, so a DataError names two that differ."""
    by_split: dict[str, dict[str, tuple]] = {}  # split -> column -> names
    for split, files in data_files.items():
        for path in files:
            for column, names in file_class_names(path).items():
                first = by_split.setdefault(split, {}).setdefault(column, names)
                if names != first:
                    other = next(f for f in files if file_class_names(f).get(column) == first)
                    raise DataError(
                        "data.name",
                        f"split {split!r}: {other} names the classes of column {column!r} {list(first)}, {path} "
                        f"names them {list(names)}; one split is read with one ClassLabel: write its files with the "
                        "same names in the same order",
                    )
    columns = {column for named in by_split.values() for column in named}
    return any(len({named[c] for named in by_split.values() if c in named}) > 1 for c in columns)


def load_each_split(data_files: dict[str, list[str]]):
    """Parquet files as a DatasetDict read one split at a time: each split with its own files' features (its
    ClassLabel names), which one `load_dataset` of them all would replace by the first file's."""
    from datasets import DatasetDict, load_dataset

    return DatasetDict(
        {split: load_dataset("parquet", data_files={split: found})[split] for split, found in data_files.items()}
    )


def train_terms(names: list[str] | None, train_names: list[str] | None, label_map: dict) -> dict:
    """{a split's label: the same class in train's terms} for the labels that change; the rest stay as they are.

    - Both ClassLabels: each id becomes train's id of the same name; a name train's ClassLabel lacks becomes the
      name itself, which `apply_label_map` refuses as never seen in train, by that name.
    - ClassLabel train, plain split: a string is a name (train's id of it); an int is read as train's id, as
      datasets itself casts one (a split of 0/1 next to a ClassLabel train meant its ids before names were matched).
    - Plain train, ClassLabel split: the split's names where train's labels are strings; else its ids as the numbers
      train uses (train's ints have no names to match).
    Ids outside the split's names (datasets' missing -1, a tagger's ignored step) are left for the checks after.
    """
    if names == train_names:
        return {}
    if names is None:
        return {name: i for i, name in enumerate(train_names)}
    if train_names is None:
        words = bool(label_map) and all(isinstance(label, str) for label in label_map)
        return dict(enumerate(names)) if words else {}
    index = {name: i for i, name in enumerate(train_names)}
    return {i: index.get(name, name) for i, name in enumerate(names)}
