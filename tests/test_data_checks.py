"""Data that would make results meaningless is refused before any work: exit 2, the field and the rows named, no
run folder written."""

from pathlib import Path

import pytest

from rnnlab.cli import main

ROOT = Path(__file__).resolve().parent.parent
REVIEWS = str(ROOT / "experiments" / "text_reviews_csv.py")
SHRINK = ["train.epochs=1", "tracking.mode=disabled"]
ROWS = [f"review number {i} is {'good' if i % 2 else 'bad'}" for i in range(40)]


def csv(path: Path, labels: list[str], header: str = "text,label") -> str:
    path.write_text(header + "\n" + "".join(f"{text},{label}\n" for text, label in zip(ROWS, labels)))
    return str(path)


def rows_file(path: Path, kind: str, blank: int) -> str:
    """ROWS with labels 0/1 as a CSV or JSON-lines file, row `blank` without its text."""
    texts = ["" if i == blank else text for i, text in enumerate(ROWS)]
    path = path.with_suffix(f".{kind}")
    if kind == "csv":
        path.write_text("text,label\n" + "".join(f"{text},{i % 2}\n" for i, text in enumerate(texts)))
    else:
        path.write_text("".join(f'{{"text": "{text}", "label": {i % 2}}}\n' for i, text in enumerate(texts)))
    return str(path)


CASES = {
    "empty_labels": (lambda p: csv(p, ["good", "", *["bad", "good"] * 19]), [], "data.label_column", "no label"),
    "single_class": (lambda p: csv(p, ["good"] * 40), [], "data.label_column", "single class"),
    "float_labels": (
        lambda p: csv(p, [str(i / 7) for i in range(40)]),
        [],
        "data.label_column",
        "data.task=regression",
    ),
    # an empty CSV cell is None: list(None) raised TypeError with a traceback
    "empty_text_cell": (lambda p: rows_file(p, "csv", 3), [], "data.text_column", "no 'text' (empty or missing)"),
    # "" has no tokens: torch's pack_padded_sequence raised RuntimeError with a traceback
    "empty_text": (lambda p: rows_file(p, "jsonl", 3), [], "data.text_column", "empty 'text' (no tokens)"),
    "empty_val": (lambda p: csv(p, ["good", "bad"] * 20), ["data.val_fraction=0.01"], "data.val_fraction", "empty"),
    "empty_test": (lambda p: csv(p, ["good", "bad"] * 20), ["data.test_fraction=0.01"], "data.test_fraction", "empty"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_data_is_refused_before_work(case, tmp_path, capsys):
    make, extra, field, words = CASES[case]
    data = make(tmp_path / "data.csv")
    out = tmp_path / "run"
    code = main(["run", REVIEWS, "--out", str(out), "--set", *SHRINK, f"data.name={data}", *extra])
    err = capsys.readouterr().err
    assert code == 2, err[-2000:]
    assert field in err and words in err and "Traceback" not in err
    assert not out.exists()


def test_nan_regression_target_is_refused(tmp_path, capsys):
    rows = "".join(f"w{i % 5} w{i % 3},{'nan' if i in (3, 8) else i * 0.5}\n" for i in range(40))
    data = tmp_path / "data.csv"
    data.write_text("a,target\n" + rows)
    experiment = tmp_path / "regress.py"
    experiment.write_text(
        "from rnnlab.config import Config, DataConfig\n"
        f"config = Config(metric='val/rmse', data=DataConfig(source='local', name={str(data)!r}, task='regression',"
        " text_column='a', target_column='target', tokenizer='word'))\n"
    )
    out = tmp_path / "run"
    code = main(["run", str(experiment), "--out", str(out), "--set", *SHRINK])
    err = capsys.readouterr().err
    assert code == 2 and "data.target_column" in err and "column 'target': 2 of 40 rows hold a NaN" in err, err
    assert not out.exists()


def test_numbers_as_text_are_refused(tmp_path, capsys):
    data = tmp_path / "data.csv"
    data.write_text("text,label\n" + "".join(f"{i},{'good' if i % 2 else 'bad'}\n" for i in range(40)))
    out = tmp_path / "run"
    code = main(["run", REVIEWS, "--out", str(out), "--set", *SHRINK, f"data.name={data}"])
    err = capsys.readouterr().err
    assert code == 2 and "data.text_column" in err and "int values" in err and "Traceback" not in err
    assert not out.exists()


def test_window_longer_than_the_series_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "run",
            str(ROOT / "experiments" / "esn_mackey_glass.py"),
            "--out",
            str(out),
            "--set",
            *SHRINK,
            "data.window=100000",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "data.window" in err and "longer than" in err
    assert not out.exists()


# --- no validation or test split asked for ------------------------------------------------------------------------

DIGITS = str(ROOT / "experiments" / "digits_lstm.py")
TINY = ["train.epochs=3", "train.max_batches=2", "tracking.mode=disabled", "model.hidden_size=8"]


def test_a_val_metric_without_a_val_split_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["run", DIGITS, "--out", str(out), "--set", *TINY, "data.val_fraction=0"])
    err = capsys.readouterr().err
    assert code == 2 and "metric" in err and "data.val_fraction" in err and "Traceback" not in err, err
    assert not out.exists()


def test_no_val_split_selects_no_epoch_and_no_test_split_reports_no_test_metrics(tmp_path):
    """With val_fraction=0 the model is the last epoch's (no selection on nothing) and no val/* is reported; with
    test_fraction=0 there is no test/* at all, instead of metrics computed on no rows."""
    import json

    out = tmp_path / "run"
    code = main(
        [
            "run",
            DIGITS,
            "--out",
            str(out),
            "--set",
            *TINY,
            "data.val_fraction=0",
            "data.test_fraction=0",
            "metric=train/acc",
        ]
    )
    assert code == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert all(not k.startswith("val/") for r in rows for k in r)
    result = json.loads((out / "result.json").read_text())
    assert result["best_epoch"] == 3 and result["best/train/acc"] == rows[-1]["train/acc"]
    assert not any(k.startswith(("val/", "test/")) for k in result), result


# --- NaN and infinite values: every float column a task reads -----------------------------------------------------


def experiment(tmp_path: Path, data: Path, task: str, **columns: str) -> str:
    path = tmp_path / f"{task}.py"
    extra = "".join(f", {k}={v!r}" for k, v in columns.items())
    path.write_text(
        "from rnnlab.config import Config, DataConfig\n"
        f"config = Config(data=DataConfig(source='local', name={str(data)!r}, task={task!r}{extra}))\n"
    )
    return str(path)


def series_csv(path: Path, bad: dict[int, str]) -> Path:
    """A 200-step sine series, `bad` steps replaced (an empty cell is read as NaN)."""
    import math

    path.write_text("t,value\n" + "".join(f"{i},{bad.get(i, math.sin(i / 5))}\n" for i in range(200)))
    return path


def regression_csv(path: Path, bad: dict[int, str]) -> Path:
    path.write_text("text,value\n" + "".join(f"w{i % 5} w{i % 3},{bad.get(i, i / 2)}\n" for i in range(40)))
    return path


def features_json(path: Path, bad_rows: set[int], task: str) -> Path:
    import json

    rows = []
    for i in range(40):
        inputs = [[float((i + t) % 3), 1.0] for t in range(4)]
        if i in bad_rows:
            inputs[2][1] = float("nan")
        rows.append({"inputs": inputs, "label": i % 2} if task == "classification" else {"inputs": inputs[0]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


NON_FINITE = {
    # a forecast series: two empty cells (NaN) in train, an inf later; targets and inputs both come from it
    "forecast_nan": (
        lambda p: experiment(
            p, series_csv(p / "s.csv", {10: "", 11: "", 50: "inf"}), "forecast", target_column="value"
        ),
        "data.target_column",
        "column 'value': 3 of 200 rows",
    ),
    # a regression target that is infinite (NaN is tested above)
    "regression_inf": (
        lambda p: experiment(p, regression_csv(p / "r.csv", {5: "-inf"}), "regression", target_column="value"),
        "data.target_column",
        "column 'value': 1 of 40 rows",
    ),
    # feature sequences (the `inputs` column) of a classifier: NaN in two rows would make every loss NaN
    "classification_features_nan": (
        lambda p: experiment(p, features_json(p / "f.jsonl", {3, 7}, "classification"), "classification"),
        "data.sequence_columns",  # read as a sequence column (275f265): the first bad row is named
        "column 'inputs', row 3",
    ),
}


@pytest.mark.parametrize("case", list(NON_FINITE))
def test_non_finite_values_are_refused_before_work(case, tmp_path, capsys):
    """A NaN or infinity in a column a task trains on: exit 2 naming the field, the column and the rows; no run
    folder and no cached data left behind."""
    import os

    make, field, words = NON_FINITE[case]
    path = make(tmp_path)
    out = tmp_path / "run"
    metric = ["metric=val/acc", "mode=max"] if case.startswith("classification") else ["metric=val/rmse"]
    code = main(["run", path, "--out", str(out), "--set", *SHRINK, *metric])
    err = capsys.readouterr().err
    assert code == 2, err[-2000:]
    assert field in err and words in err and "NaN or infinite" in err and "Traceback" not in err, err
    assert not out.exists()
    assert not list(Path(os.environ["RNNLAB_CACHE"]).rglob("*.pt"))  # nothing prepared was cached


def test_nan_recall_pattern_is_refused(tmp_path, capsys):
    """A stored pattern holding a NaN is refused, not silently read as a -1 (NaN > 0 is False)."""
    import json

    rng = __import__("random").Random(0)
    rows = [[rng.choice([-1.0, 1.0]) for _ in range(16)] for _ in range(6)]
    rows[4][9] = float("nan")
    data = tmp_path / "patterns.jsonl"
    data.write_text("".join(json.dumps({"inputs": r}) + "\n" for r in rows))
    path = experiment(tmp_path, data, "recall")
    out = tmp_path / "run"
    code = main(["run", path, "--out", str(out), "--set", *SHRINK, "model.family=hopfield", "metric=val/loss"])
    err = capsys.readouterr().err
    assert code == 2 and "data.name" in err, err
    assert "column 'inputs': 1 of 6 rows hold a NaN or infinite value (train 1)" in err, err
    assert not out.exists()


def test_labels_mixing_numbers_and_a_word_are_said(tmp_path, caplog):
    """0/1 labels with one stray word read as text: three classes, which a user should hear of."""
    import logging

    from rnnlab.data.classlabels import fit_label_map

    with caplog.at_level(logging.WARNING, logger="rnnlab.data.classlabels"):
        assert len(fit_label_map(["0", "1", "neg", "1"], "label_column")) == 3
        fit_label_map(["good", "bad"], "label_column")
        fit_label_map([0, 1], "label_column")
    [record] = caplog.records
    assert "data.label_column" in record.message and "'neg'" in record.message and "3 in all" in record.message
