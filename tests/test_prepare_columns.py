"""Preparation at column speed gives the data the row-by-row way gave, value by value.

The way before: preparers read each `Dataset` column lazily, row by row, and `pad_ids` copied one tensor per row.
Now `load_prepared` hands them `splitting.Columns` (each column of the dataset read once, then its rows picked) and
`pad_ids` copies once.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rnnlab.config import DataConfig
from rnnlab.data import encoders, sources, splitting
from rnnlab.data.taskdata import SPLITS
from rnnlab.tasks import TASKS


def pad_ids_row_by_row(sequences, fill=0):
    """`encoders.pad_ids` as it was: one tensor per row."""
    lengths = torch.tensor([len(seq) for seq in sequences], dtype=torch.int64)
    width = int(lengths.max()) if len(sequences) else 0
    out = torch.full((len(sequences), width), fill, dtype=torch.int64)
    for i, seq in enumerate(sequences):
        out[i, : len(seq)] = torch.as_tensor(seq, dtype=torch.int64)
    return out, lengths


@pytest.mark.parametrize("fill", [0, -100])
def test_pad_ids_matches_the_row_by_row_copy(fill):
    rng = np.random.default_rng(0)
    sequences = [rng.integers(0, 50, size=rng.integers(0, 9)).tolist() for _ in range(300)] + [[]]
    for given in (sequences, [], [[]], [[7]]):
        new, old = encoders.pad_ids(given, fill), pad_ids_row_by_row(given, fill)
        assert new[0].dtype == old[0].dtype == torch.int64 and new[1].dtype == torch.int64
        assert torch.equal(new[0], old[0]) and torch.equal(new[1], old[1])


def write_rows(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def cases(tmp_path):
    """(config, local file) for each task whose preparer reads local columns."""
    rng = np.random.default_rng(1)
    words = ["the", "cat", "sat", "on", "a", "mat", "dog"]
    rows = [
        {
            "text": " ".join(rng.choice(words, size=rng.integers(1, 8))),
            "label": ["neg", "pos", "mid"][i % 3],
            "tokens": list(rng.choice(words, size=3)),
            "tags": ["D", "N", "V"],
            "inputs": rng.normal(size=(int(rng.integers(2, 6)), 2)).round(6).tolist(),
            "target": float(rng.normal()),
        }
        for i in range(90)
    ]
    path = write_rows(tmp_path / "rows.jsonl", rows)
    series = write_rows(tmp_path / "series.jsonl", [{"target": float(np.sin(i / 5))} for i in range(200)])
    local = {"source": "local", "name": str(path)}
    return [
        DataConfig(**local, task="classification", tokenizer="word"),
        DataConfig(**local, task="classification", text_column="inputs"),  # the `inputs` feature column wins
        DataConfig(**local, task="regression"),
        DataConfig(**local, task="tagging", label_column="tags"),
        DataConfig(**local, task="lm", tokenizer="char"),
        DataConfig(source="local", name=str(series), task="forecast", window=10),
    ]


def assert_same(a, b):
    assert (a.input_size, a.vocab_size, a.output_size, a.vocab) == (b.input_size, b.vocab_size, b.output_size, b.vocab)
    assert json.dumps(a.meta, sort_keys=True) == json.dumps(b.meta, sort_keys=True)
    for name in SPLITS:
        for field in ("inputs", "lengths", "targets"):
            x, y = getattr(getattr(a, name), field), getattr(getattr(b, name), field)
            assert x.dtype == y.dtype and x.shape == y.shape, (name, field)
            assert torch.equal(x, y), (name, field)


def test_columns_prepare_what_lazy_columns_prepared(tmp_path):
    for cfg in cases(tmp_path):
        task = TASKS[cfg.task]
        raw = sources.load_local(cfg)
        row_by_row = task.prepare(splitting.split_raw(raw, cfg, 0, task), cfg, 0)
        columns = task.prepare(splitting.split_columns(raw, cfg, 0, task), cfg, 0)
        assert len(row_by_row.train) > 0
        assert_same(columns, row_by_row)


def test_columns_read_each_column_once_and_list_its_names(tmp_path):
    cfg = cases(tmp_path)[0]
    split = sources.load_local(cfg)["train"].select([3, 1, 2])
    view = splitting.Columns(split)
    assert len(view) == 3 and view.column_names == split.column_names
    assert view["label"] == [split[i]["label"] for i in range(3)]
    assert view["label"] is view["label"]  # materialised once
    assert splitting.Columns(split.select([]))["label"] == []


def test_columns_give_rows_as_the_dataset_does(tmp_path):
    dataset = sources.load_local(cases(tmp_path)[0])["train"]
    split = dataset.select([5, 0])
    view, cut = splitting.Columns(split), splitting.Columns(dataset, np.array([5, 0]))
    assert view[0] == split[0] == cut[0] and view[1]["label"] == split[1]["label"] == cut[1]["label"]
    assert len(cut) == 2 and cut["text"] == split["text"][:]


def test_splits_cut_from_one_dataset_read_each_column_once(tmp_path):
    cfg = cases(tmp_path)[0]
    splits = splitting.split_columns(sources.load_local(cfg), cfg, 0, TASKS[cfg.task])
    for split in splits.values():
        split["label"]
    assert splits["train"].whole is splits["test"].whole and len(splits["train"].whole) == 1
    assert sum(len(s) for s in splits.values()) == 90
