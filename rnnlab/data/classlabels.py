"""ClassLabel names across splits: a split's class ids mean what its own ClassLabel names say, so they are matched
to train's by name, never by position.

Two splits may name one column's classes in different orders (train `[neg, pos]`, test `[pos, neg]`): test's id 0
is then train's id 1. datasets' parquet builder reads every split with the first file's features, so local parquet
files that disagree are read one split at a time (`class_names_differ`), each keeping its own names, and the
preparers translate each split's labels into train's terms (`train_terms`).
"""

from __future__ import annotations

from rnnlab.data.encoders import class_names
from rnnlab.data.taskdata import DataError


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
