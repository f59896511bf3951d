"""`rnnlab run --resume` checks before it writes: a config that changes what was computed, changed data, or no valid
checkpoint is refused (exit 2, fields named, the folder untouched); fields that extend or observe a run may change."""

import hashlib
import json
from pathlib import Path

import pytest

from rnnlab.cli import main

ROOT = Path(__file__).resolve().parent.parent
DIGITS = str(ROOT / "experiments" / "digits_lstm.py")
GRU = str(ROOT / "experiments" / "digits_gru.py")
BASE = ["train.epochs=2", "train.max_batches=2", "tracking.mode=disabled"]


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".rnnlab.lock"
    }


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("resume") / "run"
    assert main(["run", DIGITS, "--out", str(out), "--set", *BASE]) == 0
    return out


@pytest.mark.parametrize(
    "argv, fields",
    [
        ([DIGITS, "--set", *BASE, "model.hidden_size=32"], ["model.hidden_size (64 -> 32)"]),
        ([DIGITS, "--set", *BASE, "seed=3"], ["seed (0 -> 3)"]),
        ([GRU, "--set", *BASE], ["model.family ('lstm' -> 'gru')"]),
        (
            [DIGITS, "--set", *BASE, "data.val_fraction=0.2", "optim.learning_rate=0.01"],
            ["data.val_fraction (0.1 -> 0.2)", "optim.learning_rate"],
        ),
        # before: accepted (search.* may change); seed 0 retrained from scratch into seed_0/ beside the one-seed
        # record, and result.json became a mean over seeds (resumed 2 -> 1: a lone seed beside seed_0/, seed_1/)
        ([DIGITS, "--set", *BASE, "search.seeds=2"], ["search.seeds (1 -> 2)"]),
    ],
    ids=["width", "seed", "experiment", "data_and_optim", "seeds"],
)
def test_resume_that_would_change_the_computation_is_refused(finished_run, capsys, argv, fields):
    before = snapshot(finished_run)
    code = main(["run", *argv, "--out", str(finished_run), "--resume"])
    err = capsys.readouterr().err
    assert code == 2 and "--resume" in err and "Traceback" not in err
    for field in fields:
        assert field in err
    assert snapshot(finished_run) == before  # config.json, provenance.json, metrics.jsonl untouched


def test_resume_may_extend_and_observe(finished_run, tmp_path, capsys):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    code = main(
        [
            "run",
            DIGITS,
            "--out",
            str(out),
            "--resume",
            "--set",
            *[item for item in BASE if not item.startswith("train.epochs=")],  # each --set key once
            "train.epochs=3",
            "train.patience=5",
            "train.threads=1",
        ]
    )
    assert code == 0, capsys.readouterr().err
    epochs = [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]


@pytest.mark.parametrize("damage", ["corrupt", "empty"])
def test_resume_without_a_valid_checkpoint_is_refused(finished_run, tmp_path, capsys, damage):
    import shutil

    out = tmp_path / "run"
    shutil.copytree(finished_run, out)
    for checkpoint in (out / "checkpoints").iterdir():
        if damage == "corrupt":
            state = checkpoint / "state.pt"
            state.write_bytes(state.read_bytes()[:-10] + b"0123456789")
        else:
            shutil.rmtree(checkpoint)
    before = snapshot(out)
    code = main(["run", DIGITS, "--out", str(out), "--resume", "--set", *BASE])
    err = capsys.readouterr().err
    assert code == 2 and "nothing valid to continue from" in err and "delete" in err
    assert snapshot(out) == before  # metrics.jsonl not rewritten, no retraining from epoch 1


def test_resume_with_changed_data_is_refused(tmp_path, capsys):
    data = tmp_path / "reviews.csv"
    data.write_text((ROOT / "experiments" / "data" / "reviews.csv").read_text())
    argv = [str(ROOT / "experiments" / "text_reviews_csv.py"), "--set", *BASE, f"data.name={data}"]
    out = tmp_path / "run"
    assert main(["run", *argv, "--out", str(out)]) == 0
    data.write_text(data.read_text() + "an extra review that changes the data,positive\n")
    before = snapshot(out)
    assert main(["run", *argv, "--out", str(out), "--resume"]) == 2
    assert "the data changed" in capsys.readouterr().err
    assert snapshot(out) == before
