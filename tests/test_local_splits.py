"""Local data with splits: a folder or glob whose file (or folder) names carry the split, as datasets names them, or a
mapping 'train=a.csv,test=b.csv'; a dataset's own test split kept as it is; clear errors naming field and splits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from datasets import Dataset

from rnnlab.cli import main
from rnnlab.config import DataConfig
from rnnlab.data import DataError, sources
from rnnlab.tasks import load_task_data

DIGITS = Path(__file__).resolve().parent.parent / "experiments" / "digits_lstm.py"


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNLAB_CACHE", str(tmp_path / "cache"))


def rows(first: int, n: int) -> dict:
    """Rows whose `x` identifies them (x = first .. first + n - 1) and a label that alternates."""
    return {"inputs": [[float(first + i)] for i in range(n)], "label": [i % 2 for i in range(n)]}


def write(path, first, n, kind=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    data = Dataset.from_dict(rows(first, n))
    kind = kind or path.suffix.lstrip(".")
    if kind == "parquet":
        data.to_parquet(str(path))
    elif kind in ("json", "jsonl"):
        data.to_json(str(path), lines=True)
    else:
        data.map(lambda r: {"inputs": " ".join(map(str, r["inputs"]))}).to_csv(str(path), index=False)
    return path


def ids(split) -> set[int]:
    """The row ids a prepared split holds."""
    return {int(v) for v in split.inputs[:, 0, 0].tolist()}


def local(name, **overrides) -> DataConfig:
    return DataConfig(source="local", name=str(name), task="classification", **overrides)


@pytest.mark.parametrize("suffix", ["parquet", "csv", "jsonl"])
def test_glob_with_split_names_keeps_the_test_split_as_is(tmp_path, suffix):
    write(tmp_path / "ds" / f"train.{suffix}", 0, 40)
    write(tmp_path / "ds" / f"test.{suffix}", 100, 10)
    data = load_task_data(local(tmp_path / "ds" / f"*.{suffix}", test_split="test"), 0)
    assert ids(data.test) == set(range(100, 110))  # the dataset's own test rows, all of them, none other
    assert data.test.inputs[:, 0, 0].tolist() == [float(i) for i in range(100, 110)]  # in their order
    assert ids(data.train) | ids(data.val) == set(range(40)) and len(data.val) == 4  # val carved out of train


def test_folder_with_split_files_and_folders(tmp_path):
    write(tmp_path / "files" / "train.parquet", 0, 30)
    write(tmp_path / "files" / "validation.parquet", 200, 5)
    write(tmp_path / "files" / "test.parquet", 100, 6)
    (tmp_path / "files" / "README.md").write_text("a dataset card is not data\n")
    data = load_task_data(local(tmp_path / "files", val_split="validation", test_split="test"), 0)
    assert ids(data.train) == set(range(30)) and ids(data.val) == set(range(200, 205))
    assert ids(data.test) == set(range(100, 106))
    write(tmp_path / "dirs" / "train" / "part-0.jsonl", 0, 20)
    write(tmp_path / "dirs" / "train" / "part-1.jsonl", 20, 20)
    write(tmp_path / "dirs" / "test" / "part-0.jsonl", 100, 7)
    data = load_task_data(local(tmp_path / "dirs", test_split="test", val_fraction=0), 0)
    assert ids(data.train) == set(range(40)) and ids(data.test) == set(range(100, 107)) and len(data.val) == 0


def test_mapping_of_split_names_to_files(tmp_path):
    write(tmp_path / "a.csv", 0, 30)
    write(tmp_path / "holdout" / "b1.csv", 100, 4)
    write(tmp_path / "holdout" / "b2.csv", 104, 4)
    name = f"train={tmp_path / 'a.csv'},heldout={tmp_path / 'holdout' / '*.csv'}"
    data = load_task_data(local(name, test_split="heldout"), 0)
    assert ids(data.test) == set(range(100, 108)) and ids(data.train) | ids(data.val) == set(range(30))


def test_a_path_with_an_equals_sign_is_a_path_not_a_mapping(tmp_path):
    path = write(tmp_path / "runs" / "lr=0.1" / "data.csv", 0, 20)
    assert sources.local_data_files(local(path)) == {"train": [str(path)]}
    assert sources.local_data_files(local(tmp_path / "runs" / "lr=0.1" / "*.csv")) == {"train": [str(path)]}


def test_one_file_or_names_without_splits_are_one_train_split(tmp_path):
    write(tmp_path / "eval_results.csv", 0, 20)  # a split word in a lone file's name does not make it a test set
    assert list(sources.load_local(local(tmp_path / "eval_results.csv"))) == ["train"]
    write(tmp_path / "plain" / "a.csv", 0, 20)
    write(tmp_path / "plain" / "b.csv", 20, 20)
    raw = sources.load_local(local(tmp_path / "plain" / "*.csv"))
    assert list(raw) == ["train"] and len(raw["train"]) == 40
    assert list(sources.load_local(local(tmp_path / "plain", train_split="everything"))) == ["everything"]


def refused(cfg) -> DataError:
    with pytest.raises(DataError) as err:
        load_task_data(cfg, 0)
    return err.value


def test_errors_name_the_field_and_the_valid_splits(tmp_path):
    write(tmp_path / "one.csv", 0, 20)
    err = refused(local(tmp_path / "one.csv", test_split="test"))
    assert err.field == "data.test_split" and "the dataset has train" in err.message
    assert "train.csv" in err.message and "train=a.csv,test=b.csv" in err.message  # how to give splits
    write(tmp_path / "ds" / "train.csv", 0, 20)
    write(tmp_path / "ds" / "test.csv", 100, 5)
    err = refused(local(tmp_path / "ds", val_split="dev"))
    assert err.field == "data.val_split" and "train, test" in err.message
    write(tmp_path / "ds" / "extra.csv", 50, 5)
    err = refused(local(tmp_path / "ds" / "*.csv"))
    assert err.field == "data.name" and "extra.csv" in err.message
    err = refused(local(f"train={tmp_path / 'ds' / 'train.csv'},test={tmp_path / 'ds' / 't*.csv'}"))
    assert err.field == "data.name" and "leak" in err.message
    assert refused(local(f"train={tmp_path / 'nope.csv'}")).field == "data.name"
    assert refused(local("train")).field == "data.name"  # no such file
    (tmp_path / "empty").mkdir()
    assert "holds no" in refused(local(tmp_path / "empty")).message


def test_fingerprint_follows_the_split_of_each_file(tmp_path):
    write(tmp_path / "a.csv", 0, 20)
    write(tmp_path / "b.csv", 100, 20)
    one = local(f"train={tmp_path / 'a.csv'},test={tmp_path / 'b.csv'}", test_split="test")
    other = local(f"train={tmp_path / 'b.csv'},test={tmp_path / 'a.csv'}", test_split="test")
    first, second = load_task_data(one, 0), load_task_data(other, 0)
    assert first.fingerprint != second.fingerprint and second.meta["cache"] == "miss"
    assert not torch.equal(first.test.inputs, second.test.inputs)


def test_tsv_glob_and_text_folder_splits(tmp_path):
    for split, first, n in (("train", 0, 30), ("test", 100, 5)):
        lines = ["inputs\tlabel", *[f"{first + i}\t{i % 2}" for i in range(n)]]
        (tmp_path / "tsv").mkdir(exist_ok=True)
        (tmp_path / "tsv" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    data = load_task_data(local(tmp_path / "tsv" / "*.tsv", test_split="test"), 0)
    assert ids(data.test) == set(range(100, 105))
    (tmp_path / "txt").mkdir()
    (tmp_path / "txt" / "train.txt").write_text("".join(f"line {i} of train\n" for i in range(40)))
    (tmp_path / "txt" / "test.txt").write_text("zz zz\n")
    cfg = DataConfig(source="local", name=str(tmp_path / "txt"), task="lm", tokenizer="word", test_split="test")
    data = load_task_data(cfg, 0)
    assert [data.vocab[i] for i in data.test.inputs.tolist()] == ["<unk>", "<unk>", "<eos>"]  # the test file, whole


@pytest.mark.parametrize(
    "sets, field",
    [
        (["data.val_split=train"], "data.val_split"),  # val would be the rows the model is fit on
        (["data.test_split=train"], "data.test_split"),
        (["data.val_split=test", "data.test_split=test"], "data.test_split"),  # test would select the model
    ],
)
def test_a_val_or_test_split_that_is_another_split_is_refused(sets, field, tmp_path, capsys):
    """Before: accepted, so val/* (or test/*) was scored on the training rows, or the test split chose the epoch."""
    write(tmp_path / "ds" / "train.csv", 0, 20)
    write(tmp_path / "ds" / "test.csv", 100, 5)
    out = tmp_path / "run"
    sets = ["data.source=local", f"data.name={tmp_path / 'ds'}", "tracking.mode=disabled", *sets]
    code = main(["run", "digits_lstm", "--out", str(out), "--set", *sets])
    err = capsys.readouterr().err
    assert code == 2 and field in err and "Traceback" not in err, err[-2000:]
    assert not out.exists()


@pytest.mark.parametrize(
    "sets, field",
    [
        (["data.source=local", "data.revision=main"], "data.revision"),  # before: ignored, the run went on
        (["data.source=local", "data.config_name=en"], "data.config_name"),
        (["data.source=builtin", "data.format=csv"], "data.format"),
    ],
)
def test_a_setting_of_another_data_source_is_refused_not_ignored(sets, field, tmp_path, capsys):
    write(tmp_path / "train.csv", 0, 20)
    out = tmp_path / "run"
    name = "data.name=adding" if "data.source=builtin" in sets else f"data.name={tmp_path}"
    code = main(["run", "digits_lstm", "--out", str(out), "--set", name, *sets])
    err = capsys.readouterr().err
    assert code == 2 and field in err and "data.source=" in err and "Traceback" not in err, err[-2000:]
    assert not out.exists()


def test_a_split_left_out_is_said_on_a_cache_hit_too(tmp_path, capsys):
    """Before: only the first run (which prepared the data) warned; every later run or trial, from the cache, said
    nothing of the validation file it left out."""
    write(tmp_path / "ds" / "train.csv", 0, 40)
    write(tmp_path / "ds" / "validation.csv", 100, 10)
    write(tmp_path / "ds" / "test.csv", 200, 10)
    sets = ["data.source=local", f"data.name={tmp_path / 'ds'}", "data.test_split=test", "tracking.mode=disabled"]
    for run in ("first", "cached"):
        code = main(["run", "digits_lstm", "--out", str(tmp_path / run), "--set", *sets, "train.epochs=1"])
        err = capsys.readouterr().err
        assert code == 0, err[-2000:]
        assert "split(s) validation are not used" in err, (run, err[-2000:])
    assert "data cache hit" in err  # the second run did read the cache


@pytest.mark.parametrize("field", ["data.val_split", "data.test_split"])
def test_a_named_split_on_a_recall_task_is_refused_not_ignored(field, tmp_path, capsys):
    """Before: hopfield_capacity with data.test_split=nonexistent ran and reported test/exact=1 on the train cues."""
    out = tmp_path / "run"
    code = main(["run", "hopfield_capacity", "--out", str(out), "--set", "tracking.mode=disabled", f"{field}=test"])
    err = capsys.readouterr().err
    assert code == 2 and field in err and "cues the stored train patterns" in err, err[-2000:]
    assert not out.exists()


# --- the walk of a local data folder ---------------------------------------------------------------------------


def test_a_data_folder_with_a_symlink_cycle_is_walked_once(tmp_path):
    """A link back to an ancestor (as /proc/self/root is to /) is not followed: the walk ends, each file once."""
    from rnnlab.config import DataConfig
    from rnnlab.data.sources import local_data_files

    (tmp_path / "data" / "sub").mkdir(parents=True)
    (tmp_path / "data" / "sub" / "train.csv").write_text("text,label\nab,0\n")
    (tmp_path / "data" / "sub" / "up").symlink_to("..")
    for name in (str(tmp_path / "data"), str(tmp_path / "data" / "**" / "*.csv")):
        found = local_data_files(DataConfig(source="local", name=name))
        assert found == {"train": [str(tmp_path / "data" / "sub" / "train.csv")]}, (name, found)


def test_a_linked_split_folder_is_never_dropped(tmp_path):
    """`data/test -> elsewhere/test`, as data on another disk is linked in. A walk that followed no link dropped its
    files: the run trained and tested on a split carved from train, silently. Now the walk reads them; datasets'
    split naming does not follow the link, so the error says so and the mapping form reads both splits."""
    from rnnlab.config import DataConfig
    from rnnlab.data import DataError
    from rnnlab.data.sources import local_data_files

    (tmp_path / "data" / "train").mkdir(parents=True)
    (tmp_path / "elsewhere" / "test").mkdir(parents=True)
    (tmp_path / "data" / "train" / "a.csv").write_text("text,label\nab,0\n")
    (tmp_path / "elsewhere" / "test" / "b.csv").write_text("text,label\ncd,1\n")
    (tmp_path / "data" / "test").symlink_to(tmp_path / "elsewhere" / "test")
    with pytest.raises(DataError, match="a linked folder .*data/test.* map them") as err:
        local_data_files(DataConfig(source="local", name=str(tmp_path / "data")))
    assert err.value.field == "data.name"
    mapping = f"train={tmp_path / 'data' / 'train' / '*.csv'},test={tmp_path / 'data' / 'test' / '*.csv'}"
    found = local_data_files(DataConfig(source="local", name=mapping))
    assert found == {
        "train": [str(tmp_path / "data" / "train" / "a.csv")],
        "test": [str(tmp_path / "data" / "test" / "b.csv")],
    }


def test_a_data_folder_too_large_to_walk_is_refused(tmp_path, monkeypatch, capsys):
    from rnnlab.data import local_paths

    monkeypatch.setattr(local_paths, "MAX_ENTRIES", 5)  # the bound, scaled down: 10 files stand for millions
    for i in range(10):
        (tmp_path / f"f{i}.txt").write_text("x\n")
    code = main(
        ["run", str(DIGITS), "--out", str(tmp_path / "run"), "--set", "data.source=local", f"data.name={tmp_path}"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "data.name" in err and "more than 5" in err and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()
