"""The hub path records the commit it read (provenance.json `data.commit`) and honours a pinned `data.revision`.

The hub cannot be reached here, so a datasets cache is filled the way a machine with network leaves it (a builder
prepared at a commit sha) and read back through the real hub code path in offline mode (HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import json
import shutil

import pytest
from datasets import Dataset, load_dataset_builder
from datasets.packaged_modules.parquet.parquet import Parquet

from rnnlab.cli import main
from rnnlab.config import DataConfig
from rnnlab.data import DataError
from rnnlab.data.hub import load_hub, resolved_commit
from rnnlab.tasks import load_task_data

COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER = "fedcba9876543210fedcba9876543210fedcba98"


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """A datasets cache holding hub dataset `tiny` (train 20 rows, test 6) at COMMIT; offline; cwd without `tiny`."""
    import datasets.config

    files = {}
    for split, n in (("train", 20), ("test", 6)):
        path = tmp_path / "repo" / f"{split}.parquet"
        path.parent.mkdir(exist_ok=True)
        Dataset.from_dict({"text": [f"{split} {i}" for i in range(n)], "label": [i % 2 for i in range(n)]}).to_parquet(
            str(path)
        )
        files[split] = [str(path)]
    cache = tmp_path / "hf-datasets"
    Parquet(cache_dir=str(cache), dataset_name="tiny", hash=COMMIT, data_files=files).download_and_prepare()
    (config_dir,) = (cache / "tiny").iterdir()  # named after its data files here; a hub repo's is "default"
    shutil.move(config_dir, cache / "tiny" / "default")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("RNNLAB_CACHE", str(tmp_path / "rnnlab-cache"))
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    return cache


def hub(**overrides) -> DataConfig:
    return DataConfig(source="hub", name="tiny", task="classification", test_split="test", **overrides)


def test_the_resolved_commit_is_in_the_prepared_data_and_keys_the_cache(hub_cache):
    raw, commit = load_hub(hub())
    assert commit == COMMIT and list(raw) == ["train", "test"] and len(raw["test"]) == 6
    data = load_task_data(hub(), 0)
    assert data.meta["commit"] == COMMIT and len(data.test) == 6
    again = load_task_data(hub(), 0)
    assert again.meta["cache"] == "hit" and again.meta["commit"] == COMMIT


def test_a_pinned_revision_must_match_the_cached_commit(hub_cache):
    assert load_task_data(hub(revision=COMMIT), 0).meta["commit"] == COMMIT
    with pytest.raises(DataError) as err:
        load_task_data(hub(revision=OTHER), 0)
    assert err.value.field == "data.revision" and OTHER in err.value.message and COMMIT in err.value.message


def test_provenance_json_records_the_commit(hub_cache, tmp_path):
    out = tmp_path / "run"
    argv = ["run", "digits_lstm", "--out", str(out), "--set", "data.source=hub", "data.name=tiny"]
    argv += ["data.test_split=test", "train.epochs=1", "tracking.mode=disabled"]
    assert main(argv) == 0
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["data.commit"] == COMMIT and provenance["data.revision"] is None
    assert provenance["data.name"] == "tiny" and provenance["data.source"] == "hub"
    assert json.loads((out / "result.json").read_text())["data/commit"] == COMMIT


def test_a_files_hash_is_not_taken_for_a_commit(tmp_path):
    Dataset.from_dict({"text": ["a", "b"], "label": [0, 1]}).to_parquet(str(tmp_path / "train.parquet"))
    builder = load_dataset_builder(str(tmp_path))  # a local folder through the hub path: hashed, no commit
    assert builder.hash and resolved_commit(builder) is None


@pytest.mark.parametrize("name", ["train.csv", "train.tsv"])
def test_hub_csv_files_keep_their_missing_value_words(name, tmp_path, monkeypatch):
    """Before: a hub dataset of CSV files went through datasets' csv builder with pandas' defaults, so a label "NA"
    (or "null", "None") arrived as missing; local CSVs keep them. The hub path runs here on a local folder: the same
    `load_dataset_builder` resolves it to the csv builder, as it does a hub repository of CSV files."""
    sep = "\t" if name.endswith(".tsv") else ","
    cells = ["NA", "EU", "null", "None", ""]
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / name).write_text(
        f"text{sep}label\n" + "".join(f"row {i}{sep}{c}\n" for i, c in enumerate(cells))
    )
    import datasets.config

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    raw, _ = load_hub(DataConfig(source="hub", name=str(tmp_path / "repo"), task="classification"))
    assert raw["train"]["label"][:] == ["NA", "EU", "null", "None", None]  # only the empty cell is missing


def cache_hub_csv(tmp_path, monkeypatch, read_as_rnnlab: bool) -> None:
    """A datasets cache holding hub dataset `tinycsv` (CSV files) at COMMIT, as a machine with network leaves it:
    read with rnnlab's CSV settings (their config id) or with pandas' defaults (config 'default'); offline."""
    import datasets.config
    from datasets import BuilderConfig
    from datasets.packaged_modules.csv.csv import Csv

    from rnnlab.data.sources import CSV_CELLS

    path = tmp_path / "repo" / "train.csv"
    path.parent.mkdir()
    path.write_text("text,label\n" + "".join(f"row {i},{['NA', 'EU', 'null'][i % 3]}\n" for i in range(12)))
    kwargs = CSV_CELLS if read_as_rnnlab else {}
    cache = tmp_path / "hf-datasets"
    builder = Csv(
        cache_dir=str(cache), dataset_name="tinycsv", hash=COMMIT, data_files={"train": [str(path)]}, **kwargs
    )
    builder.download_and_prepare()
    (config_dir,) = (cache / "tinycsv").iterdir()  # named by its data files here; a hub repo's by its kwargs alone
    shutil.move(config_dir, cache / "tinycsv" / BuilderConfig("default").create_config_id(dict(kwargs)))
    path.unlink()  # offline, the cache alone is read
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_a_cached_hub_csv_is_read_offline_with_its_missing_value_words(tmp_path, monkeypatch):
    cache_hub_csv(tmp_path, monkeypatch, read_as_rnnlab=True)
    raw, commit = load_hub(DataConfig(source="hub", name="tinycsv", task="classification"))
    assert commit == COMMIT and raw["train"]["label"][:3] == ["NA", "EU", "null"]


def test_a_hub_csv_cached_with_pandas_defaults_is_refused_offline(tmp_path, monkeypatch):
    """Such a copy (datasets' own load_dataset, or rnnlab before) lost 'NA' and 'null': reading it would be silent."""
    cache_hub_csv(tmp_path, monkeypatch, read_as_rnnlab=False)
    with pytest.raises(DataError, match="data.name: 'tinycsv' is CSV files, and the local datasets cache holds them"):
        load_hub(DataConfig(source="hub", name="tinycsv", task="classification"))
