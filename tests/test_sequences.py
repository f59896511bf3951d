"""Numeric sequence inputs (`data.sequence_columns`): each accepted form, several columns, variable lengths, and
a clear DataError naming the column and the accepted forms for each wrong one."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rnnlab.config import Config, ConfigError, DataConfig
from rnnlab.data import DataError
from rnnlab.registries import apply_overrides
from rnnlab.tasks import load_task_data


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNLAB_CACHE", str(tmp_path / "cache"))


def rows(n=40, seed=0):
    """Rows of variable length 2..6 with a label that depends on the sequences' sign."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        t = int(rng.integers(2, 7))
        out.append({"x": rng.normal(size=t).round(4), "v": rng.normal(size=(t, 2)).round(4), "label": i % 2})
    return out


def write_jsonl(path, items):
    path.write_text("".join(json.dumps(r) + "\n" for r in items))
    return str(path)


def local(path, task="classification", **overrides):
    return DataConfig(source="local", name=str(path), task=task, val_fraction=0, test_fraction=0, **overrides)


def test_list_column_of_numbers_variable_lengths(tmp_path):
    data_rows = rows()
    path = write_jsonl(tmp_path / "x.jsonl", [{"x": r["x"].tolist(), "label": r["label"]} for r in data_rows])
    data = load_task_data(local(path, sequence_columns=["x"]), 0)
    assert data.input_size == 1 and data.vocab_size == 0 and data.train.inputs.dtype == torch.float32
    assert data.train.lengths.tolist() == [len(r["x"]) for r in data_rows]
    for i, r in enumerate(data_rows):  # values as written, zero padding past each row's length
        np.testing.assert_array_equal(data.train.inputs[i, : len(r["x"]), 0].numpy(), r["x"].astype(np.float32))
        assert (data.train.inputs[i, len(r["x"]) :] == 0).all()


def test_list_of_vectors_column(tmp_path):
    data_rows = rows()
    path = write_jsonl(tmp_path / "v.jsonl", [{"v": r["v"].tolist(), "label": r["label"]} for r in data_rows])
    data = load_task_data(local(path, sequence_columns=["v"]), 0)
    assert data.input_size == 2
    np.testing.assert_array_equal(
        data.train.inputs[3, : len(data_rows[3]["v"])].numpy(), data_rows[3]["v"].astype(np.float32)
    )


@pytest.mark.parametrize("separator", [" ", ",", ", "])
def test_csv_text_of_delimited_numbers(tmp_path, separator):
    data_rows = rows()
    lines = ["x,label"] + [f'"{separator.join(str(v) for v in r["x"])}",{r["label"]}' for r in data_rows]
    (tmp_path / "x.csv").write_text("\n".join(lines) + "\n")
    data = load_task_data(local(tmp_path / "x.csv", sequence_columns=["x"]), 0)
    assert data.train.lengths.tolist() == [len(r["x"]) for r in data_rows]
    np.testing.assert_array_equal(
        data.train.inputs[5, : len(data_rows[5]["x"]), 0].numpy(), data_rows[5]["x"].astype(np.float32)
    )


def test_csv_lists_as_pandas_writes_them(tmp_path):
    """A DataFrame of list cells saved with `to_csv` holds "[0.1, 0.2]" and "[[0.1, 1.0], ...]": refused before as
    not a numeric sequence; now read as the lists they are. numpy's print of a long array drops its middle ("...")
    and stays refused."""
    import pandas as pd

    data_rows = rows()
    frame = pd.DataFrame({"x": [r["x"].tolist() for r in data_rows], "v": [r["v"].tolist() for r in data_rows]})
    frame.assign(label=[r["label"] for r in data_rows]).to_csv(tmp_path / "lists.csv", index=False)
    data = load_task_data(local(tmp_path / "lists.csv", sequence_columns=["x", "v"]), 0)
    assert data.input_size == 3 and data.train.lengths.tolist() == [len(r["x"]) for r in data_rows]
    for i in (0, 5):
        steps = np.concatenate([data_rows[i]["x"][:, None], data_rows[i]["v"]], axis=1).astype(np.float32)
        np.testing.assert_array_equal(data.train.inputs[i, : len(steps)].numpy(), steps)
    long = pd.DataFrame({"x": [str(np.arange(2000.0))] * 4, "label": [0, 1, 0, 1]})
    long.to_csv(tmp_path / "printed.csv", index=False)
    assert "..." in (tmp_path / "printed.csv").read_text()
    refused(local(tmp_path / "printed.csv", sequence_columns=["x"]), "is not a numeric sequence")
    # and read as text they are numbers, not tokens (before: the characters '[', '0', '.', ... as a vocabulary)
    assert refused(local(tmp_path / "lists.csv", text_column="x"), "real numbers").field == "data.text_column"


def test_several_columns_are_stacked_per_step_and_regression_reads_them(tmp_path):
    data_rows = rows()
    items = [{"x": r["x"].tolist(), "v": r["v"].tolist(), "y": float(r["x"].sum())} for r in data_rows]
    path = write_jsonl(tmp_path / "xv.jsonl", items)
    data = load_task_data(local(path, "regression", sequence_columns=["x", "v"], target_column="y"), 0)
    assert data.input_size == 3
    expected = np.concatenate([data_rows[7]["x"][:, None], data_rows[7]["v"]], axis=1).astype(np.float32)
    np.testing.assert_array_equal(data.train.inputs[7, : len(expected)].numpy(), expected)


def test_inputs_column_is_read_without_naming_it(tmp_path):
    path = write_jsonl(tmp_path / "i.jsonl", [{"inputs": r["x"].tolist(), "label": r["label"]} for r in rows()])
    assert load_task_data(local(path), 0).input_size == 1


def test_max_length_truncates_numeric_sequences(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"x": r["x"].tolist(), "label": r["label"]} for r in rows()])
    assert load_task_data(local(path, sequence_columns=["x"], max_length=3), 0).train.lengths.max() == 3


def refused(cfg, match: str) -> DataError:
    with pytest.raises(DataError, match=match) as err:
        load_task_data(cfg, 0)
    return err.value


def test_wrong_forms_name_the_column_and_the_accepted_forms(tmp_path):
    base = [{"x": [0.1, 0.2], "label": i % 2} for i in range(10)]
    cases = {
        "words": [{**r, "x": "0.1 zero"} for r in base],
        "nested": [{**r, "x": [[[0.1]]]} for r in base],
        "ragged_vectors": [{**r, "x": [[0.1, 0.2], [0.3]]} for r in base],
        "mapping": [{**r, "x": {"a": 0.5}} for r in base],
        "booleans": [{**r, "x": True} for r in base],
    }
    for name, items in cases.items():
        err = refused(local(write_jsonl(tmp_path / f"{name}.jsonl", items), sequence_columns=["x"]), "'x'")
        assert err.field == "data.sequence_columns", name
        assert "accepted forms" in err.message and "separated by spaces or commas" in err.message, name


def test_widths_lengths_and_missing_columns_are_refused(tmp_path):
    mixed = [{"x": [[0.1, 0.2]] if i else [[0.1]], "label": i % 2} for i in range(10)]
    err = refused(local(write_jsonl(tmp_path / "w.jsonl", mixed), sequence_columns=["x"]), "features per step")
    assert err.field == "data.sequence_columns"
    unequal = [{"x": [0.1, 0.2], "z": [0.1], "label": i % 2} for i in range(10)]
    path = write_jsonl(tmp_path / "l.jsonl", unequal)
    assert refused(local(path, sequence_columns=["x", "z"]), "differ in length").field == "data.sequence_columns"
    err = refused(local(path, sequence_columns=["nope"]), "no column 'nope'")
    assert err.field == "data.sequence_columns" and "x, z, label" in err.message
    empty = [{"x": [0.1, 0.2] if i != 3 else [], "label": i % 2} for i in range(10)]  # torch's packing raised
    err = refused(local(write_jsonl(tmp_path / "e.jsonl", empty), sequence_columns=["x"]), "row 3")
    assert err.field == "data.sequence_columns" and "empty sequence" in err.message
    nan = [{"x": [0.1, float("nan")], "label": i % 2} for i in range(10)]
    assert refused(local(write_jsonl(tmp_path / "n.jsonl", nan), sequence_columns=["x"]), "NaN").field == (
        "data.sequence_columns"
    )


def test_numbers_are_not_silently_read_as_tokens(tmp_path):
    text = tmp_path / "t.csv"
    text.write_text("x,label\n" + "".join(f'"0.{i} 1.5 -2.25",{i % 2}\n' for i in range(10)))
    err = refused(local(text, text_column="x"), "real numbers")
    assert err.field == "data.text_column" and "data.sequence_columns=x" in err.message
    floats = write_jsonl(tmp_path / "f.jsonl", [{"tokens": [0.5, 1.5], "label": [0, 1]} for _ in range(10)])
    err = refused(local(floats, "tagging"), "real numbers")
    assert err.field == "data.tokens_column"
    err = refused(local(text, tokens_column="x"), "tagging only")  # classification does not read tokens_column
    assert err.field == "data.tokens_column" and "data.sequence_columns" in err.message


def test_a_missing_text_column_points_at_sequence_columns(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"x": [0.1], "label": i % 2} for i in range(10)])
    err = refused(local(path), "no column 'text'")
    assert err.field == "data.text_column" and "data.sequence_columns" in err.message


@pytest.mark.parametrize("bad", ["0.1 zero 0.3", "0.1 nan 0.3", "0.1 0.2"])
def test_a_bad_cell_is_named_by_its_row_in_the_file_not_in_the_shuffled_split(bad, tmp_path):
    """Before: the row was the one's place in the shuffled train split (a CSV's row 9 reported as row 7), and a NaN
    cell was only counted per split, without its row."""
    lines = ["x,y,label"] + [f'"0.1 0.2 0.3","1 2 3",{i % 2}' for i in range(40)]
    lines[1 + 23] = f'"{bad}","1 2 3",1'
    (tmp_path / "s.csv").write_text("\n".join(lines) + "\n")
    cfg = DataConfig(source="local", name=str(tmp_path / "s.csv"), task="classification", sequence_columns=["x", "y"])
    err = refused(cfg, "row 23 ")
    assert err.field == "data.sequence_columns"


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"sequence_columns": ["x", "label"]}, "data.label_column"),  # before: test/acc 1.0, read off the input
        ({"task": "regression", "sequence_columns": ["x", "label"], "target_column": "label"}, "data.target_column"),
        ({"task": "series", "sequence_columns": ["x", "label"], "target_column": "label"}, "data.target_column"),
    ],
)
def test_what_the_model_predicts_cannot_be_one_of_its_inputs(overrides, field, tmp_path):
    items = [{"x": [0.1, 0.2], "label": i % 2} for i in range(20)]
    cfg = local(write_jsonl(tmp_path / "d.jsonl", items), **{"sequence_columns": ["x"], **overrides})
    assert refused(cfg, "also an input").field == field


def test_an_input_column_named_twice_is_refused():
    with pytest.raises(ConfigError, match="twice") as err:
        apply_overrides(Config(), {"data.sequence_columns": ["x", "x"]})
    assert err.value.field == "data.sequence_columns"  # before: x stacked twice per step, silently


@pytest.mark.parametrize("task", ["forecast", "lm", "tagging"])
def test_a_task_that_reads_no_numeric_inputs_refuses_sequence_columns(task, tmp_path):
    """Before: forecast with data.sequence_columns=u ran univariate on data.target_column, u silently unused."""
    items = [{"u": 0.1 * i, "target": 0.2 * i, "text": "ab", "tokens": ["a"], "label": [0]} for i in range(20)]
    cfg = local(write_jsonl(tmp_path / "d.jsonl", items), task=task, sequence_columns=["u"])
    err = refused(cfg, f"data.task={task} reads")
    assert err.field == "data.sequence_columns" and "data.task=series" in err.message
