"""A catalogue of bad inputs (configs, CLI flags, search spaces, data): each is refused before Ray starts.

Every case runs the real CLI in-process and checks: exit code 2, a message naming the field, Ray never initialised
(no session folder in a private RAY_TMPDIR), and nothing already in the output folder touched.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import pytest

from rnnlab.cli import main

ROOT = Path(__file__).resolve().parent.parent
SEARCH = str(ROOT / "experiments" / "search_digits.py")
RUN = str(ROOT / "experiments" / "digits_lstm.py")
ADDING = ["data.name=adding", "data.task=regression", "metric=val/loss", "mode=min"]  # RUN on a generated task
BASE = """
from rnnlab.config import Config, DataConfig, SearchConfig, TrainConfig
from rnnlab.models import model_config

config = Config(metric="val/acc", mode="max", model=model_config("gru", hidden_size=8),
                data=DataConfig(source="builtin", name="digits", task="classification"),
                train=TrainConfig(epochs=1, max_batches=1), search=SearchConfig(samples=2))
"""
SPACES = {  # name: (body of search_space(trial), the field the error must name)
    "inverted_range": (
        'return {"optim.learning_rate": trial.suggest_float("optim.learning_rate", 1e-1, 1e-3)}',
        "search_space",
    ),
    "unknown_key": (
        'return {"optim.learning_rat": trial.suggest_float("optim.learning_rat", 1e-3, 1e-1)}',
        "optim.learning_rat",
    ),
    "wrong_type": (
        'return {"model.hidden_size": trial.suggest_categorical("model.hidden_size", ["big", "small"])}',
        "model.hidden_size",
    ),
    "invalid_value": ('return {"model.dropout": trial.suggest_float("model.dropout", 1.0, 2.0)}', "model.dropout"),
    "not_a_dict": ('return [trial.suggest_int("model.num_layers", 1, 2)]', "search_space"),
    "empty_choices": ('return {"model.family": trial.suggest_categorical("model.family", [])}', "search_space"),
    "unknown_family": (
        'return {"model.family": trial.suggest_categorical("model.family", ["lstm", "mamba"])}',
        "model.family",
    ),
    "raises": ('raise KeyError("oops")', "search_space"),
    "suggests_nothing": ("return {}", "search_space"),  # every trial the same config: was a silent "search"
    "key_not_a_path": ('return {1: trial.suggest_int("model.num_layers", 1, 2)}', "1"),  # was an AttributeError
    "param_not_a_path": (  # Ray hands the trial the Optuna names too: "hidden" failed every trial, after launch
        'return {"model.hidden_size": trial.suggest_int("hidden", 4, 8)}',
        "'hidden'",
    ),
    "returns_another_value": (  # the trial ran 16 while the study, the report and best_overrides.txt said 4
        'return {"model.hidden_size": 2 ** trial.suggest_int("model.hidden_size", 2, 4)}',
        "search_space",
    ),
}


def experiment_file(folder: Path, space: str | None = None, base: str = BASE) -> str:
    path = folder / f"exp_{abs(hash((space, base))) % 10**8}.py"
    body = base + (f"\n\ndef search_space(trial):\n    {space}\n" if space else "")
    path.write_text(body)
    return str(path)


def write_csv(path: Path, rows: list[str]) -> str:
    path.write_text("\n".join(rows) + ("\n" if rows else ""))
    return str(path)


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def cases(tmp: Path) -> list[tuple[str, list[str], str]]:
    """(id, argv, field named in the message). `tmp` holds the data files and experiment files."""
    store = str(tmp / "store")
    tune = ["tune", SEARCH, "--storage", store, "--name", "new"]
    run = ["run", RUN, "--out", str(tmp / "store" / "run-new"), "--set", "train.epochs=1"]
    csv_ok = write_csv(tmp / "ok.csv", ["text,label", *[f"ab{i % 3},{i % 2}" for i in range(20)]])
    unique_labels = write_csv(tmp / "unique.csv", ["text,label", *[f"ab{i},{i}" for i in range(10)]])
    empty = write_csv(tmp / "empty.csv", [])
    header_only = write_csv(tmp / "header.csv", ["text,label"])
    negative_ids = write_jsonl(tmp / "neg.jsonl", [{"tokens": [1, 2, -3], "label": [0, 1, 0]}] * 10)
    unseen_tags = write_jsonl(tmp / "tags.jsonl", [{"tokens": ["a", "b"], "label": [i, i + 100]} for i in range(10)])
    ragged_tags = write_jsonl(tmp / "ragged.jsonl", [{"tokens": ["a", "b"], "label": [0]}] * 10)
    no_tags = write_jsonl(
        tmp / "no_tags.jsonl", [{"tokens": ["a", "b"], "label": [0, 1] if i else None} for i in range(10)]
    )
    floats_csv = write_csv(tmp / "floats.csv", ["x,label", *[f'"0.{i} 1.5 -2",{i % 2}' for i in range(20)]])
    words_csv = write_csv(tmp / "words.csv", ["inputs,label", *[f'"0.{i} one",{i % 2}' for i in range(20)]])
    local = ["data.source=local", "data.task=classification"]
    blocker = tmp / "a_file"
    blocker.write_text("x")
    (tmp / "no_config.py").write_text("x = 1\n")
    (tmp / "syntax.py").write_text("from rnnlab.config import Config\nconfig = Config(\n")
    (tmp / "exits.py").write_text("import sys\nsys.exit(3)\n")  # was exit 3 without a word
    (tmp / "config_raises.py").write_text("def config():\n    raise ValueError('no data here')\n")  # a traceback
    no_space = experiment_file(tmp)
    (tmp / "torn.yaml").write_text("available_node_types: [\n")
    (tmp / "list.yaml").write_text("- head\n- worker\n")
    preflight = ["preflight", SEARCH, "--storage", store, "--cluster-config"]
    out = [
        ("samples_0", [*tune, "--samples", "0"], "--samples"),
        ("samples_huge", [*tune, "--samples", str(10**12)], "--samples"),  # was a search of 10**12 trials
        ("samples_huge_set", [*tune, "--set", f"search.samples={2**63 - 1}"], "search.samples"),
        ("seeds_huge", [*run, "search.seeds=1000000000"], "search.seeds"),  # 9 GB of seed records, then 10**9 runs
        ("cluster_config_missing", [*preflight, str(tmp / "nope.yaml")], "--cluster-config"),  # all 3: tracebacks
        ("cluster_config_a_folder", [*preflight, str(tmp)], "--cluster-config"),
        ("cluster_config_torn", [*preflight, str(tmp / "torn.yaml")], "--cluster-config"),
        ("cluster_config_not_a_mapping", [*preflight, str(tmp / "list.yaml")], "--cluster-config"),
        ("concurrency_negative", [*tune, "--concurrency", "-1"], "--concurrency"),
        ("concurrency_huge", [*tune, "--concurrency", str(10**9)], "--concurrency"),  # was taken and recorded
        ("concurrency_huge_set", [*tune, "--set", f"search.concurrency={10**9}"], "search.concurrency"),
        ("storage_bad_scheme", ["tune", SEARCH, "--storage", "nosuchscheme://b/p", "--name", "x"], "--storage"),
        ("storage_under_a_file", ["tune", SEARCH, "--storage", str(blocker / "sub"), "--name", "x"], "--storage"),
        ("set_unknown_field", [*tune, "--set", "model.hiden_size=8"], "model.hiden_size"),
        ("set_wrong_type", [*tune, "--set", "model.hidden_size=big"], "model.hidden_size"),
        # was: silently ignored, each trial trained (and recorded) the space's value
        ("set_a_searched_field", [*tune, "--set", "optim.learning_rate=0.01"], "optim.learning_rate"),
        ("set_without_equals", [*tune, "--set", "model.hidden_size"], "model.hidden_size"),
        ("set_key_twice", [*tune, "--set", "model.hidden_size=8", "model.hidden_size=16"], "model.hidden_size"),
        ("set_and_flag_disagree", [*tune, "--device", "cpu", "--set", "train.device=cuda"], "train.device"),
        ("samples_flag_and_set", [*tune, "--samples", "3", "--set", "search.samples=5"], "search.samples"),
        ("resume_nothing", ["tune", str(tmp / "store" / "missing"), "--resume"], "--resume"),
        ("name_escapes_storage", ["tune", SEARCH, "--storage", store, "--name", "../escaped"], "--name"),
        ("name_empty", ["tune", SEARCH, "--storage", store, "--name", ""], "--name"),  # was a NAME-TIME search
        ("name_taken", ["tune", SEARCH, "--storage", store, "--name", "old"], "--name"),
        ("corrupted_search_json", ["tune", str(tmp / "store" / "torn"), "--resume"], "search"),
        ("sampler_unknown", [*tune, "--set", "search.sampler=bayes"], "search.sampler"),
        ("grid_of_a_continuous_space", [*tune, "--set", "search.sampler=grid"], "search.sampler"),  # after Ray, and
        # its search.json was left: the same command then said the --name held a search
        ("scheduler_pbt", [*tune, "--set", "search.scheduler=pbt"], "search.scheduler"),
        ("memory_cap_negative", [*tune, "--set", "search.memory_per_trial_mb=-5"], "search.memory_per_trial_mb"),
        ("cpus_zero", [*tune, "--set", "search.cpus_per_trial=0"], "search.cpus_per_trial"),
        ("objective_bad", [*tune, "--set", "search.objectives=val/acc:up"], "search.objectives"),
        ("objective_twice", [*tune, "--set", "search.objectives=val/loss:min,val/loss:min"], "search.objectives"),
        ("objective_is_metric", [*tune, "--set", "search.objectives=val/acc:max"], "search.objectives"),
        ("metric_not_reported", [*tune, "--set", "metric=val/bleu"], "metric"),
        ("no_search_space", ["tune", no_space, "--storage", store, "--name", "n"], "search_space"),
        ("experiment_unknown", ["tune", "no_such_experiment", "--storage", store], "experiment"),
        ("experiment_syntax_error", ["tune", str(tmp / "syntax.py"), "--storage", store], "experiment"),
        ("experiment_without_config", ["run", str(tmp / "no_config.py")], "experiment"),
        ("experiment_exits", ["tune", str(tmp / "exits.py"), "--storage", store], "experiment"),
        ("experiment_config_raises", ["run", str(tmp / "config_raises.py")], "experiment"),
        ("task_mismatch", [*tune, "--set", "data.task=regression", "metric=val/loss", "mode=min"], "data.task"),
        ("fractions_over_1", [*run, "data.val_fraction=0.6", "data.test_fraction=0.5"], "data.test_fraction"),
        ("missing_file", [*run, *local, f"data.name={tmp / 'nope.csv'}"], "data.name"),
        ("empty_file", [*run, *local, f"data.name={empty}"], "data.name"),
        ("header_only_file", [*run, *local, f"data.name={header_only}"], "data.name"),
        ("missing_column", [*run, *local, f"data.name={csv_ok}", "data.label_column=stars"], "data.label_column"),
        ("unseen_label", [*run, *local, f"data.name={unique_labels}"], "data.label_column"),
        ("local_split_missing", [*run, *local, f"data.name={csv_ok}", "data.test_split=test"], "data.test_split"),
        ("numbers_as_text", [*run, *local, f"data.name={floats_csv}", "data.text_column=x"], "data.text_column"),
        (
            "tokens_column_ignored",
            [*run, *local, f"data.name={floats_csv}", "data.tokens_column=x"],
            "data.tokens_column",
        ),
        ("sequence_not_numbers", [*run, *local, f"data.name={words_csv}"], "data.sequence_columns"),
        (
            "sequence_column_missing",
            [*run, *local, f"data.name={floats_csv}", "data.sequence_columns=x,y"],
            "data.sequence_columns",
        ),
        (
            "negative_token_ids",
            [*run, "data.source=local", "data.task=tagging", f"data.name={negative_ids}"],
            "data.tokens_column",
        ),
        (
            "unseen_tag",
            [*run, "data.source=local", "data.task=tagging", f"data.name={unseen_tags}"],
            "data.label_column",
        ),
        (
            "ragged_tags",
            [*run, "data.source=local", "data.task=tagging", f"data.name={ragged_tags}"],
            "data.label_column",
        ),
        (  # was a TypeError from len(None)
            "no_tags",
            [*run, "data.source=local", "data.task=tagging", f"data.name={no_tags}"],
            "data.label_column",
        ),
        ("hub_unreachable", [*run, "data.source=hub", "data.name=nobody/no-such-dataset-xyz"], "data.name"),
        ("out_unwritable", ["run", RUN, "--out", str(blocker / "run")], "--out"),
        ("out_holds_a_run", ["run", RUN, "--out", str(tmp / "store" / "run-old")], "--out"),
        ("resume_without_out", ["run", RUN, "--resume"], "needs --out"),  # was: a new runs/NAME-TIME has no checkpoints
        ("resume_without_checkpoints", ["run", RUN, "--out", str(tmp / "store" / "run-old"), "--resume"], "--resume"),
        ("device_unknown", [*run, "train.device=tpu"], "train.device"),
        ("device_malformed", [*run, "train.device=cudax"], "train.device"),  # was torch's RuntimeError
        ("device_absent", [*run, "train.device=cuda:99"], "train.device"),  # was an AssertionError, folder written
        ("seed_negative", [*run, "seed=-1"], "seed"),  # was numpy's ValueError from the data split
        ("max_length_negative", [*run, "data.max_length=-1"], "data.max_length"),  # these 3 named another field
        ("threads_negative", [*run, "train.threads=-1"], "train.threads"),
        ("max_failures_negative", [*tune, "--set", "search.max_failures=-1"], "search.max_failures"),
        ("name_a_path", ["run", RUN, "--set", "name=../../escaped"], "name"),  # was runs/../../escaped-TIME
        ("cache_dir_a_file", [*run, f"data.cache_dir={blocker}"], "data.cache_dir"),  # was FileExistsError
        # integers beyond what torch and numpy hold or allocate: tracebacks (a TypeError, 'array is too big',
        # 'Overflow when unpacking long'), a libgomp abort (threads) and a build that never ended (layers)
        ("width_2_62", [*run, f"model.hidden_size={2**62}"], "model.hidden_size"),
        ("esn_units_2_40", [*run, "model.family=esn", f"model.esn.units={2**40}"], "model.esn.units"),
        ("layers_10_8", [*run, "model.num_layers=100000000"], "model.num_layers"),
        ("threads_2_31", [*run, f"train.threads={2**31 - 1}"], "train.threads"),
        ("int_beyond_int64", [*run, f"data.max_length={2**70}"], "data.max_length"),
        ("samples_2_62", [*run, *ADDING, f"data.num_samples={2**62}"], "data.num_samples"),
        ("memory_cap_2_62", [*tune, "--set", f"search.memory_per_trial_mb={2**62}"], "search.memory_per_trial_mb"),
        ("time_limit_inf", [*tune, "--set", "search.trial_time_limit_s=inf"], "search.trial_time_limit_s"),
        ("time_limit_1e300", [*tune, "--set", "search.trial_time_limit_s=1e300"], "search.trial_time_limit_s"),
        ("cpus_inf", [*tune, "--set", "search.cpus_per_trial=inf"], "search.cpus_per_trial"),
        ("device_index_128", [*run, "train.device=cuda:128"], "train.device"),  # torch's cuda:-128: AssertionError
        ("device_index_huge", [*run, f"train.device=cuda:{10**20}"], "train.device"),  # torch's RuntimeError
        # W&B refuses these at its start, and the run trained on without its W&B record (a warning only)
        ("project_with_slash", [*run, "tracking.project=team/proj"], "tracking.project"),
        ("tag_too_long", [*run, f"tracking.tags={'t' * 65}"], "tracking.tags"),
        ("group_too_long", [*run, f"tracking.group={'g' * 129}"], "tracking.group"),
        # a local data path that is a kernel pseudo-filesystem: /proc/self/root leads back to /, the walk hung
        ("data_in_proc", [*run, *local, "data.name=/proc/self"], "data.name"),
        ("data_glob_in_proc", [*run, *local, "data.name=/proc/**/*.csv"], "data.name"),
        # empty strings: a split named '', W&B's default project, the current folder as --out or --storage
        ("val_split_empty", [*run, "data.val_split="], "data.val_split"),
        ("project_empty", [*run, "tracking.project="], "tracking.project"),
        ("label_column_empty", [*run, "data.label_column="], "data.label_column"),
        ("out_empty", ["run", RUN, "--out", ""], "--out"),  # ran in the current folder
        ("out_blank", ["run", RUN, "--out", "  "], "--out"),
        ("storage_empty", ["tune", SEARCH, "--storage", "", "--name", "x"], "--storage"),
        ("address_empty", [*tune, "--address", ""], "--address"),
        ("experiment_empty", ["run", ""], "experiment"),
        ("replay_trial_empty", ["replay", str(tmp / "store" / "old"), ""], "trial_id"),
        ("sync_path_empty", ["sync", ""], "path"),  # synced the current folder
        ("sync_timeout_negative", ["sync", store, "--timeout", "-1"], "--timeout"),
        ("sync_timeout_nan", ["sync", store, "--timeout", "nan"], "--timeout"),
        ("sync_timeout_inf", ["sync", store, "--timeout", "inf"], "--timeout"),
        ("sync_timeout_1e10", ["sync", store, "--timeout", "1e10"], "--timeout"),  # subprocess's OverflowError
    ]
    for name, (body, field) in SPACES.items():
        out.append((f"space_{name}", ["tune", experiment_file(tmp, body), "--storage", store, "--name", "s"], field))
    return out


def case_ids() -> list[str]:
    with tempfile.TemporaryDirectory() as folder:
        return [c[0] for c in cases(Path(folder))]


CASE_IDS = case_ids()


@pytest.fixture
def world(tmp_path, monkeypatch):
    """A storage folder that already holds a search, a run and a torn search.json; a private Ray temp dir."""
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "store"
    (store / "old").mkdir(parents=True)
    (store / "old" / "search.json").write_text(
        json.dumps({"experiment": SEARCH, "name": "old", "storage": str(store), "folder": str(store / "old")})
    )
    (store / "run-old").mkdir()
    (store / "run-old" / "result.json").write_text('{"status": "completed"}')
    (store / "torn").mkdir()
    (store / "torn" / "search.json").write_text('{"experiment": "x", "na')
    ray_tmp = tmp_path / "ray-tmp"
    ray_tmp.mkdir()
    monkeypatch.setenv("RAY_TMPDIR", str(ray_tmp))
    monkeypatch.setenv("WANDB_MODE", "offline")
    return tmp_path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("index", range(len(CASE_IDS)), ids=CASE_IDS)
def test_bad_input_is_refused_before_ray_starts(index, world, capsys):
    import ray

    name, argv, field = cases(world)[index]
    before = snapshot(world / "store")
    t0 = time.time()
    code = main(argv)
    elapsed = time.time() - t0
    err = capsys.readouterr().err
    assert code == 2, f"{name}: exit {code}\n{err[-2000:]}"
    assert field in err, f"{name}: the message should name {field!r}: {err[-1000:]}"
    assert err.count("\n") <= 3 and "Traceback" not in err, f"{name}: one clear line, not a traceback: {err}"
    assert not ray.is_initialized() and not list((world / "ray-tmp").rglob("session_*")), f"{name}: Ray started"
    assert snapshot(world / "store") == before, f"{name}: the output folder changed"
    assert not (world / "store" / "new").exists() and not (world / "store" / "run-new").exists()
    assert elapsed < 30, f"{name}: took {elapsed:.1f} s"


def test_catalogue_size():
    assert len(set(CASE_IDS)) == len(CASE_IDS) >= 30
