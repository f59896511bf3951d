"""The train, val and test splits of raw data (named splits, or cut out of train) and `Columns`, the view of a split
the preparers read; a column missing from a split is named with its near misses (`no_column`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from rnnlab.config import DataConfig
from rnnlab.data.taskdata import DataError

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

Rows = np.ndarray | None  # row indices into a dataset; None: all of its rows
log = logging.getLogger(__name__)


SPLIT_NAMING = (
    "local files get their splits from their names (train.csv, validation.csv, test.csv, or folders train/, test/), "
    "or from a mapping data.name='train=a.csv,test=b.csv'"
)


def select_split(raw: DatasetDict, name: str, field_path: str, source: str = "") -> Dataset:
    if name not in raw:
        hint = f"; {SPLIT_NAMING}" if source == "local" else ""
        raise DataError(field_path, f"no split {name!r}; the dataset has {', '.join(raw)}{hint}")
    return raw[name]


def warn_unused_splits(raw: Dataset | DatasetDict, cfg: DataConfig) -> None:
    """Say which of the dataset's splits no field names (left out), on every run: a cached preparation too."""
    from datasets import DatasetDict

    names = list(raw) if isinstance(raw, DatasetDict) else []
    unused = [name for name in names if name not in (cfg.train_split, cfg.val_split, cfg.test_split)]
    if unused:
        log.warning("the dataset's split(s) %s are not used (data.val_split / data.test_split)", ", ".join(unused))


def split_rows(raw: Dataset | DatasetDict, cfg: DataConfig, seed: int, task) -> dict[str, tuple[Dataset, Rows]]:
    """train/val/test as (dataset, row indices or None for all of it): named splits when configured, else carved
    out of train (seeded; contiguous when the task is `chronological`; all three the train rows when it takes
    `cues_from_train`). `task` is an `rnnlab.tasks.Task`."""
    from datasets import Dataset, DatasetDict

    if isinstance(raw, Dataset):
        raw = DatasetDict({cfg.train_split: raw})
    train = select_split(raw, cfg.train_split, "data.train_split", cfg.source)
    if len(train) == 0:
        raise DataError("data.train_split", f"split {cfg.train_split!r} is empty")
    if task.cues_from_train:  # cues are noisy copies of the stored (train) patterns, made in encoding
        for field_path, split in (("data.val_split", cfg.val_split), ("data.test_split", cfg.test_split)):
            if split is not None:
                raise DataError(
                    field_path,
                    f"data.task={cfg.task} cues the stored train patterns in every split (val and test are noisy "
                    f"cues of them); it reads no split {split!r}: unset it",
                )
        return {"train": (train, None), "val": (train, None), "test": (train, None)}
    val = select_split(raw, cfg.val_split, "data.val_split", cfg.source) if cfg.val_split else None
    test = select_split(raw, cfg.test_split, "data.test_split", cfg.source) if cfg.test_split else None
    warn_unused_splits(raw, cfg)
    n = len(train)
    n_val = round(n * cfg.val_fraction) if val is None else 0
    n_test = round(n * cfg.test_fraction) if test is None else 0
    n_train = n - n_val - n_test
    if n_train <= 0:
        raise DataError("data.val_fraction", f"{n} rows leave nothing to train on after the val/test cut")
    if task.chronological:
        order = np.arange(n)
    else:
        order = np.random.default_rng(seed).permutation(n)
    parts = {"train": (train, np.sort(order[:n_train]))}
    parts["val"] = (val, None) if val is not None else (train, np.sort(order[n_train : n_train + n_val]))
    parts["test"] = (test, None) if test is not None else (train, np.sort(order[n_train + n_val :]))
    for name, given, fraction in (("val", val, cfg.val_fraction), ("test", test, cfg.test_fraction)):
        data, rows = parts[name]
        if (given is not None or fraction > 0) and len(data if rows is None else rows) == 0:  # metrics of nothing
            field_path = f"data.{name}_split" if given is not None else f"data.{name}_fraction"
            raise DataError(
                field_path,
                f"the {name} split is empty ({n} train rows); its metrics would be computed "
                f"on nothing: name a non-empty split or raise data.{name}_fraction",
            )
    return parts


def split_raw(raw: Dataset | DatasetDict, cfg: DataConfig, seed: int, task) -> dict[str, Dataset]:
    """The splits of `split_rows` as `Dataset`s (lazy columns)."""
    return {n: d if rows is None else d.select(rows) for n, (d, rows) in split_rows(raw, cfg, seed, task).items()}


def split_columns(raw: Dataset | DatasetDict, cfg: DataConfig, seed: int, task) -> dict[str, Columns]:
    """The splits of `split_rows` as `Columns`: each column of a dataset read once, whichever splits it feeds."""
    whole: dict = {}
    return {n: Columns(d, rows, whole) for n, (d, rows) in split_rows(raw, cfg, seed, task).items()}


class Columns:
    """A split whose columns are materialised as Python lists, each once, on first access.

    A `Dataset`'s `split[column]` is a lazy column that formats one row per step of iteration, and one cut out by
    `select` gathers its rows one slice at a time: preparing 100k CSV rows spent ~96% of its time there. Here a
    column of the whole dataset is read in one batch (datasets' own formatter, so the same values) and shared by the
    splits cut from it (`whole`), then each split picks its `rows`. Preparers read `len(s)`, `s.column_names`,
    `s[column]` and `s[row]` alike from this and from a `Dataset`.
    """

    def __init__(self, dataset: Dataset, rows: Rows = None, whole: dict | None = None):
        self.dataset, self.rows, self.column_names = dataset, rows, list(dataset.column_names)
        self.features = dataset.features
        self.whole = {} if whole is None else whole  # (id(dataset), column) -> the whole column
        self.values: dict[str, list] = {}

    def __len__(self) -> int:
        return len(self.dataset) if self.rows is None else len(self.rows)

    def __getitem__(self, column: str) -> list:
        if isinstance(column, (int, np.integer)):  # a row, as the Dataset gives it
            return self.dataset[int(column) if self.rows is None else int(self.rows[column])]
        if column not in self.values:
            key = (id(self.dataset), column)
            if key not in self.whole:
                self.whole[key] = self.dataset[column][:] if len(self.dataset) else []
            values = self.whole[key]
            self.values[column] = values if self.rows is None else [values[i] for i in self.rows.tolist()]
        return self.values[column]


def no_column(column: str, names: list[str], field_path: str) -> str:
    """The message for a missing column: the columns there are, and one that differs only in case or surrounding
    spaces ('Label', ' label' from a header 'text, label'), which a plain list does not show."""
    message = f"no column {column!r}; the dataset has columns: {', '.join(names)}"
    near = next((n for n in names if n.strip().casefold() == column.strip().casefold()), None)
    if near is not None:
        message += f" ({near!r} differs only in case or spaces: rename the column or set {field_path}={near!r})"
    return message


def require_column(split: Dataset | Columns, column: str, field_path: str) -> None:
    if column not in split.column_names:
        raise DataError(field_path, no_column(column, split.column_names, field_path))
