"""A local file's values arrive as written: a word that pandas would read as a missing value ("NA", "null", "None")
is kept; only an empty cell is missing; a label set that is probably a mistake is refused or said, on every run."""

from __future__ import annotations

from pathlib import Path

import pytest
from tagger_data import tagger_config, tags_parquet

from rnnlab.cli import main
from rnnlab.config import DataConfig
from rnnlab.data import DataError
from rnnlab.tasks import load_task_data

REVIEWS = str(Path(__file__).resolve().parent.parent / "experiments" / "text_reviews_csv.py")
SHRINK = ["train.epochs=1", "tracking.mode=disabled"]
TEXTS = [f"review {i} is {'good' if i % 2 else 'bad'}" for i in range(60)]


def labelled_csv(path: Path, labels: list[str], texts: list[str] = TEXTS, header: str = "text,label") -> str:
    path.write_text(header + "\n" + "".join(f"{text},{label}\n" for text, label in zip(texts, labels)))
    return str(path)


def classify(path: str, **fields) -> object:
    return load_task_data(DataConfig(source="local", name=path, task="classification", tokenizer="word", **fields), 0)


def test_missing_value_words_are_kept_as_classes_and_text(tmp_path):
    """Before: "NA" (North America) and "null" were read as missing: the labels refused as 'no label', the text of
    a row 'null' refused as 'no text (empty or missing)'."""
    labels = [["NA", "EU", "AS"][i % 3] for i in range(60)]
    texts = ["null" if i % 5 == 0 else "None" if i % 5 == 1 else text for i, text in enumerate(TEXTS)]
    data = classify(labelled_csv(tmp_path / "regions.csv", labels, texts))
    assert data.meta["labels"] == ["AS", "EU", "NA"]
    assert {"null", "None"} <= set(data.vocab)
    counts = {name: len(getattr(data, name)) for name in ("train", "val", "test")}
    assert sum(counts.values()) == 60  # no row dropped
    # numbers are still numbers, and an empty cell still missing
    assert classify(labelled_csv(tmp_path / "ints.csv", [str(i % 2) for i in range(60)])).meta["labels"] == [0, 1]
    labels = ["" if i == 4 else str(i % 2) for i in range(60)]
    with pytest.raises(DataError, match="data.label_column: 1 of 60 train rows have no label"):
        classify(labelled_csv(tmp_path / "blank.csv", labels), val_fraction=0.0, test_fraction=0.0)


def test_a_text_stream_keeps_its_missing_value_words(tmp_path):
    """Before: an lm's lines "NA" and "None" were read as missing and became empty lines (only their line end)."""
    lines = [["NA", "hello world", "None"][i % 3] for i in range(60)]
    path = tmp_path / "lines.csv"
    path.write_text("text\n" + "".join(f"{line}\n" for line in lines))
    data = load_task_data(DataConfig(source="local", name=str(path), task="lm", tokenizer="word"), 0)
    assert {"NA", "None", "hello", "world"} <= set(data.vocab)
    steps = sum(int(getattr(data, name).lengths.sum()) for name in ("train", "val", "test"))
    assert steps == 20 * (1 + 2 + 1) + 60  # every word and a line end per line


@pytest.mark.parametrize("word", ["NA", "nan", "null"])
def test_a_missing_value_word_among_numeric_labels_is_refused(word, tmp_path):
    labels = [word if i in (4, 9) else str(i % 2) for i in range(60)]
    with pytest.raises(DataError, match=f"data.label_column.*the label '{word}' among numeric labels"):
        classify(labelled_csv(tmp_path / "labels.csv", labels), val_fraction=0.0, test_fraction=0.0)


def test_booleans_and_numbers_are_not_merged(tmp_path):
    """JSON labels true and 1 are equal in Python: they were silently one class (and false and 0 another)."""
    path = tmp_path / "flags.jsonl"
    labels = ["true", "1", "false", "0"]
    path.write_text("".join(f'{{"text": "{text}", "label": {labels[i % 4]}}}\n' for i, text in enumerate(TEXTS)))
    with pytest.raises(DataError, match="data.label_column: the labels mix booleans and numbers"):
        classify(str(path))


def test_labels_that_mix_numbers_and_words_are_said_on_a_cache_hit_too(tmp_path, capsys):
    """Before: only the run that prepared the data warned; the second run, from the cache, said nothing."""
    data = labelled_csv(tmp_path / "mixed.csv", ["neg" if i == 6 else str(i % 2) for i in range(60)])
    for run in ("first", "cached"):
        code = main(["run", REVIEWS, "--out", str(tmp_path / run), "--set", *SHRINK, f"data.name={data}"])
        err = capsys.readouterr().err
        assert code == 0, err[-2000:]
        assert "data.label_column: the labels mix numbers and words" in err and "3 in all" in err, (run, err)
    assert "data cache hit" in err


def test_labels_that_differ_only_in_spaces_are_said(tmp_path, caplog):
    labels = [["pos", "neg", "pos "][i % 3] for i in range(60)]
    with caplog.at_level("WARNING", logger="rnnlab"):
        data = classify(labelled_csv(tmp_path / "spaced.csv", labels))
    assert data.meta["labels"] == ["neg", "pos", "pos "]  # as written: the file's business
    assert "labels differ only in the spaces around them ('pos', 'pos ')" in caplog.text


def test_a_word_in_a_numeric_target_is_refused_naming_it_and_its_row(tmp_path):
    path = tmp_path / "targets.csv"
    path.write_text("text,target\n" + "".join(f"{text},{'NA' if i == 7 else i / 2}\n" for i, text in enumerate(TEXTS)))
    cfg = DataConfig(source="local", name=str(path), task="regression", tokenizer="word", target_column="target")
    with pytest.raises(DataError, match=r"data.target_column: column 'target' must hold numbers .* not 'NA' in row 7"):
        load_task_data(cfg, 0)


def test_a_column_named_twice_in_a_csv_header_is_refused(tmp_path):
    """Before: pandas renamed the second 'text.1' and data.text_column=text silently read the first of the two."""
    texts = [f"{text},other words {i}" for i, text in enumerate(TEXTS)]
    path = labelled_csv(tmp_path / "twice.csv", [str(i % 2) for i in range(60)], texts, header="text,text,label")
    with pytest.raises(DataError, match="data.name: .*twice.csv: the header names column 'text' 2 times"):
        classify(path)


@pytest.mark.parametrize("header", ["text,Label", "text, label"])
def test_a_column_that_differs_only_in_case_or_spaces_is_pointed_at(header, tmp_path):
    path = labelled_csv(tmp_path / "named.csv", [str(i % 2) for i in range(60)], header=header)
    near = header.split(",")[1]
    with pytest.raises(DataError, match=f"no column 'label'.*{near!r} differs only in case or spaces"):
        classify(path)


def test_a_cell_that_does_not_fit_its_csv_column_type_names_the_cell_and_why(tmp_path):
    """A word after the first 10000 rows of a column of integers: datasets said only 'An error occurred while
    generating the dataset'."""
    path = tmp_path / "long.csv"
    path.write_text("text,label\n" + "".join(f"row {i},{i % 2}\n" for i in range(10_005)) + "last row,neg\n")
    with pytest.raises(DataError, match=r"Failed to parse string: 'neg' .*the first 10000") as err:
        classify(str(path))
    assert "JSON lines or parquet" in err.value.message


def test_a_byte_order_mark_is_not_the_first_token_of_a_text_file(tmp_path):
    """Before: a text file saved with a BOM (Windows' Notepad) gave the lm a first token '\\ufeff' (char) or
    '\\ufeffhello', another word than 'hello' (word)."""
    path = tmp_path / "lines.txt"
    path.write_bytes("\ufeffhello world\n".encode() + b"".join(b"hello there\n" for _ in range(30)))
    for tokenizer in ("char", "word"):
        data = load_task_data(DataConfig(source="local", name=str(path), task="lm", tokenizer=tokenizer), 0)
        assert not any("\ufeff" in token for token in data.vocab), tokenizer


def test_a_blank_label_is_missing_not_a_class(tmp_path):
    """A cell of spaces is kept as written (only an empty cell is missing), but ' ' is no class."""
    labels = [" " if i == 4 else ["pos", "neg"][i % 2] for i in range(60)]
    with pytest.raises(DataError, match="data.label_column: 1 of 60 train rows have no label"):
        classify(labelled_csv(tmp_path / "blank.csv", labels), val_fraction=0.0, test_fraction=0.0)


def test_a_missing_value_word_among_numeric_labels_of_a_val_split_is_refused_as_missing(tmp_path):
    """Before: 'nan' among 0/1, cut into the val split, was refused as 'never seen in train: nan'."""
    from rnnlab.data import sources, splitting
    from rnnlab.tasks import TASKS

    path = labelled_csv(tmp_path / "labels.csv", [str(i % 2) for i in range(60)])
    cfg = DataConfig(source="local", name=path, task="classification", tokenizer="word")
    row = int(splitting.split_rows(sources.load_local(cfg), cfg, 0, TASKS["classification"])["val"][1][0])
    labelled_csv(tmp_path / "labels.csv", ["nan" if i == row else str(i % 2) for i in range(60)])
    with pytest.raises(DataError, match="data.label_column: 1 of 6 val rows have the label 'nan' among numeric"):
        classify(path)


def test_a_word_in_a_test_file_of_numbers_says_why_it_cannot_be_read(tmp_path):
    """The first file of several sets the columns' types: a test file's 'NA' among 0/1 is no integer."""
    train = labelled_csv(tmp_path / "train.csv", [str(i % 2) for i in range(60)])
    test = labelled_csv(tmp_path / "test.csv", ["NA" if i == 3 else str(i % 2) for i in range(60)])
    with pytest.raises(DataError, match=r"data.name: .*Failed to parse string: 'NA'.*of the first file of several"):
        classify(f"train={train},test={test}", test_split="test")


def test_the_run_folder_names_each_class_as_the_data_wrote_it(tmp_path, capsys):
    """Before: a run folder did not say which output is which class; 'NA', 'EU', 'AS' were known only in memory."""
    import json

    data = labelled_csv(tmp_path / "regions.csv", [["NA", "EU", "AS"][i % 3] for i in range(60)])
    code = main(["run", REVIEWS, "--out", str(tmp_path / "run"), "--set", *SHRINK, f"data.name={data}"])
    assert code == 0, capsys.readouterr().err[-2000:]
    assert json.loads((tmp_path / "run" / "labels.json").read_text()) == {"labels": ["AS", "EU", "NA"]}


@pytest.mark.parametrize(
    "spellings", [["01", "1", "2"], ["1.0", "1", "2"], ["007", "7", "3"], ["FALSE", "True", "true"]]
)
def test_numbers_written_differently_are_classes_as_written(spellings, tmp_path, capsys):
    """Before: pandas read the column as numbers and '01' and '1' (or '1.0' and '1', '007' and '7') were one class:
    labels.json said [1, 2] for a file of three classes."""
    import json

    labels = [spellings[i % 3] for i in range(60)]
    path = labelled_csv(tmp_path / "codes.csv", labels)
    code = main(["run", REVIEWS, "--out", str(tmp_path / "run"), "--set", *SHRINK, f"data.name={path}"])
    err = capsys.readouterr().err
    assert code == 0, err[-2000:]
    named = json.loads((tmp_path / "run" / "labels.json").read_text())["labels"]
    assert named == sorted(spellings)
    assert "labels spell one value in different ways" in err and "3 in all" in err
    data = classify(path, val_fraction=0.0, test_fraction=0.0)  # every row in train, in the file's order
    assert data.meta["labels"] == named
    assert [named[i] for i in data.train.targets.tolist()] == labels


def test_plain_integer_labels_stay_numbers(tmp_path, capsys):
    """Labels 0..9 written once each way are numbers, as before: labels.json [0, ..., 9], each row its own digit."""
    import json

    labels = [str(i % 10) for i in range(60)]
    path = labelled_csv(tmp_path / "digits.csv", labels)
    code = main(["run", REVIEWS, "--out", str(tmp_path / "run"), "--set", *SHRINK, f"data.name={path}"])
    err = capsys.readouterr().err
    assert code == 0, err[-2000:]
    assert json.loads((tmp_path / "run" / "labels.json").read_text()) == {"labels": list(range(10))}
    assert "spell one value" not in err
    data = classify(path, val_fraction=0.0, test_fraction=0.0)
    assert [data.meta["labels"][i] for i in data.train.targets.tolist()] == [int(x) for x in labels]


def classlabel_parquet(path: Path, names: list[str], ids: list[int]) -> str:
    from datasets import ClassLabel, Dataset, Features, Value

    features = Features({"text": Value("string"), "label": ClassLabel(names=names)})
    Dataset.from_dict({"text": TEXTS[: len(ids)], "label": ids}, features=features).to_parquet(str(path))
    return str(path)


def test_a_classlabel_column_is_recorded_by_its_names(tmp_path, capsys):
    """Before: labels.json held the class ids (0, 1, 2) of a ClassLabel column, not what they mean."""
    import json

    names = ["neg", "neu", "pos"]
    path = classlabel_parquet(tmp_path / "sentiment.parquet", names, [i % 3 for i in range(60)])
    code = main(["run", REVIEWS, "--out", str(tmp_path / "run"), "--set", *SHRINK, f"data.name={path}"])
    assert code == 0, capsys.readouterr().err[-2000:]
    assert json.loads((tmp_path / "run" / "labels.json").read_text()) == {"labels": names}  # datasets' id order
    # a class absent from train ('neu', id 1): the outputs are neg and pos, and each row's output names its class
    ids = [[0, 2][i % 2] for i in range(60)]
    data = classify(classlabel_parquet(tmp_path / "two.parquet", names, ids), val_fraction=0.0, test_fraction=0.0)
    assert data.meta["labels"] == ["neg", "pos"] and data.output_size == 2
    assert [data.meta["labels"][i] for i in data.train.targets.tolist()] == [names[i] for i in ids]


def test_a_classlabel_id_of_no_class_is_refused(tmp_path):
    """-1 is datasets' missing label: no name, no class."""
    path = classlabel_parquet(
        tmp_path / "missing.parquet", ["neg", "pos"], [-1 if i == 5 else i % 2 for i in range(60)]
    )
    with pytest.raises(DataError, match="data.label_column: train labels -1 are no class of the column's ClassLabel"):
        classify(path, val_fraction=0.0, test_fraction=0.0)


def test_a_tagger_records_the_names_of_its_classlabel_tags(tmp_path):
    names = ["O", "B-PER", "I-PER"]
    tags = [[0, 1, 2][: 1 + i % 3] for i in range(30)]
    path = tags_parquet(tmp_path / "tags.parquet", names, tags, [["the", "cat", "sat"][: len(t)] for t in tags])
    data = load_task_data(tagger_config(path, test_fraction=0.0), 0)
    assert data.meta["labels"] == names
    got = [[data.meta["labels"][t] for t in row if t >= 0] for row in data.train.targets.tolist()]
    assert got == [[names[t] for t in row] for row in tags]


def test_fractions_written_differently_are_still_refused_as_no_classes(tmp_path):
    labels = [["1.5", "1.50", "2"][i % 3] for i in range(60)]
    with pytest.raises(DataError, match="data.label_column: 40 of 60 train labels are real numbers"):
        classify(labelled_csv(tmp_path / "fractions.csv", labels), val_fraction=0.0, test_fraction=0.0)


def test_a_classlabel_never_seen_in_train_is_named(tmp_path):
    """Before: 'split 'test' has labels never seen in train: 1; train labels: 0, 2', the ClassLabel ids, where the
    user knows the classes as neg, neu, pos."""
    names = ["neg", "neu", "pos"]
    train = classlabel_parquet(tmp_path / "train.parquet", names, [[0, 2][i % 2] for i in range(40)])
    test = classlabel_parquet(tmp_path / "test.parquet", names, [i % 3 for i in range(12)])
    with pytest.raises(DataError) as err:
        classify(f"train={train},test={test}", test_split="test", val_fraction=0.0)
    assert err.value.field == "data.label_column"
    assert "split 'test' has labels never seen in train: neu (1); train labels: neg (0), pos (2)" in str(err.value)
    tags = ["O", "B-PER", "I-PER"]  # a tagger's List(ClassLabel) the same way
    for split, rows in {"train": [[0, 1]] * 20, "test": [[0, 2]] * 5}.items():
        tags_parquet(tmp_path / f"{split}_tags.parquet", tags, rows, [["the", "cat"]] * len(rows))
    cfg = tagger_config(
        f"train={tmp_path / 'train_tags.parquet'},test={tmp_path / 'test_tags.parquet'}", test_split="test"
    )
    with pytest.raises(DataError, match=r"never seen in train: I-PER \(2\); train labels: O \(0\), B-PER \(1\)"):
        load_task_data(cfg, 0)
