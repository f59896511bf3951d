"""The series task: an input series to a target series step by step, from one long series or many, fit by a
reservoir over whole splits (with washout) or by gradient on windows."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnlab.cli import main
from rnnlab.config import Config, DataConfig, TrainConfig
from rnnlab.data import DATASETS, DataError
from rnnlab.models import model_config
from rnnlab.models.esn import ESNConfig
from rnnlab.registries import apply_overrides
from rnnlab.tasks import TASKS, load_task_data
from rnnlab.tasks.series import SeriesRegression
from rnnlab.trial import run_trial


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNLAB_CACHE", str(tmp_path / "cache"))


def linear_system(u: np.ndarray) -> np.ndarray:
    """y[t] = 0.5 u[t] + 0.3 u[t-1] - 0.2 u[t-3]: a driven linear filter an ESN identifies almost exactly."""
    y = 0.5 * u.copy()
    y[1:] += 0.3 * u[:-1]
    y[3:] -= 0.2 * u[:-3]
    return y


def one_series_csv(tmp_path, steps: int = 1000):
    u = np.random.default_rng(0).uniform(-1, 1, steps)
    path = tmp_path / "series.csv"
    rows = "\n".join(f"{float(a)!r},{float(b)!r}" for a, b in zip(u, linear_system(u)))
    path.write_text("inputs,target\n" + rows + "\n")
    return path, u, linear_system(u)


def many_series_jsonl(tmp_path, count: int = 40, steps: int = 50):
    rng = np.random.default_rng(1)
    path = tmp_path / "many.jsonl"
    with path.open("w") as f:
        for _ in range(count):
            u = rng.uniform(-1, 1, steps)
            f.write(json.dumps({"inputs": u.tolist(), "target": linear_system(u).tolist()}) + "\n")
    return path


def series_config(path, **data) -> DataConfig:
    return DataConfig(source="local", name=str(path), task="series", **data)


def test_one_long_series_is_cut_in_contiguous_splits_of_one_sequence(tmp_path):
    path, u, y = one_series_csv(tmp_path)
    data = load_task_data(series_config(path, normalize=False), 0)
    assert data.task == "series" and data.meta["series"] == "one"
    assert (data.input_size, data.output_size) == (1, 1)
    lengths = [len(split.lengths) for split in (data.train, data.val, data.test)]
    assert lengths == [1, 1, 1]
    train, val, test = (int(s.lengths[0]) for s in (data.train, data.val, data.test))
    assert (train, val, test) == (800, 100, 100)
    np.testing.assert_allclose(data.train.inputs[0, :, 0].numpy(), u[:800], rtol=1e-6)  # in order, unshuffled
    np.testing.assert_allclose(data.test.targets[0, :, 0].numpy(), y[900:], rtol=1e-6)


def test_many_series_keep_one_row_per_sequence_and_windows_cut_them(tmp_path):
    path = many_series_jsonl(tmp_path)
    whole = load_task_data(series_config(path, rows="series"), 0)
    assert whole.meta["series"] == "many" and whole.train.inputs.shape == (32, 50, 1)
    assert whole.train.targets.shape == (32, 50, 1)
    windows = load_task_data(series_config(path, rows="series", window=20), 0)
    assert windows.train.inputs.shape == (32 * 4, 20, 1)  # starts 0, 10, 20, 30 of each 50-step series
    torch.testing.assert_close(windows.train.inputs[1], whole.train.inputs[0, 10:30])
    stats = whole.meta["normalization"]["target"]  # targets standardised with train statistics, inputs not
    assert abs(float(whole.train.targets[whole.train.targets != 0].mean())) < 0.05 and stats["std"][0] > 0


def test_an_esn_identifies_a_driven_linear_system_over_the_whole_series(tmp_path):
    path, _, _ = one_series_csv(tmp_path)
    esn = ESNConfig(units=100, spectral_radius=0.5, leak_rate=1.0, input_scaling=0.2, washout=20)
    model = model_config("esn", esn=esn)
    cfg = Config(model=model, data=series_config(path), train=TrainConfig(epochs=1, dtype="float64"))
    cfg.metric = "val/nrmse"
    result = run_trial(cfg, None, tmp_path / "run")
    assert result["status"] == "completed"
    assert result["test/nrmse"] < 0.05, result  # a linear filter of 4 taps: the readout finds it


def test_a_gru_learns_the_system_on_windows(tmp_path):
    path = many_series_jsonl(tmp_path, count=64)
    cfg = Config(
        model=model_config("gru", hidden_size=16),
        data=series_config(path, rows="series", window=25),
        train=TrainConfig(epochs=8, batch_size=16),
    )
    cfg.optim.learning_rate = 1e-2
    result = run_trial(cfg, None, tmp_path / "run")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["train/loss"] < 0.5 * rows[0]["train/loss"]
    assert result["test/nrmse"] < 0.5, result


def test_bad_series_data_is_refused_naming_the_field(tmp_path):
    path = tmp_path / "bad.jsonl"
    good, bad = {"inputs": [0.1, 0.2, 0.3], "target": [1.0, 2.0, 3.0]}, {"inputs": [0.1, 0.2], "target": [1.0]}
    path.write_text("".join(json.dumps(row) + "\n" for row in [good] * 5 + [bad] + [good] * 14))
    with pytest.raises(DataError) as err:
        load_task_data(series_config(path, rows="series"), 0)
    assert err.value.field in ("data.target_column", "data.name")
    path, _, _ = one_series_csv(tmp_path, steps=100)
    with pytest.raises(DataError, match="no column 'y'") as err:
        load_task_data(series_config(path, target_column="y"), 0)
    assert err.value.field == "data.target_column"
    with pytest.raises(DataError) as err:
        load_task_data(series_config(path, window=500), 0)
    assert err.value.field == "data.window"


def test_the_series_task_is_one_registry_entry():
    task = TASKS["series"]
    assert task.per_step and task.chronological and not task.stream
    assert task.directions["nrmse"] == "min"


def test_narma10_rows_follow_the_recurrence_with_the_target_one_step_ahead():
    rows = DATASETS["narma10"](DataConfig(name="narma10", task="series", num_samples=300), 0)
    u, y = np.array(rows["inputs"]), np.array(rows["target"])  # row t: u[t] and y[t+1]
    assert len(u) == len(y) == 300 and u.min() >= 0 and u.max() <= 0.5
    t = np.arange(10, 300)
    window = np.array([y[i - 10 : i].sum() for i in t])  # y[t-9..t] in the system's time is rows t-10..t-1
    expected = 0.3 * y[t - 1] + 0.05 * y[t - 1] * window + 1.5 * u[t - 9] * u[t] + 0.1
    np.testing.assert_allclose(y[t], expected, rtol=1e-12)


def test_a_task_added_by_one_registry_entry_runs_end_to_end(tmp_path, monkeypatch):
    """What adding a task takes: its class (with its preparer) and its TASKS entry; config checks, data loading,
    the model's head, the loop and the record all find it through the registry."""

    class SeriesMaxError(SeriesRegression):
        name = "series_max_error"
        directions = {**SeriesRegression.directions, "max_error": "min"}

        def accumulate(self, sums, outputs, targets, lengths, warmup=0):
            z, y = self.select(outputs, targets, lengths, warmup)
            sums["max_error"] = max(sums.get("max_error", 0.0), float((z - y).abs().max()) if len(y) else 0.0)
            return super().accumulate(sums, outputs, targets, lengths, warmup)

        def summarise(self, sums, loss, n, char_level):
            return {**super().summarise(sums, loss, n, char_level), "max_error": sums.get("max_error", 0.0)}

    monkeypatch.setitem(TASKS, "series_max_error", SeriesMaxError())
    path, _, _ = one_series_csv(tmp_path)
    esn = ESNConfig(units=50, spectral_radius=0.5, leak_rate=1.0, input_scaling=0.2, washout=20)
    cfg = Config(model=model_config("esn", esn=esn), data=series_config(path), train=TrainConfig(epochs=1))
    cfg = apply_overrides(cfg, {"data.task": "series_max_error", "metric": "val/max_error"})
    result = run_trial(cfg, None, tmp_path / "run")
    assert result["status"] == "completed" and 0 < result["test/max_error"] < 0.5, result
    assert json.loads((tmp_path / "run" / "result.json").read_text())["test/max_error"] == result["test/max_error"]


def test_no_module_outside_the_tasks_compares_a_task_name():
    """Knowledge of a task lives in its object: no `task == "lm"` anywhere else in the package."""
    package = Path(__file__).resolve().parents[1] / "rnnlab"
    names = set(TASKS)
    found = []
    for path in package.rglob("*.py"):
        if path.parent.name == "tasks":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                literals = [n for n in [node.left, *node.comparators] if isinstance(n, ast.Constant)]
                literals += [
                    e for n in node.comparators if isinstance(n, (ast.Tuple, ast.List, ast.Set)) for e in n.elts
                ]
                if any(isinstance(c, ast.Constant) and c.value in names for c in literals):
                    found.append(f"{path.relative_to(package)}:{node.lineno}")
    assert not found, found


def test_the_cli_runs_series_regression_on_a_local_file(tmp_path, monkeypatch):
    """Issue 16's report: an input series to a target series from the CLI, with no hand-built TaskData."""
    path, _, _ = one_series_csv(tmp_path)
    monkeypatch.chdir(tmp_path)
    sets = ["data.source=local", f"data.name={path}", "model.esn.washout=20", "tracking.mode=disabled"]
    args = ["run", "esn_narma10", "--out", str(tmp_path / "run"), *(x for s in sets for x in ("--set", s))]
    assert main(args) == 0
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["status"] == "completed" and result["test/nrmse"] < 0.05, result


def test_several_input_columns_are_stacked_per_step(tmp_path):
    """One long CSV series driven by two columns: data.sequence_columns names them, as for any numeric input."""
    u = np.random.default_rng(2).uniform(-1, 1, (400, 2))
    y = linear_system(u[:, 0]) - 0.5 * u[:, 1]
    path = tmp_path / "two.csv"
    path.write_text("a,b,y\n" + "".join(f"{float(p)!r},{float(q)!r},{float(r)!r}\n" for (p, q), r in zip(u, y)))
    data = load_task_data(series_config(path, sequence_columns=["a", "b"], target_column="y", normalize=False), 0)
    assert data.input_size == 2 and data.train.inputs.shape == (1, 320, 2)
    np.testing.assert_allclose(data.train.inputs[0].numpy(), u[:320], rtol=1e-6)
    with pytest.raises(DataError, match="no column 'c'") as err:
        load_task_data(series_config(path, sequence_columns=["a", "c"], target_column="y"), 0)
    assert err.value.field == "data.sequence_columns"


def test_many_series_take_text_inputs_as_numeric_sequences(tmp_path):
    rng = np.random.default_rng(3)
    path = tmp_path / "text.jsonl"
    with path.open("w") as f:
        for _ in range(20):
            u = rng.uniform(-1, 1, 12)
            f.write(json.dumps({"u": " ".join(map(str, u)), "target": linear_system(u).tolist()}) + "\n")
    data = load_task_data(series_config(path, sequence_columns=["u"], normalize=False), 0)
    assert data.meta["series"] == "many" and data.train.inputs.shape == (16, 12, 1)
    first = json.loads(path.read_text().splitlines()[0])
    np.testing.assert_allclose(data.train.inputs[0, :, 0].numpy(), np.array(first["u"].split(), float), rtol=1e-6)


def vector_series_jsonl(tmp_path, steps: int = 600):
    """One long series of 2-wide inputs and 2-wide targets, a row per step: y[t] = (0.5 u0[t-1], 0.3 u1[t])."""
    u = np.random.default_rng(4).uniform(-1, 1, (steps, 2))
    y = np.stack([np.r_[0.0, 0.5 * u[:-1, 0]], 0.3 * u[:, 1]], axis=1)
    path = tmp_path / "vectors.jsonl"
    path.write_text("".join(json.dumps({"inputs": a.tolist(), "target": b.tolist()}) + "\n" for a, b in zip(u, y)))
    return path, u, y


def test_equal_length_lists_in_input_and_target_are_refused_until_data_rows_names_the_layout(tmp_path, capsys):
    """Before: one long series of 2-wide vectors was read as 480 series of 2 steps (input_size 1), silently."""
    path, u, y = vector_series_jsonl(tmp_path)
    out = tmp_path / "run"
    sets = ["data.source=local", f"data.name={path}", "model.esn.washout=20", "tracking.mode=disabled"]
    assert main(["run", "esn_narma10", "--out", str(out), "--set", *sets]) == 2
    err = capsys.readouterr().err
    assert "data.rows" in err and "2 numbers" in err and "data.rows=steps" in err and "Traceback" not in err
    assert not out.exists()
    steps = load_task_data(series_config(path, rows="steps", normalize=False), 0)
    assert steps.meta["series"] == "one" and steps.train.inputs.shape == (1, 480, 2) and steps.output_size == 2
    np.testing.assert_allclose(steps.train.targets[0].numpy(), y[:480], rtol=1e-6)
    many = load_task_data(series_config(path, rows="series", normalize=False), 0)
    assert many.meta["series"] == "many" and many.train.inputs.shape == (480, 2, 1)
    assert main(["run", "esn_narma10", "--out", str(out), "--set", *sets, "data.rows=steps"]) == 0
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "completed" and result["test/nrmse"] < 0.05, result  # a delay and a gain: found


def test_auto_reads_every_unambiguous_layout_from_the_column_types(tmp_path):
    rows = {
        "scalars.jsonl": ([{"inputs": 0.1 * i, "target": 0.2 * i} for i in range(50)], "one", (1, 1)),
        "vector_in.jsonl": ([{"inputs": [0.1, 0.2, 0.3], "target": 0.5 * i} for i in range(50)], "one", (3, 1)),
        "other_widths.jsonl": ([{"inputs": [0.1, 0.2, 0.3], "target": [i, 1.0]} for i in range(50)], "one", (3, 2)),
        "vector_steps.jsonl": ([{"inputs": [[0.1, 0.2]] * 5, "target": [i] * 5} for i in range(50)], "many", (2, 1)),
    }
    for name, (records, layout, sizes) in rows.items():
        path = tmp_path / name
        path.write_text("".join(json.dumps(r) + "\n" for r in records))
        data = load_task_data(series_config(path), 0)
        assert (data.meta["series"], (data.input_size, data.output_size)) == (layout, sizes), name
    with pytest.raises(DataError, match="row 0 of column 'target' holds 0.0, not a list") as err:
        load_task_data(series_config(tmp_path / "scalars.jsonl", rows="series"), 0)
    assert err.value.field == "data.target_column"
