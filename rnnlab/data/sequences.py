"""Numeric sequence inputs: the columns named by `data.sequence_columns`, each row one sequence of T steps.

A column's value per row is one of the accepted forms (`FORMS`): a list of numbers (one feature per step), a list
of equal-length lists of numbers (D features per step), or text of numbers separated by spaces or commas (one
feature per step, e.g. a CSV cell "0.1 0.25 -3"; a cell of one number is one step) or of such a list, as pandas
writes one to a CSV ("[0.1, 0.25, -3]", "[[0.1, 1], [0.2, 0]]"). Several columns are stacked
feature-wise and must agree on each row's length; lengths may differ between rows (padded later, with the true
lengths kept). NaN and infinity are refused naming the column and the row.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from rnnlab.data import splitting
from rnnlab.data.taskdata import DataError

FIELD = "data.sequence_columns"
FORMS = (
    "a list of numbers per row (one feature per step), a list of equal-length lists of numbers (D features per "
    'step), or text of numbers separated by spaces or commas (e.g. "0.1 0.25 -3"; one number: one step), or of '
    'such a list (e.g. "[0.1, 0.25, -3]" or "[[0.1, 1], [0.2, 0]]")'
)


def parse_text(text: str) -> np.ndarray:
    """ "0.1 0.2,0.3" -> float64 (3,); a list as pandas or json writes it to a CSV cell, "[0.1, 0.2]" -> (2,) and
    "[[0.1, 1], [0.2, 0]]" -> (2, 2), or as numpy prints one, "[0.1 0.2]"; ValueError when a part is not a number
    (numpy's "[0.1 ... 0.9]" of a long array, whose middle is lost)."""
    bare = text.strip()
    if bare.startswith("["):
        try:
            return np.asarray(json.loads(bare), dtype=np.float64)
        except json.JSONDecodeError:
            if not bare.endswith("]") or "[" in bare[1:-1] or "]" in bare[1:-1]:
                raise ValueError(text) from None
            bare = bare[1:-1]
    return np.array(bare.replace(",", " ").split(), dtype=np.float64)


def as_steps(value, column: str, row: int | str) -> np.ndarray:
    """One row's value as float64 (T, D), or a DataError naming the column, the row and the accepted forms."""
    try:
        if isinstance(value, str):
            array = parse_text(value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):  # a CSV cell of one number
            array = np.array([value], dtype=np.float64)
        elif isinstance(value, (list, tuple, np.ndarray)) and not any(isinstance(v, (str, bytes)) for v in value):
            array = np.asarray(value, dtype=np.float64)
        else:
            raise ValueError
    except (TypeError, ValueError):
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise DataError(
            FIELD, f"column {column!r}, row {row}: {shown} is not a numeric sequence; accepted forms: {FORMS}"
        ) from None
    if array.ndim > 2:
        raise DataError(FIELD, f"column {column!r}, row {row}: {array.ndim}-deep lists; accepted forms: {FORMS}")
    if not np.isfinite(array).all():
        raise DataError(FIELD, f"column {column!r}, row {row}: a NaN or infinite value; fill or drop the row")
    return array[:, None] if array.ndim == 1 else array.reshape(len(array), -1)


def data_rows(split) -> list[str]:
    """How an error names each row of the split: its 0-based row in the loaded data (a file's data rows, the header
    not counted; a glob's files in order), not its place in a split carved out of train (shuffled or cut)."""
    rows = getattr(split, "rows", None)
    numbers = range(len(split)) if rows is None else [int(r) for r in rows]
    return [f"{n} (0-based, of the data)" for n in numbers]


def read_column(values: Sequence, column: str, names: Sequence[str] | None = None) -> list[np.ndarray]:
    """Each row of one column as float64 (T, D); every row of the column has the same D. `names`: how an error
    names each row (default: its index)."""
    rows = [as_steps(v, column, names[i] if names else i) for i, v in enumerate(values)]
    widths = sorted({r.shape[1] for r in rows if len(r)})
    if len(widths) > 1:
        raise DataError(
            FIELD, f"column {column!r} has {widths} features per step in different rows; every row needs the same"
        )
    return rows


def read_sequences(split, columns: Sequence[str]) -> list[np.ndarray]:
    """The split's rows as float64 (T, D_total) arrays: the named columns stacked feature-wise per row.

    `split` is a `datasets.Dataset` or `splitting.Columns` (anything with `column_names`, `len` and `[column]`)."""
    missing = [c for c in columns if c not in split.column_names]
    if missing:
        raise DataError(FIELD, splitting.no_column(missing[0], split.column_names, FIELD))
    names = data_rows(split)
    per_column = [read_column(split[c], c, names) for c in columns]
    rows = []
    for i, parts in enumerate(zip(*per_column)):
        lengths = {c: len(p) for c, p in zip(columns, parts)}
        if len(set(lengths.values())) > 1:
            raise DataError(FIELD, f"row {names[i]}: the columns differ in length ({lengths}); each row's must agree")
        if not any(lengths.values()):  # torch's packing of a batch failed on it, with a traceback
            raise DataError(
                FIELD, f"row {names[i]}: an empty sequence; a sequence needs at least one step: fill or drop it"
            )
        rows.append(parts[0] if len(parts) == 1 else np.concatenate([p.reshape(len(p), -1) for p in parts], axis=1))
    return rows


def width(rows: Sequence[np.ndarray]) -> int:
    """Features per step (D) of the rows, 0 when there are none or all are empty."""
    return next((r.shape[1] for r in rows if len(r)), 0)


def looks_numeric(values: Sequence, sample: int = 20) -> bool:
    """True when the first `sample` non-empty values are text of real numbers only (e.g. "0.1 0.2"): a text column
    that would be tokenized digit by digit. Whole numbers alone ("3 4 5") may be words, so a decimal point or an
    exponent is required."""
    texts = [v for v in values[: sample * 5] if isinstance(v, str) and v.strip()][:sample]
    if not texts:
        return False
    try:
        for text in texts:
            parse_text(text)
    except ValueError:
        return False
    return any(c in text for text in texts for c in ".eE")
