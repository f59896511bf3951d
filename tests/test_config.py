"""Typed configs: dotted overrides, and bad input refused before any work with the field named (exit code 2)."""

import pytest

from rnnlab.cli import main
from rnnlab.config import Config, ConfigError
from rnnlab.config.overrides import parse_set_args, to_flat_dict
from rnnlab.registries import apply_overrides, from_flat_dict


def test_flat_names_round_trip():
    cfg = apply_overrides(Config(), {"model.esn.ridge": 1e-5, "model.family": "esn", "optim.learning_rate": "3e-4"})
    flat = to_flat_dict(cfg)
    assert flat["model.family"] == "esn" and flat["optim.learning_rate"] == 3e-4 and flat["model.esn.ridge"] == 1e-5
    assert from_flat_dict(flat) == cfg


def test_a_run_holds_only_its_familys_settings():
    lstm = to_flat_dict(apply_overrides(Config(), {"model.family": "lstm", "model.hidden_size": 64}))
    assert {k for k in lstm if k.startswith("model.")} == {
        "model.family",
        "model.embedding_size",
        "model.hidden_size",
        "model.num_layers",
        "model.bidirectional",
        "model.dropout",
        "model.forget_bias",
        "model.chrono_init",
    }
    gru = to_flat_dict(apply_overrides(Config(), {"model.family": "gru"}))
    assert "model.hidden_size" in gru and "model.forget_bias" not in gru and "model.chrono_init" not in gru
    esn = to_flat_dict(apply_overrides(Config(), {"model.family": "esn"}))
    assert "model.hidden_size" not in esn and "model.nonlinearity" not in esn and esn["model.esn.units"] == 500
    assert "model.nonlinearity" in to_flat_dict(apply_overrides(Config(), {"model.family": "elman"}))


def test_switching_family_keeps_the_settings_both_have():
    base = apply_overrides(Config(), {"model.hidden_size": 32, "model.num_layers": 2, "model.dropout": 0.2})
    gru = apply_overrides(base, {"model.family": "gru"})
    assert (gru.model.family, gru.model.hidden_size, gru.model.num_layers, gru.model.dropout) == ("gru", 32, 2, 0.2)
    esn = apply_overrides(base, {"model.family": "esn", "model.esn.units": 40})
    assert (esn.model.num_layers, esn.model.esn.units) == (2, 40) and not hasattr(esn.model, "hidden_size")
    assert apply_overrides(esn, {"model.family": "indrnn"}).model.hidden_size == 128  # esn had none: the default


@pytest.mark.parametrize(
    "family,path,owner",
    [
        ("lstm", "model.esn.units", "family esn"),
        ("lstm", "model.nonlinearity", "family elman"),
        ("esn", "model.hidden_size", "families elman, lstm, gru"),
        ("hopfield", "model.hopfield.beta", "family hopfield_pool"),
    ],
)
def test_a_setting_of_another_family_is_refused_naming_it(family, path, owner):
    with pytest.raises(ConfigError, match=f"a setting of {owner}.*not of model.family={family}") as err:
        apply_overrides(Config(), {"model.family": family, path: "1"})
    assert err.value.field == path


def test_cli_strings_are_typed():
    cfg = apply_overrides(
        Config(),
        parse_set_args(["model.bidirectional=true", "data.val_split=none", "tracking.tags=a,b", "train.epochs=3"]),
    )
    assert cfg.model.bidirectional is True and cfg.data.val_split is None
    assert cfg.tracking.tags == ["a", "b"] and cfg.train.epochs == 3


BAD = [
    ({"model.hiden_size": "8"}, "model.hiden_size", "did you mean model.hidden_size"),
    ({"model.hidden_size": "eight"}, "model.hidden_size", "expected an int"),
    ({"model.hidden_size": "0"}, "model.hidden_size", "must be > 0"),
    ({"model.hidden_size": "1.5"}, "model.hidden_size", "expected an int"),
    ({"optim.learning_rate": "0"}, "optim.learning_rate", "must be > 0"),
    ({"optim.learning_rate": "-1e-3"}, "optim.learning_rate", "must be > 0"),
    ({"model.dropout": "1.0"}, "model.dropout", r"\[0, 1\)"),
    ({"model.dropout": "-0.1"}, "model.dropout", r"\[0, 1\)"),
    ({"model.family": "transformer"}, "model.family", "valid choices: .*lstm"),
    ({"data.name": "mnist"}, "data.name", "valid: .*digits"),
    ({"data.task": "translation"}, "data.task", "valid choices: .*classification"),
    ({"optim.optimizer": "lion"}, "optim.optimizer", "valid choices: sgd, adam, adamw"),
    ({"model.bidirectional": "maybe"}, "model.bidirectional", "expected a bool"),
    ({"train.epochs": "0"}, "train.epochs", "must be >= 1"),
    ({"train.batch_size": "-4"}, "train.batch_size", "must be >= 1"),
    ({"data.val_fraction": "0.6", "data.test_fraction": "0.5"}, "data.test_fraction", "must be < 1"),
    ({"model.family": "esn", "model.esn.spectral_radius": "-1"}, "model.esn.spectral_radius", "must be > 0"),
    ({"model.family": "esn", "model.esn.leak_rate": "1.5"}, "model.esn.leak_rate", r"\(0, 1\]"),
    ({"model.family": "indrnn", "model.indrnn.recurrent_gamma": "0"}, "model.indrnn.recurrent_gamma", "must be > 0"),
    ({"train.device": "tpu"}, "train.device", "valid: auto, cpu, cuda"),
    ({"metric": "accuracy"}, "metric", "split/name"),
    ({"mode": "maximize"}, "mode", "valid choices: min, max"),
    ({"search.sampler": "bayes"}, "search.sampler", "valid choices: tpe"),
    ({"search.objectives": "val/acc:up"}, "search.objectives", "split/name:min|max"),
    # beyond float32: torch's first step failed with "value cannot be converted to type float without overflow"
    ({"optim.learning_rate": "1e40"}, "optim.learning_rate", r"at most 3.4e\+38 in size"),
    ({"optim.weight_decay": "inf"}, "optim.weight_decay", r"at most 3.4e\+38 in size"),
    ({"optim.grad_clip": "1e40", "optim.clip_mode": "value"}, "optim.grad_clip", r"at most 3.4e\+38 in size"),
    ({"model.family": "esn", "model.esn.spectral_radius": "1e40"}, "model.esn.spectral_radius", "in size"),
    # 10**9 seeds built 10**9 seed records (9 GB) before the first seed ran; 10**12 samples launched a search of
    # 10**12 trials; 2**64 seeds was refused naming `seed`
    ({"search.seeds": "1000000000"}, "search.seeds", r"\[1, 1000\]"),
    ({"search.seeds": "1001"}, "search.seeds", r"\[1, 1000\]"),
    ({"search.seeds": str(2**64)}, "search.seeds", r"\[1, 1000\]"),
    ({"search.samples": str(10**12)}, "search.samples", r"\[1, 1000000\]"),
    ({"search.samples": str(2**63 - 1)}, "search.samples", r"\[1, 1000000\]"),
    (
        {"search.concurrency": str(10**9)},
        "search.concurrency",
        r"must be in \[1, 10000\] \(trials at once",
    ),  # was taken
    ({"search.concurrency": "0"}, "search.concurrency", r"must be in \[1, 10000\]"),
]


@pytest.mark.parametrize("overrides,field,message", BAD)
def test_bad_values_name_the_field(overrides, field, message):
    with pytest.raises(ConfigError, match=message) as err:
        apply_overrides(Config(), overrides)
    assert err.value.field == field


@pytest.mark.parametrize("overrides,field,message", BAD[:8])
def test_cli_exit_code_2_before_any_work(overrides, field, message, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["run", "experiments/digits_lstm.py", "--out", str(out), "--set"]
    code = main(args + [f"{k}={v}" for k, v in overrides.items()])
    assert code == 2
    assert field in capsys.readouterr().err
    assert not out.exists(), "nothing may be created before the input is valid"


def test_set_without_equals_sign():
    with pytest.raises(ConfigError, match="key=value"):
        parse_set_args(["model.hidden_size"])


def test_unknown_experiment_lists_the_valid_ones(capsys):
    assert main(["run", "no_such_experiment"]) == 2
    assert "digits_lstm" in capsys.readouterr().err


def test_corrupted_experiment_file(tmp_path, capsys):
    bad = tmp_path / "broken.py"
    bad.write_text("from rnnlab.config import Config\nconfig = Config(\n")
    assert main(["run", str(bad)]) == 2
    assert "broken.py line" in capsys.readouterr().err


def test_existing_run_folder_is_never_overwritten(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "result.json").write_text("{}")
    assert main(["run", "experiments/digits_lstm.py", "--out", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert (out / "result.json").read_text() == "{}"


@pytest.mark.parametrize(
    "sets, field, reader",
    [  # before: each ran and the setting did nothing (digits_lstm: classification, adam, cosine, grad_clip 1)
        (["eval.free_run_warmup=50"], "eval.free_run_warmup", "eval.free_run_steps=0"),
        (["data.max_delay=30"], "data.max_delay", "memory_capacity"),
        (["data.seq_len=50"], "data.seq_len", "adding, copy, patterns"),
        (["data.horizon=3"], "data.horizon", "data.task=forecast"),
        (["data.window=20"], "data.window", "data.task=forecast or series or memory_capacity"),
        (["data.noise=0.3"], "data.noise", "data.task=recall"),
        (["optim.momentum=0.5"], "optim.momentum", "optim.optimizer=sgd"),
        (["optim.gamma=0.5"], "optim.gamma", "optim.schedule=step"),
        (["optim.grad_clip=0", "optim.clip_mode=value"], "optim.clip_mode", "optim.grad_clip > 0"),
        # a Hopfield pooling over the inputs themselves: a 3-layer one with dropout was the 1-layer one, recorded as 3
        (["model.family=hopfield_pool", "model.num_layers=3"], "model.num_layers", "hopfield.encoder=lstm or gru"),
        (["model.family=hopfield_pool", "model.dropout=0.5"], "model.dropout", "hopfield.encoder=lstm or gru"),
    ],
)
def test_a_setting_nothing_reads_is_refused_before_work(sets, field, reader, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["run", "digits_lstm", "--out", str(out), "--set", *sets, "tracking.mode=disabled"])
    err = capsys.readouterr().err
    assert code == 2 and f"{field}: is read by " in err and reader in err and "would be ignored" in err, err[-2000:]
    assert "Traceback" not in err and not out.exists()


def test_a_setting_its_reader_reads_is_accepted():
    """The same settings where they are read (and any setting at its default, wherever)."""
    sets = {
        "eval.free_run_steps": 10,
        "eval.free_run_warmup": 50,
        "optim.optimizer": "sgd",
        "optim.momentum": 0.5,
        "optim.schedule": "step",
        "optim.gamma": 0.5,
        "optim.clip_mode": "value",
        "optim.grad_clip": 1.0,
    }
    apply_overrides(Config(), sets)
    apply_overrides(Config(), {"data.name": "memory_capacity", "data.task": "memory_capacity", "data.max_delay": 30})
    apply_overrides(Config(), {"data.name": "mackey_glass", "data.task": "forecast", "data.horizon": 3})
    apply_overrides(Config(), {"data.source": "local", "data.name": "x.csv", "data.task": "series", "data.window": 9})


@pytest.mark.parametrize("text", ["a,b", "[a, b]", "['a', 'b']", '["a","b"]', " a , b "])
def test_a_list_field_from_set_as_a_list_is_written(text):
    """Before: "[a, b]" gave the tags '[a' and ' b]', without a word."""
    assert apply_overrides(Config(), {"tracking.tags": text}).tracking.tags == ["a", "b"]
