"""rnnlab.data: built-in generators, local and hub sources, encoders fitted on train, and the prepared-data cache."""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import pytest
import torch

from rnnlab.config import DataConfig
from rnnlab.data import BUILTIN_TASKS, DATASETS, DataError, load_vocab, save_vocab
from rnnlab.data.builtin import integrate_mackey_glass
from rnnlab.tasks import TASKS, load_task_data

SMALL = {"num_samples": 64, "seq_len": 12}


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def builtin(name: str, **overrides) -> DataConfig:
    return DataConfig(source="builtin", name=name, task=BUILTIN_TASKS[name][0], **{**SMALL, **overrides})


def local(path, task: str, **overrides) -> DataConfig:
    return DataConfig(source="local", name=str(path), task=task, **overrides)


# --- built-in generators ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(DATASETS))
def test_builtin_generators_are_deterministic(name):
    cfg = builtin(name)
    first, again, other = DATASETS[name](cfg, 0), DATASETS[name](cfg, 0), DATASETS[name](cfg, 1)
    assert first.to_dict() == again.to_dict()
    if name != "digits":  # the bundled digits are fixed data; the seed only shuffles the splits
        assert first.to_dict() != other.to_dict()


EXPECTED = {  # name -> (inputs dtype, inputs rank, targets dtype, targets rank)
    "adding": (torch.float32, 3, torch.float32, 2),
    "copy": (torch.int64, 2, torch.int64, 2),
    "mackey_glass": (torch.float32, 3, torch.float32, 3),
    "digits": (torch.float32, 3, torch.int64, 1),
    "patterns": (torch.float32, 3, torch.float32, 2),
    "digits_patterns": (torch.float32, 3, torch.float32, 2),
    "narma10": (torch.float32, 3, torch.float32, 3),
    "memory_capacity": (torch.float32, 3, torch.float32, 3),
}


@pytest.mark.parametrize("name", list(DATASETS))
def test_builtin_shapes_and_dtypes(name):
    data = load_task_data(builtin(name), seed=0)
    in_dtype, in_rank, out_dtype, out_rank = EXPECTED[name]
    assert data.task == BUILTIN_TASKS[name][0]
    for split in (data.train, data.val, data.test):
        assert split.inputs.dtype == in_dtype and split.inputs.dim() == in_rank
        assert split.targets.dtype == out_dtype and split.targets.dim() == out_rank
        assert split.lengths.dtype == torch.int64 and len(split.lengths) == split.inputs.shape[0]
        assert split.targets.shape[0] == split.inputs.shape[0]
    assert data.fingerprint


def test_adding_problem_markers():
    cfg = builtin("adding", normalize=False)
    rows = DATASETS["adding"](cfg, 0)
    inputs = np.asarray(rows["inputs"])  # (N, T, 2)
    markers = inputs[..., 1]
    half = cfg.seq_len // 2
    assert inputs.shape == (cfg.num_samples, cfg.seq_len, 2)
    assert (markers[:, :half].sum(1) == 1).all() and (markers[:, half:].sum(1) == 1).all()
    assert ((inputs[..., 0] >= 0) & (inputs[..., 0] < 1)).all()
    np.testing.assert_allclose((inputs[..., 0] * markers).sum(1), rows["target"], rtol=1e-12)
    data = load_task_data(cfg, 0)
    assert data.output_size == 1 and data.input_size == 2


def test_copy_as_tagging_targets_only_at_output_steps():  # data.task=copy: tests/test_copy_task.py
    data = load_task_data(dataclasses.replace(builtin("copy"), task="tagging"), 0)
    targets = data.train.targets
    assert targets.shape[1] == SMALL["seq_len"] + 20
    assert (targets[:, :-10] == -100).all() and (targets[:, -10:] >= 0).all()
    assert data.output_size == 8 and data.vocab_size == len(data.vocab) == 11


def test_digits_shapes():
    data = load_task_data(builtin("digits"), 0)
    assert data.train.inputs.shape[1:] == (8, 8) and data.input_size == 8 and data.output_size == 10
    assert len(data.train) + len(data.val) + len(data.test) == 1797
    assert data.train.inputs.min() >= 0 and data.train.inputs.max() <= 1


def test_recall_cues_flip_the_configured_fraction():
    data = load_task_data(builtin("patterns", seq_len=50, noise=0.2), 0)
    assert torch.equal(data.train.inputs[:, 0], data.train.targets)
    flipped = (data.val.inputs[:, 0] != data.val.targets).sum(1)
    assert (flipped == 10).all() and not torch.equal(data.val.inputs, data.test.inputs)
    assert set(data.train.targets.unique().tolist()) == {-1.0, 1.0}


def test_mackey_glass_matches_reservoirpy():
    reservoirpy = pytest.importorskip("reservoirpy.datasets")
    history = 1.2 + 0.2 * (np.random.default_rng(0).random(17) - 0.5)
    ours = integrate_mackey_glass(history, 2000)
    theirs = reservoirpy.mackey_glass(2000, history=history).ravel()
    # Chaos amplifies any difference in the RK4 stages: agree closely early on, and in distribution overall.
    np.testing.assert_allclose(ours[:50], theirs[:50], atol=0.02)
    assert abs(ours.mean() - theirs.mean()) < 0.02 and abs(ours.std() - theirs.std()) < 0.02


def test_mackey_glass_esn_split_is_chronological():
    cfg = builtin("mackey_glass", num_samples=2000, val_fraction=0.0, test_fraction=0.2, normalize=False)
    data = load_task_data(cfg, 0)
    assert data.train.inputs.shape == (1, 1599, 1) and data.test.inputs.shape == (1, 399, 1)
    assert len(data.val) == 0
    series = np.asarray(DATASETS["mackey_glass"](cfg, 0)["target"], dtype=np.float32)
    np.testing.assert_allclose(data.train.targets[0, :, 0], series[1:1600])
    np.testing.assert_allclose(data.test.inputs[0, :, 0], series[1600:1999])


def test_unknown_builtin_name():
    with pytest.raises(DataError, match="valid: adding, copy") as err:
        load_task_data(DataConfig(name="nope"), 0)
    assert err.value.field == "data.name"


def test_builtin_task_mismatch_says_what_to_set():
    with pytest.raises(DataError, match="data.task=regression"):
        load_task_data(DataConfig(name="adding", task="classification", **SMALL), 0)


# --- local files -----------------------------------------------------------------------------------------------


def write_reviews_csv(path, n=40):
    rows = ["text,sentiment"] + [
        f"{'good fun' if i % 2 else 'bad dull'} film {i},{'pos' if i % 2 else 'neg'}" for i in range(n)
    ]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_local_csv_text_classification(tmp_path):
    path = write_reviews_csv(tmp_path / "reviews.csv")
    data = load_task_data(local(path, "classification", label_column="sentiment", tokenizer="word"), 0)
    assert data.train.inputs.dtype == torch.int64 and data.input_size == 0
    assert data.output_size == 2 and data.meta["labels"] == ["neg", "pos"]
    assert data.vocab[:2] == ["<pad>", "<unk>"] and data.vocab_size == len(data.vocab)
    assert (data.train.inputs[:, 0] >= 2).all()  # real tokens start at 2
    assert len(data.train) == 32 and len(data.val) == 4 and len(data.test) == 4  # derived 80/10/10


def test_derived_splits_are_seeded_and_disjoint(tmp_path):
    path = write_reviews_csv(tmp_path / "reviews.csv")
    cfg = local(path, "classification", label_column="sentiment", tokenizer="char")
    a, b, c = load_task_data(cfg, 0), load_task_data(cfg, 0), load_task_data(cfg, 1)
    assert torch.equal(a.val.inputs, b.val.inputs) and not torch.equal(a.val.inputs, c.val.inputs)
    cfg.max_length = 12
    assert load_task_data(cfg, 0).train.inputs.shape[1] == 12
    rows = {tuple(r.tolist()) for s in (a.train, a.val, a.test) for r in s.inputs}
    assert len(rows) == 40


def test_missing_column_names_field_and_lists_columns(tmp_path):
    path = write_reviews_csv(tmp_path / "reviews.csv")
    with pytest.raises(DataError) as err:
        load_task_data(local(path, "classification"), 0)
    assert err.value.field == "data.label_column"
    assert "text" in str(err.value) and "sentiment" in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(DataError) as err:
        load_task_data(local(tmp_path / "absent.csv", "classification"), 0)
    assert err.value.field == "data.name"


def test_unseen_label_in_named_split():
    from datasets import Dataset

    splits = {
        "train": Dataset.from_dict({"text": ["ab", "cd"], "label": ["x", "z"]}),
        "val": Dataset.from_dict({"text": ["ab"], "label": ["x"]}),
        "test": Dataset.from_dict({"text": ["ef"], "label": ["y"]}),
    }
    with pytest.raises(DataError, match="never seen in train: y") as err:
        TASKS["classification"].prepare(splits, DataConfig(), 0)
    assert err.value.field == "data.label_column"


def test_empty_split_is_an_error(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("text,label\n")
    with pytest.raises(DataError, match="empty") as err:
        load_task_data(local(path, "classification"), 0)
    assert err.value.field == "data.name"


def test_local_json_tagging(tmp_path):
    path = tmp_path / "tags.jsonl"
    rows = [{"words": ["the", "cat", "sat"][: 1 + i % 3], "ner": ["D", "N", "V"][: 1 + i % 3]} for i in range(30)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    cfg = local(path, "tagging", tokens_column="words", label_column="ner")
    data = load_task_data(cfg, 0)
    assert data.output_size == 3 and data.train.inputs.shape == data.train.targets.shape
    padding = data.train.inputs == 0
    assert (data.train.targets[padding] == -100).all() and (data.train.targets[~padding] >= 0).all()


def test_local_parquet_regression(tmp_path):
    from datasets import Dataset

    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(50, 6, 3)).tolist()
    Dataset.from_dict({"inputs": inputs, "y": (rng.normal(size=50) * 5 + 3).tolist()}).to_parquet(
        str(tmp_path / "reg.parquet")
    )
    data = load_task_data(local(tmp_path / "reg.parquet", "regression", target_column="y"), 0)
    assert data.train.inputs.shape[1:] == (6, 3) and data.train.targets.shape[1] == 1
    # Normalisation is fitted on train only: train targets are exactly standard, val/test are not forced to be.
    assert (
        abs(float(data.train.targets.mean())) < 1e-5 and abs(float(data.train.targets.std(unbiased=False)) - 1) < 1e-4
    )
    assert data.meta["target_std"][0] > 1


def test_text_file_language_modelling(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("".join(f"line number {i} of the corpus\n" for i in range(100)))
    data = load_task_data(local(path, "lm", tokenizer="word"), 0)
    assert data.train.inputs.dim() == 1 and torch.equal(data.train.inputs, data.train.targets)
    assert data.train.lengths.tolist() == [len(data.train.inputs)]
    assert data.output_size == data.vocab_size == len(data.vocab)
    # Chronological cut: the test stream is the end of the file.
    words = [data.vocab[i] for i in data.test.inputs.tolist()]
    assert words[-5:] == ["<unk>", "of", "the", "corpus", "<eos>"]
    assert "<unk>" in words  # line numbers 90..99 never occur in train


def test_forecast_csv_windows_and_train_only_normalisation(tmp_path):
    path = tmp_path / "series.csv"
    values = np.concatenate([np.linspace(0, 1, 60), np.linspace(10, 11, 40)])  # a shift only val/test see
    path.write_text("target\n" + "\n".join(f"{v:.6f}" for v in values) + "\n")
    cfg = local(path, "forecast", window=10, horizon=2, val_fraction=0.2, test_fraction=0.2)
    data = load_task_data(cfg, 0)
    assert data.train.inputs.shape[1:] == (10, 1) and data.meta["stride"] == 5
    mean, std = data.meta["normalization"]["series"]["mean"][0], data.meta["normalization"]["series"]["std"][0]
    assert mean == pytest.approx(values[:60].mean()) and std == pytest.approx(values[:60].std())
    assert float(data.test.inputs.mean()) > 5  # standardised with train statistics, so the shift survives
    torch.testing.assert_close(data.train.targets[:, :-2], data.train.inputs[:, 2:])


def test_vocab_round_trip(tmp_path):
    save_vocab(["<pad>", "<unk>", "é", "word"], tmp_path / "vocab.json")
    assert load_vocab(tmp_path / "vocab.json") == ["<pad>", "<unk>", "é", "word"]


# --- hub -------------------------------------------------------------------------------------------------------


def test_hub_without_network_fails_fast_with_instructions(tmp_path, monkeypatch):
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    # A real unreachable hub on any machine: a closed loopback port (the discard port) as the endpoint.
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    start = time.monotonic()
    with pytest.raises(DataError) as err:
        load_task_data(DataConfig(source="hub", name="rnnlab-tests/surely-not-a-dataset-8f3a"), 0)
    assert time.monotonic() - start < 10
    message = str(err.value)
    assert err.value.field == "data.name"
    assert "data.source=local" in message and "HF_HOME" in message and "HF_DATASETS_OFFLINE" in message


def test_hub_probe_is_bounded():
    from rnnlab.data.hub import hub_reachable

    start = time.monotonic()
    hub_reachable(timeout=1.0)  # whatever the network, it answers within the timeout
    assert time.monotonic() - start < 2


# --- cache -----------------------------------------------------------------------------------------------------


def test_cache_hit_skips_preprocessing(monkeypatch, cache_dir):
    cfg = builtin("adding")
    first = load_task_data(cfg, 0)
    assert first.meta["cache"] == "miss" and len(list(cache_dir.glob("*.pt"))) == 1

    def fail(*args):
        raise AssertionError("preprocessing ran on a cache hit")

    monkeypatch.setattr(TASKS["regression"], "prepare", fail)
    second = load_task_data(cfg, 0)
    assert second.meta["cache"] == "hit" and second.fingerprint == first.fingerprint
    assert torch.equal(second.train.inputs, first.train.inputs)
    with pytest.raises(AssertionError, match="cache hit"):  # a preprocessing field changed: rebuilt
        load_task_data(builtin("adding", normalize=False), 0)


def test_cache_keys_seed_and_ignores_corrupt_files(cache_dir):
    cfg = builtin("copy")
    a = load_task_data(cfg, 0)
    assert load_task_data(cfg, 1).fingerprint != a.fingerprint
    for path in cache_dir.glob("*.pt"):
        path.write_bytes(b"torn")
    again = load_task_data(cfg, 0)
    assert again.meta["cache"] == "miss" and torch.equal(again.train.inputs, a.train.inputs)
    assert load_task_data(cfg, 0).meta["cache"] == "hit"
    assert not list(cache_dir.glob("*.tmp"))


def test_cache_follows_edited_local_file(tmp_path):
    path = write_reviews_csv(tmp_path / "reviews.csv")
    cfg = local(path, "classification", label_column="sentiment")
    first = load_task_data(cfg, 0)
    write_reviews_csv(path, n=60)
    second = load_task_data(cfg, 0)
    assert second.meta["cache"] == "miss" and second.fingerprint != first.fingerprint
