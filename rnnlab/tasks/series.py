"""Series-to-series regression: an input series u[t] mapped step by step to a target series y[t], as in the driven
system-identification benchmarks of reservoir computing (NARMA; Atiya & Parlos, 2000; Jaeger, 2003).

Inputs are the columns of `data.sequence_columns` (several are stacked per step; none: the `inputs` column), the
target is `data.target_column`. Data come as one long series (`data.rows=steps`, a row per time step: each column
holds a number or a fixed-width vector) or as many series (`data.rows=series`, a row per series: the first input
column and the target hold lists of equal length per row, of numbers or of vectors; inputs may also be text of
numbers, as `data.sequence_columns` reads them). `data.rows=auto` tells them apart by the column types and refuses
the one form both readings fit: equal-length lists of numbers in input and target. Splits are contiguous cuts.
With `data.window = 0` every series is kept whole, so a reservoir's ridge readout is fit over all its steps past
the washout (`model.esn.washout`), and a gradient model trains on a split of one long series by truncated BPTT
(`train.batch_size` parallel streams, chunks of `train.bptt` steps, the state carried from chunk to chunk;
`rnnlab.batches.series_chunks`); `data.window = W` cuts half-overlapping windows of W steps instead. Targets are
standardised with train statistics when `data.normalize`; inputs are not (a reservoir's `input_scaling` is relative
to them). Metrics are regression's: loss (= mse), mse, rmse, nrmse = rmse / std of the targets, over every valid
step past the model's warm-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from rnnlab.config import DataConfig
from rnnlab.data import encoders, sequences
from rnnlab.data.encoders import FEATURES_COLUMN
from rnnlab.data.prepare import check_columns, check_not_an_input
from rnnlab.data.taskdata import SPLITS, DataError, Split, TaskData
from rnnlab.tasks.base import Regression, step_mask

if TYPE_CHECKING:
    from datasets import Dataset


def numbers_in(value) -> int | None:
    """How many numbers a cell holds: None for one number, -1 for a list of lists (one vector per step)."""
    if isinstance(value, (list, tuple)):
        return -1 if any(isinstance(v, (list, tuple)) for v in value) else len(value)
    return None


def rows_are_series(split: Dataset, column: str, target_column: str, rows: str) -> bool:
    """True when each row holds a whole series, False when it is one time step of one long series (`data.rows`).

    "auto" reads the first row: numbers are one step's values; a list of lists (a vector per step) or an input of
    text ("0.1 0.2", read only as a sequence) is a series; a list of numbers beside a number, or beside a list of
    another length, is one step's vector. A list of numbers as long as the target's list fits both readings (N
    steps of scalars, or one step of N-wide vectors): refused, naming data.rows."""
    if rows != "auto" or not len(split):
        return rows == "series"
    row = split[0]
    if isinstance(row[column], str):
        return True
    steps_in, steps_out = numbers_in(row[column]), numbers_in(row[target_column])
    if -1 in (steps_in, steps_out):
        return True
    if steps_in is not None and steps_in == steps_out:
        raise DataError(
            "data.rows",
            f"row 0 holds {steps_in} numbers in column {column!r} and {steps_out} in {target_column!r}: a series "
            f"of {steps_in} steps per row, or one time step per row with {steps_in}-wide vectors of one long "
            "series? Set data.rows=series or data.rows=steps",
        )
    return False


def read_series(split: Dataset, columns: list[str], many: bool, field_path: str) -> list[np.ndarray]:
    """The split's series as float64 (T, D) arrays, the columns stacked per step: one per row, or the whole split
    as one."""
    if not len(split):
        return []
    if many and field_path != "data.target_column":  # inputs: every form data.sequence_columns accepts
        series = sequences.read_sequences(split, columns)
    elif many:
        values = split[columns[0]]
        if (row := next((i for i, v in enumerate(values) if not isinstance(v, (list, tuple))), None)) is not None:
            raise DataError(
                field_path,
                f"a whole series per row (data.rows): row {row} of column {columns[0]!r} holds {values[row]!r}, "
                "not a list",
            )
        series = [encoders.as_series(v, columns[0], field_path) for v in values]
    else:
        series = [np.concatenate([encoders.as_series(split[c], c, field_path) for c in columns], axis=1)]
    column = ", ".join(columns)
    if (bad := sum(int((~np.isfinite(s)).any()) for s in series)) > 0:
        raise DataError(
            field_path, f"{bad} series of column {column!r} hold a NaN or infinite value; fill or drop them"
        )
    return series


def cut(series: list[np.ndarray], window: int) -> list[np.ndarray]:
    """Each series whole (window 0) or as windows of `window` steps with stride window // 2."""
    if not window:
        return series
    return [s[i : i + window] for s in series for i in range(0, len(s) - window + 1, max(1, window // 2))]


def pad(series: list[np.ndarray], dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 (N, T, D) right-padded with zeros, and int64 (N,) lengths."""
    lengths = torch.tensor([len(s) for s in series], dtype=torch.int64)
    out = torch.zeros(len(series), int(lengths.max()) if len(series) else 0, dim)
    for i, s in enumerate(series):
        out[i, : len(s)] = torch.from_numpy(s)
    return out, lengths


def prepare_series(splits: dict[str, Dataset], cfg: DataConfig, seed: int) -> TaskData:
    """(N, T, D_in) inputs and (N, T, D_out) per-step targets per split (one sequence per split for one series)."""
    columns, input_field = (
        (cfg.sequence_columns, sequences.FIELD) if cfg.sequence_columns else ([FEATURES_COLUMN], "data.name")
    )
    for column in columns:
        check_columns(splits, column, input_field)
    check_columns(splits, cfg.target_column, "data.target_column")
    check_not_an_input(cfg, cfg.target_column, "data.target_column")  # y[t] from y[t]: NRMSE 0.04 on a leak
    many = rows_are_series(splits["train"], columns[0], cfg.target_column, cfg.rows)
    inputs = {n: read_series(s, columns, many, input_field) for n, s in splits.items()}
    targets = {n: read_series(s, [cfg.target_column], many, "data.target_column") for n, s in splits.items()}
    for n in SPLITS:
        if any(len(u) != len(y) for u, y in zip(inputs[n], targets[n])):
            raise DataError(
                "data.target_column", f"split {n!r}: a row's target series and input series differ in length"
            )
    d_in, d_out = inputs["train"][0].shape[1], targets["train"][0].shape[1]
    meta: dict = {"series": "many" if many else "one"}
    if cfg.normalize:
        stats = encoders.fit_standardizer(np.concatenate(targets["train"]))
        targets = {n: [encoders.standardize(y, stats) for y in ys] for n, ys in targets.items()}
        meta.update(normalization={"target": stats}, target_mean=stats["mean"], target_std=stats["std"])
    parts = {}
    for n in SPLITS:
        u, y = cut(inputs[n], cfg.window), cut(targets[n], cfg.window)
        if cfg.window and inputs[n] and not u:
            raise DataError("data.window", f"a window of {cfg.window} steps is longer than every {n} series; lower it")
        x, lengths = pad(u, d_in)
        parts[n] = Split(x, lengths, pad(y, d_out)[0])
    return TaskData(cfg.task, **parts, input_size=d_in, vocab_size=0, output_size=d_out, meta=meta)


class SeriesRegression(Regression):
    """The target series at every valid step past the warm-up, from the input series up to that step."""

    name = "series"
    per_step = True
    causal = True  # a map of the input series up to each step (a system's response): later inputs are not its input
    chronological = True
    tbptt = True
    prepare = staticmethod(prepare_series)
    settings = ("window", "rows")

    def select(self, outputs, targets, lengths, warmup):
        mask = step_mask(outputs, lengths, warmup)
        return outputs[mask], targets[mask]
