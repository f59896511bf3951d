"""Splits from separate files whose ClassLabel names differ in order are matched by name: a test row written as
"pos" is scored as "pos", whatever id the test file gave it. Before, every split was read with the first file's
ClassLabel (datasets' parquet builder), so test's id 0 = "pos" counted as train's id 0 = "neg", silently."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tagger_data import tagger_config, tags_parquet

from rnnlab.cli import main
from rnnlab.config import DataConfig
from rnnlab.data import DataError
from rnnlab.tasks import load_task_data

REVIEWS = str(Path(__file__).resolve().parent.parent / "experiments" / "text_reviews_csv.py")
TEXTS = [f"review {i} is {'good' if i % 2 else 'bad'}" for i in range(60)]
MEANT = ["pos" if i % 2 else "neg" for i in range(60)]  # what each row's label is, by name


def named_parquet(path: Path, names: list[str], labels: list[str], texts: list[str] = TEXTS) -> str:
    """A parquet file whose `label` column is a ClassLabel of `names`, each row's id the one of its label's name."""
    from datasets import ClassLabel, Dataset, Features, Value

    features = Features({"text": Value("string"), "label": ClassLabel(names=names)})
    rows = {"text": texts[: len(labels)], "label": [names.index(label) for label in labels]}
    Dataset.from_dict(rows, features=features).to_parquet(str(path))
    return str(path)


def classify(name: str, **fields):
    cfg = DataConfig(source="local", name=name, task="classification", tokenizer="word", **fields)
    return load_task_data(cfg, 0)


def by_name(data, split) -> list[str]:
    return [data.meta["labels"][i] for i in getattr(data, split).targets.tolist()]


@pytest.mark.parametrize("train_first", [True, False])
def test_test_and_val_ids_are_read_by_their_own_classlabel_names(tmp_path, train_first):
    """Before: test and validation were read with train's names: every one of their labels flipped (and with the
    test file first in the mapping, train was read with test's)."""
    train = named_parquet(tmp_path / "train.parquet", ["neg", "pos"], MEANT[:40])
    val = named_parquet(tmp_path / "val.parquet", ["pos", "neg"], MEANT[40:50], TEXTS[40:50])
    test = named_parquet(tmp_path / "test.parquet", ["pos", "neg"], MEANT[50:], TEXTS[50:])
    mapping = [f"train={train}", f"validation={val}", f"test={test}"]
    name = ",".join(mapping if train_first else mapping[::-1])
    data = classify(name, val_split="validation", test_split="test")
    assert data.meta["labels"] == ["neg", "pos"]  # train's label space: its ClassLabel's order
    assert by_name(data, "train") == MEANT[:40]
    assert by_name(data, "val") == MEANT[40:50]
    assert by_name(data, "test") == MEANT[50:]
    assert data.test.targets.tolist() == [1 if label == "pos" else 0 for label in MEANT[50:]]


def test_a_run_scores_test_on_labels_matched_by_name(tmp_path, capsys):
    """End to end: a model that learns 'good' -> pos on train scores 1.0 on a test file that numbers its classes the
    other way round (before: 0.0, every test label flipped)."""
    train = named_parquet(tmp_path / "train.parquet", ["neg", "pos"], MEANT[:40])
    test = named_parquet(tmp_path / "test.parquet", ["pos", "neg"], MEANT[40:], TEXTS[40:])
    overrides = ["train.epochs=4", "tracking.mode=disabled", "data.test_split=test"]
    out = tmp_path / "run"
    code = main(["run", REVIEWS, "--out", str(out), "--set", *overrides, f"data.name=train={train},test={test}"])
    assert code == 0, capsys.readouterr().err[-2000:]
    assert json.loads((out / "labels.json").read_text()) == {"labels": ["neg", "pos"]}
    result = json.loads((out / "result.json").read_text())
    assert result["val/acc"] == 1.0, result  # the model predicts the rule on rows cut from train; test must agree
    assert result["test/acc"] == 1.0, result


def test_a_test_name_train_lacks_is_refused_by_name(tmp_path):
    train = named_parquet(tmp_path / "train.parquet", ["neg", "pos"], MEANT[:40])
    test = named_parquet(tmp_path / "test.parquet", ["pos", "neu", "neg"], ["pos", "neu", "neg"] * 4)
    with pytest.raises(DataError, match=r"'test' has labels never seen in train: neu; train labels: neg \(0\), pos"):
        classify(f"train={train},test={test}", test_split="test", val_fraction=0.0)


def test_files_of_one_split_that_name_their_classes_differently_are_refused(tmp_path):
    (tmp_path / "train").mkdir()
    one = named_parquet(tmp_path / "train" / "a.parquet", ["neg", "pos"], MEANT[:30])
    two = named_parquet(tmp_path / "train" / "b.parquet", ["pos", "neg"], MEANT[30:], TEXTS[30:])
    test = named_parquet(tmp_path / "test.parquet", ["neg", "pos"], MEANT[:10])
    with pytest.raises(DataError, match="split 'train': .*a.parquet names the classes of column 'label'"):
        classify(f"train={tmp_path / 'train' / '*.parquet'},test={test}", test_split="test")
    assert one and two


def test_tagger_tags_are_matched_by_name(tmp_path):
    """A tagger's List(ClassLabel) the same way: test's id 0 is I-PER here, O in train."""
    rows = {"train": [["O", "B-PER", "I-PER"]] * 20, "test": [["B-PER", "I-PER", "O"], ["O", "O", "B-PER"]] * 3}
    order = {"train": ["O", "B-PER", "I-PER"], "test": ["I-PER", "O", "B-PER"]}
    for split, tags in rows.items():
        ids = [[order[split].index(t) for t in row] for row in tags]
        tags_parquet(tmp_path / f"{split}.parquet", order[split], ids, [["a", "b", "c"]] * len(tags))
    cfg = tagger_config(f"train={tmp_path / 'train.parquet'},test={tmp_path / 'test.parquet'}", test_split="test")
    data = load_task_data(cfg, 0)
    assert data.meta["labels"] == order["train"]
    got = [[data.meta["labels"][t] for t in row if t >= 0] for row in data.test.targets.tolist()]
    assert got == rows["test"]


def test_a_plain_split_next_to_a_classlabel_split(tmp_path):
    """A plain split is matched to a ClassLabel one by what it holds: strings by name, ints as the ClassLabel's ids
    (as datasets casts them); a ClassLabel split next to a plain string train by its names."""
    from datasets import ClassLabel, Dataset, Features, Value

    from rnnlab.data.prepare import prepare_classification

    def split(labels, feature):
        features = Features({"text": Value("string"), "label": feature})
        return Dataset.from_dict({"text": TEXTS[: len(labels)], "label": labels}, features=features)

    cfg = DataConfig(source="local", name="unused", task="classification", tokenizer="word")
    named = split([0, 1] * 10, ClassLabel(names=["neg", "pos"]))
    words = split(["pos", "neg", "pos"], Value("string"))
    ids = split([1, 0, 1], Value("int64"))
    data = prepare_classification({"train": named, "val": words, "test": ids}, cfg, 0)
    assert by_name(data, "val") == by_name(data, "test") == ["pos", "neg", "pos"]
    plain = split(["neg", "pos"] * 10, Value("string"))
    reversed_names = split([0, 1, 0], ClassLabel(names=["pos", "neg"]))
    data = prepare_classification({"train": plain, "val": reversed_names, "test": words}, cfg, 0)
    assert by_name(data, "val") == by_name(data, "test") == ["pos", "neg", "pos"]
