"""CLI habits: --set never takes the experiment, --version, python -m rnnlab, rnnlab fields, names resolved from any
folder, ints for floats, rnnlab sync asking for the W&B key first, -v/-q on every subcommand, a closed
stdout ending the command quietly."""

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rnnlab.cli import main
from rnnlab.config import Config, OptimConfig
from rnnlab.config.overrides import to_flat_dict
from rnnlab.fields import describe, format_sections, select
from rnnlab.registries import apply_overrides, validate

ROOT = Path(__file__).resolve().parent.parent
TINY = ["train.epochs=1", "train.max_batches=2", "data.num_samples=400"]


def test_set_before_the_experiment_takes_only_key_values(tmp_path, capsys):
    assert main(["run", "--set", *TINY, "digits_lstm", "--out", str(tmp_path / "a")]) == 0
    assert (tmp_path / "a" / "result.json").is_file()
    assert main(["run", "--set", "train.epochs=1", "digits_lstm", "extra", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "'digits_lstm' is not KEY=VALUE" in err and "put the experiment before --set" in err
    assert not (tmp_path / "b").exists()


def test_missing_experiment_is_a_clear_error(capsys):
    assert main(["run", "--set", "train.epochs=1"]) == 2
    assert "experiment: missing" in capsys.readouterr().err


def test_version_and_python_m(tmp_path):
    import rnnlab

    for cmd in (["rnnlab", "--version"], [sys.executable, "-m", "rnnlab", "--version"]):
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
        assert done.returncode == 0 and done.stdout.strip() == f"rnnlab {rnnlab.__version__}", done.stderr


def test_names_resolve_from_any_folder(tmp_path):
    """From a folder without experiments/, a name (and the repo-relative path of the README) finds the checkout's."""
    cmd = [
        sys.executable,
        "-m",
        "rnnlab",
        "-q",
        "run",
        "experiments/digits_lstm.py",
        "--set",
        *TINY,
        "tracking.mode=disabled",
        "--out",
        str(tmp_path / "r"),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # -q: results on stdout only
    assert done.stdout.startswith("result: ")


def test_fields_lists_every_config_path_with_type_default_and_meaning(capsys):
    assert main(["fields"]) == 0
    out = capsys.readouterr().out
    for path, value in to_flat_dict(Config()).items():
        assert any(line.split()[:1] == [path] and repr(value) in line for line in out.splitlines()), path
    line = next(line for line in out.splitlines() if line.split()[:1] == ["model.esn.density"])
    assert line.split()[1:3] == ["float", "0.1"] and "fraction of non-zero recurrent weights" in line
    assert "[model.esn]  Echo state network" in out
    assert main(["fields", "optim"]) == 0
    assert all(line.startswith(("[optim]", "  optim.")) for line in capsys.readouterr().out.splitlines())
    assert main(["fields", "nope"]) == 2 and "give a section (data, eval, model" in capsys.readouterr().err


@pytest.mark.parametrize("prefix", [".", "..", "nope."])
def test_fields_of_no_field_names_what_was_typed_and_what_is_valid(prefix, capsys):
    """`rnnlab fields .` said "no config field under ''" (the dot stripped): it names what was typed now."""
    assert main(["fields", prefix]) == 2
    err = capsys.readouterr().err
    assert f"no config field under {prefix!r}; give a section (data, eval, model" in err, err
    assert "a top-level field (metric, mode, name, seed)" in err and "Traceback" not in err


def test_fields_follow_a_config_class_wherever_it_lives():
    @dataclasses.dataclass
    class FamilyConfig:
        """A family's own knobs."""

        width: int = 3  # units per layer
        # how fast it forgets
        leak: float = 0.5

    @dataclasses.dataclass
    class Outer:
        family: FamilyConfig = dataclasses.field(default_factory=FamilyConfig)

    sections = describe(Outer)
    assert [(f.path, f.type, f.default, f.meaning) for f in sections[1].fields] == [
        ("family.width", "int", 3, "units per layer"),
        ("family.leak", "float", 0.5, "how fast it forgets"),
    ]
    assert sections[1].doc == "A family's own knobs." and format_sections(select(sections, "family.leak"))


def test_an_int_where_a_float_is_expected_is_accepted():
    cfg = validate(Config(optim=OptimConfig(weight_decay=0, learning_rate=1)))
    assert cfg.optim.weight_decay == 0.0 and type(cfg.optim.weight_decay) is float
    assert type(apply_overrides(Config(), {"optim.weight_decay": 0}).optim.weight_decay) is float


def test_sync_asks_for_the_key_once_before_any_upload(tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "trials" / "a" / "wandb" / "offline-run-1"
    run_dir.mkdir(parents=True)
    (run_dir / "run-1.wandb").write_bytes(b"")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    assert main(["sync", str(tmp_path)]) == 2
    printed = capsys.readouterr()
    assert printed.err.count("\n") == 1 and "WANDB_API_KEY: not set; 1 offline run(s)" in printed.err
    assert printed.out == ""


@pytest.mark.parametrize("flags", [["-q", "fields", "train.epochs"], ["fields", "-q", "train.epochs"]])
def test_verbosity_flags_go_before_or_after_the_subcommand(flags, capsys):
    assert main(flags) == 0
    assert "train.epochs" in capsys.readouterr().out


def test_main_leaves_logging_as_found(capsys):
    import logging

    logger = logging.getLogger("rnnlab")
    before = (logger.level, list(logger.handlers), logger.propagate)
    assert main(["-v", "fields", "seed"]) == 0
    assert (logger.level, list(logger.handlers), logger.propagate) == before


def tune_output(tmp_path: Path, *flags: str) -> list[str]:
    """What `rnnlab tune` prints (stdout and stderr) for a 2-trial search of search_digits, run as a user runs it."""
    tmp_path.mkdir()
    cmd = [
        sys.executable,
        "-m",
        "rnnlab",
        *flags,
        "tune",
        "search_digits",
        "--storage",
        str(tmp_path),
        "--name",
        "s",
        "--samples",
        "2",
        "--set",
        "train.epochs=2",
        "train.max_batches=4",
        "search.grace_period=1",
        "tracking.mode=offline",
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("WANDB_MODE", "WANDB_SILENT", "RAY_DEDUP_LOGS")}
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return (done.stdout + done.stderr).splitlines()


@pytest.mark.slow
def test_tune_prints_rnnlab_lines_by_default_and_the_libraries_with_v(tmp_path):
    quiet = tune_output(tmp_path / "default")
    noisy = (
        "Trial status",
        "Checkpoint successfully created",
        "wandb:",
        "tensorboard",
        "ExperimentalWarning",
        "W&B offline run saved",
        "INFO worker.py",
        "A new study created",
    )
    assert not [line for line in quiet if any(n in line for n in noisy)]
    assert sum(line.startswith("[search ") for line in quiet) == 4  # a start and an end per trial
    assert len(quiet) <= 30, "\n".join(quiet)
    best = next(line for line in quiet if line.startswith("best trial "))
    assert "search." not in best
    folder = tmp_path / "default" / "s"
    for command in ("report", "dashboard", "replay", "sync"):
        assert any(line.strip().startswith(f"rnnlab {command} {folder}") for line in quiet), command

    verbose = tune_output(tmp_path / "verbose", "-v")
    for shown in ("Trial status", "Checkpoint successfully created", "wandb:"):
        assert any(shown in line for line in verbose), shown
    assert len(verbose) > 2 * len(quiet)


def test_fields_document_the_data_and_evaluation_settings_of_issue_16(capsys):
    """Each field a researcher sets for local splits, numeric or series data and the evaluation protocols says what
    it means in `rnnlab fields` (before: data.name named no folder or mapping, data.window and data.normalize no
    series, the splits nothing)."""
    assert main(["fields"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.startswith("  ")}
    meaning = {
        "data.name": "folder",
        "data.val_split": "carved out of train",
        "data.test_split": "kept as it is",
        "data.window": "series",
        "data.normalize": "series",
        "data.sequence_columns": "numeric",
        "data.revision": "sha recorded",
        "data.max_delay": "memory_capacity",
        "eval.free_run_steps": "test/free_run_nrmse",
        "eval.free_run_warmup": "teacher-forced",
        "model.forget_bias": "forget gate",
        "model.chrono_init": "T_max",
    }
    for path, words in meaning.items():
        assert words in lines[path], (path, lines[path])


def test_resume_of_a_search_folder_refuses_a_name_or_storage_naming_another(tmp_path, capsys):
    search = tmp_path / "searches" / "s1"
    search.mkdir(parents=True)
    (search / "search.json").write_text("{}")  # refused before the file is read
    assert main(["tune", str(search), "--resume", "--name", "other"]) == 2
    err = capsys.readouterr().err
    assert "--name" in err and "other" in err
    assert main(["tune", str(search), "--resume", "--storage", str(tmp_path / "elsewhere")]) == 2
    assert "--storage" in capsys.readouterr().err
    assert sorted(p.name for p in search.iterdir()) == ["search.json"]  # nothing written


QUIET_EXIT = """
import gc, weakref
from rnnlab import console
console.quiet_worker(console.DEFAULT)
class Thing: pass
def raise_(kind):
    def callback(_):
        raise kind(1)
    return callback
for kind in (SystemExit, ValueError):
    thing = Thing()
    ref = weakref.ref(thing, raise_(kind))
    del thing
    gc.collect()
print("alive")
"""


def test_a_workers_unraisable_system_exit_goes_unsaid():
    """Ray's SIGTERM handler raises SystemExit wherever a worker is at the search's end, a weakref callback
    included, which printed "Exception ignored in ..." with a traceback on the driver's terminal (a resume's
    output, once). Other unraisable errors are still reported."""
    done = subprocess.run([sys.executable, "-c", QUIET_EXIT], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "alive", done.stderr
    assert "SystemExit" not in done.stderr and "ValueError: 1" in done.stderr, done.stderr


NOT_STDOUTS_PIPE = """
import sys
import rnnlab.cli as cli
def main():
    raise BrokenPipeError(32, "a worker's socket")
cli.main = main
sys.exit(cli.entry())
"""


@pytest.mark.parametrize("args", [["fields"], ["fields", "model"]])
def test_a_closed_stdout_ends_the_command_quietly(args):
    """`rnnlab fields | head -1` printed a BrokenPipeError traceback when head had gone before rnnlab wrote. The
    reader here is gone before the child starts: "read one line, then close" would let the child write its 15 kB
    into the pipe's buffer first and pass either way. `fields model` is short enough to wait in stdout's buffer
    until the last flush; `fields` is written at once."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        cmd = [sys.executable, "-m", "rnnlab.cli", *args]
        done = subprocess.run(cmd, stdout=writer, stderr=subprocess.PIPE, text=True, cwd=ROOT, timeout=120)
    finally:
        os.close(writer)
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
    assert done.returncode == 141  # 128 + SIGPIPE


def test_a_broken_pipe_that_is_not_stdouts_keeps_its_traceback():
    done = subprocess.run([sys.executable, "-c", NOT_STDOUTS_PIPE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "BrokenPipeError: [Errno 32] a worker's socket" in done.stderr, done.stderr
