"""`rnnlab report`: figures, tables, family comparison with confidence intervals, failures as lines; seed replicates;
the search's W&B Table (offline, read back from the run's files); live search progress.

Fast tests build a search folder with Optuna directly (a real journal, trial folders as run_trial leaves them); the
slow test runs a real small search with `search.seeds=2` on a local Ray and reports it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
from PIL import Image

from rnnlab.cli import main
from rnnlab.replicates import mean_rows
from rnnlab.report import noise_verdict, t_interval
from rnnlab.search_folder import STUDY_NAME, SearchSpec, load_study, open_study_storage
from rnnlab.tracking.wandb_log import read_history, read_records

ROOT = Path(__file__).resolve().parent.parent
SEARCH_DIGITS = str(ROOT / "experiments" / "search_digits.py")


def write_trial(folder: Path, trial_id: str, values: list[float], result: dict) -> None:
    trial_dir = folder / "trials" / trial_id
    trial_dir.mkdir(parents=True)
    rows = [{"epoch": e + 1, "val/acc": v, "train/loss": 1.0 / (e + 1)} for e, v in enumerate(values)]
    (trial_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (trial_dir / "result.json").write_text(json.dumps(result))


def make_search(folder: Path, finals: dict[str, list[float]], objectives: int = 1) -> SearchSpec:
    """A search folder: per family the final val/acc of its completed trials, plus one pruned and one failed trial."""
    import optuna
    from optuna.trial import TrialState

    folder.mkdir(parents=True)
    spec = SearchSpec(
        experiment=SEARCH_DIGITS,
        name="syn",
        storage=str(folder.parent),
        folder=str(folder),
        metric="val/acc",
        mode="max",
        objectives=["val/loss:min"] if objectives > 1 else [],
    )
    spec.save()
    directions = ["maximize", "minimize"][:objectives]
    study = optuna.create_study(study_name=STUDY_NAME, storage=open_study_storage(folder), directions=directions)
    number = 0
    for family, values in finals.items():
        for value in values:
            study.enqueue_trial({"model.family": family})  # ask() then suggests exactly this family
            trial = study.ask()
            trial.suggest_categorical("model.family", list(finals))
            trial.suggest_float("optim.learning_rate", 1e-3, 1e-1, log=True)
            trial_id = f"t{number}"
            trial.set_user_attr("ray_trial_id", trial_id)
            write_trial(
                folder,
                trial_id,
                [value * 0.7, value],
                {"status": "completed", "val/acc": value, "parameters": 1000 + number, "time/total_s": 2.0 + number},
            )
            study.tell(trial, [value, 1 - value][:objectives])
            number += 1
    for state, reason in ((TrialState.PRUNED, "stopped by the scheduler after epoch 1"), (TrialState.FAIL, "boom")):
        trial = study.ask()
        trial.suggest_categorical("model.family", list(finals))
        trial.set_user_attr("ray_trial_id", f"t{number}")
        trial.set_user_attr("reason", reason)
        write_trial(folder, f"t{number}", [0.1], {"status": "diverged", "reason": "train/loss became nan"})
        study.tell(trial, state=state)
        number += 1
    return spec


def check_figures(out: Path, html: str, expected: set[str]) -> None:
    pngs = sorted(out.glob("*.png"))
    assert {p.stem for p in pngs} == expected
    for png in pngs:
        with Image.open(png) as image:
            assert image.size[0] > 0 and image.size[1] > 0
    assert html.count("src='data:image/png;base64,") == len(pngs)
    markdown = (out / "report.md").read_text()
    assert all(f"]({p.name})" in markdown for p in pngs)


def test_report_of_a_search_has_every_section_and_figure(tmp_path, capsys):
    spec = make_search(tmp_path / "s", {"lstm": [0.80, 0.82, 0.78], "gru": [0.60, 0.62, 0.61]})
    assert main(["report", spec.folder]) == 0
    out = Path(spec.folder) / "report"
    html = (out / "report.html").read_text()
    check_figures(
        out, html, {"learning_curves", "families", "optimization_history", "param_importances", "parallel_coordinate"}
    )
    families = json.loads((out / "families.json").read_text())
    assert [f["family"] for f in families] == ["lstm", "gru"]  # a row per family, best first
    lstm = families[0]
    assert lstm["best"] == 0.82 and lstm["complete"] == 3 and lstm["pruned"] + lstm["failed"] <= 2
    assert lstm["ci"][0] < 0.80 < lstm["ci"][1] and lstm["ci_source"] == "top 3 trials"
    markdown = (out / "report.md").read_text()
    assert "lstm is better than gru beyond noise (Welch t-test" in markdown
    assert "stopped by the scheduler after epoch 1" in markdown and "boom" in markdown  # Optuna's reasons
    assert "train/loss became nan" in markdown  # result.json's reason
    assert "rnnlab run" in markdown and "report.html" in capsys.readouterr().out


def test_a_plot_optuna_cannot_draw_is_a_line_not_a_crash(tmp_path, monkeypatch):
    from optuna.visualization import matplotlib as ovm

    def refuse(study, **kwargs):  # Optuna 5 draws an empty plot here; earlier versions and other studies raise
        raise ValueError("Cannot evaluate parameter importances with only a single trial.")

    monkeypatch.setattr(ovm, "plot_param_importances", refuse)
    spec = make_search(tmp_path / "one", {"gru": [0.5]})  # one completed trial
    assert main(["report", spec.folder, "--out", str(tmp_path / "r")]) == 0
    markdown = (tmp_path / "r" / "report.md").read_text()
    assert "Param importances (val/acc): not drawn (" in markdown
    assert "not drawn" in (tmp_path / "r" / "report.html").read_text()
    assert "Only one family has a completed trial" in markdown


def test_a_damaged_metrics_line_leaves_that_trial_out_of_the_curves_not_the_report(tmp_path):
    """Before: one trial's metrics.jsonl with a damaged line before its last made `rnnlab report` refuse the whole
    search. Now the curves are drawn without that trial, and the report says which trial, which file and line."""
    spec = make_search(tmp_path / "s", {"lstm": [0.80, 0.82], "gru": [0.60]})
    log = Path(spec.folder) / "trials" / "t1" / "metrics.jsonl"
    log.write_text('{"epoch": 1, "val/acc"' + "\n" + log.read_text().splitlines()[1] + "\n")
    assert main(["report", spec.folder]) == 0
    out = Path(spec.folder) / "report"
    markdown, html = (out / "report.md").read_text(), (out / "report.html").read_text()
    said = f"Left out of it: trial t1: {log} line 1 is not a JSON row; restore the file or remove that line"
    assert said in markdown and said in html, markdown
    assert "![Learning curves" in markdown and (out / "learning_curves.png").is_file()
    assert "| 1 | t1 | lstm | 0.82 |" in markdown  # its row, from the study and its result.json, stays


def test_multi_objective_report_draws_the_pareto_front(tmp_path):
    spec = make_search(tmp_path / "mo", {"lstm": [0.8, 0.7], "gru": [0.6, 0.65]}, objectives=2)
    assert main(["report", spec.folder]) == 0
    with Image.open(Path(spec.folder) / "report" / "pareto_front.png") as image:
        assert image.size[0] > 0


def test_t_interval_and_welch_verdict():
    from scipy import stats

    low, high = t_interval([1.0, 2.0, 3.0])
    assert math.isclose(high - 2.0, stats.t.ppf(0.975, 2) * 1.0 / math.sqrt(3)) and math.isclose(low + high, 4.0)
    assert t_interval([1.0]) is None
    a, b = [0.5, 0.4, 0.6], [0.48, 0.5, 0.41]
    close = [
        {"family": "a", "best": 0.6, "sample": a, "ci": t_interval(a)},
        {"family": "b", "best": 0.5, "sample": b, "ci": t_interval(b)},
    ]
    assert "within noise" in noise_verdict(close) and "p = " in noise_verdict(close)
    assert "cannot tell" in noise_verdict([{**close[0], "sample": [0.5]}, close[1]])


def test_seed_means_per_epoch_carry_the_std_and_a_seed_that_stopped_early():
    seed0 = [{"epoch": 1, "val/acc": 0.2}, {"epoch": 2, "val/acc": 0.4}]  # stopped early after epoch 2
    seed1 = [{"epoch": 1, "val/acc": 0.4}, {"epoch": 2, "val/acc": 0.6}, {"epoch": 3, "val/acc": 0.8}]
    rows = mean_rows([seed0, seed1], "val/acc")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert [round(r["val/acc"], 6) for r in rows] == [0.3, 0.5, 0.6]
    assert math.isclose(rows[0]["val/acc_std"], math.sqrt(0.02))


def nested(flat: dict, key: str) -> dict:
    """The dict logged under `key`: W&B's core writes it either whole or flattened (`key/_type`, `key/path`, ...)."""
    if isinstance(flat.get(key), dict):
        return flat[key]
    return {k.removeprefix(key + "/"): v for k, v in flat.items() if k.startswith(key + "/")}


def test_search_table_in_an_offline_wandb_run(tmp_path, monkeypatch):
    from rnnlab.experiment import load_experiment
    from rnnlab.tracking.search import COLUMNS, TABLE_KEY, log_search_results

    monkeypatch.setenv("WANDB_MODE", "offline")
    spec = make_search(tmp_path / "w", {"lstm": [0.8], "gru": [0.6]})
    run_dir = Path(log_search_results(spec, load_experiment(SEARCH_DIGITS).config))
    log = next(run_dir.glob("*.wandb"))
    logged = {k: v for row in read_history(log) for k, v in nested(row, TABLE_KEY).items()}
    assert logged["_type"] == "table-file" and logged["nrows"] == 4
    table = json.loads((run_dir / "files" / logged["path"]).read_text())
    assert table["columns"] == COLUMNS
    assert sorted(row[0] for row in table["data"]) == ["t0", "t1", "t2", "t3"]
    by_id = {row[0]: dict(zip(COLUMNS, row)) for row in table["data"]}
    assert by_id["t0"]["family"] == "lstm" and by_id["t0"]["metric"] == 0.8 and by_id["t0"]["state"] == "COMPLETE"
    assert by_id["t3"]["state"] == "FAIL" and "learning_rate" in by_id["t0"]["params"]
    records = read_records(log)
    run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    summary = {
        "/".join(u.nested_key) or u.key: json.loads(u.value_json)
        for r in records
        if r.WhichOneof("record_type") == "summary"
        for u in r.summary.update
    }
    assert nested(summary, TABLE_KEY)["_type"] == "table-file", "the summary keeps the Table"
    assert summary["search/n_trials"] == 4 and summary["search/n_complete"] == 2
    assert run.run_group == "syn" and run.job_type == "search-summary"


def test_a_reused_search_name_gets_its_own_search_level_run(tmp_path, monkeypatch):
    """Two searches named alike (another --storage, or the first deleted) log their Tables in two W&B runs: with one
    id, a sync would resume the older search's run and overwrite its summary. A search from before keeps its id."""
    from rnnlab.api import plan_search
    from rnnlab.experiment import load_experiment
    from rnnlab.tracking.search import log_search_results, search_run_id

    monkeypatch.setenv("WANDB_MODE", "offline")
    ids = []
    for storage in ("a", "b"):
        _, planned = plan_search(SEARCH_DIGITS, {}, "same", tmp_path / storage)
        spec = make_search(Path(planned.folder), {"lstm": [0.8]})
        spec = dataclasses.replace(spec, search_id=planned.search_id)
        run_dir = Path(log_search_results(spec, load_experiment(SEARCH_DIGITS).config))
        run = next(r.run for r in read_records(next(run_dir.glob("*.wandb"))) if r.WhichOneof("record_type") == "run")
        ids.append(run.run_id)
    assert ids[0] != ids[1] and all(i.startswith("syn-search-") for i in ids), ids
    assert search_run_id(make_search(tmp_path / "old", {"gru": [0.5]})) == "syn-search", "an older search's own id"


def test_tune_summary_table_takes_an_unsearched_family_from_the_trial_config(tmp_path, capsys):
    """An ESN search that does not search `model.family`: the end-of-search table says "esn", as the report does,
    also for a trial whose config.json is torn (it was family "-", compared against "esn" in the report)."""
    import optuna

    from rnnlab.report import collect_trials
    from rnnlab.search_report import report_search

    folder = tmp_path / "esn"
    folder.mkdir()
    spec = SearchSpec(
        experiment=SEARCH_DIGITS,
        name="esn",
        storage=str(tmp_path),
        folder=str(folder),
        metric="val/acc",
        mode="max",
        config={"model.family": "esn"},
    )
    spec.save()
    study = optuna.create_study(study_name=STUDY_NAME, storage=open_study_storage(folder), direction="maximize")
    for number, value in enumerate([0.7, 0.9]):
        trial = study.ask()
        trial.suggest_float("model.esn.spectral_radius", 0.5, 1.5)
        trial.set_user_attr("ray_trial_id", f"e{number}")
        write_trial(folder, f"e{number}", [value], {"status": "completed", "val/acc": value})
        flat = {"model.family": "esn", "model.esn.spectral_radius": 1.0}
        (folder / "trials" / f"e{number}" / "config.json").write_text(
            json.dumps({"flat": flat})[: 10 if number else None]
        )
        study.tell(trial, value)
    report_search(spec)
    table = capsys.readouterr().out.splitlines()
    header = next(i for i, line in enumerate(table) if line.startswith("trial_id"))
    assert [line.split()[:3] for line in table[header + 1 : header + 3]] == [["e1", "1", "esn"], ["e0", "0", "esn"]]
    assert all(" model.esn.spectral_radius=" in line for line in table[header + 1 : header + 3])  # was spectral_radius=
    assert [r["family"] for r in collect_trials(spec, load_study(spec.folder))] == ["esn", "esn"]


# --- a real search with seed replicates --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seeded_search(tmp_path_factory):
    """4 trials of search_digits, 2 seeds each, shrunk, on a local Ray; the driver's output (stdout: tables, stderr:
    rnnlab's status lines) kept for checks."""
    import contextlib
    import io

    import ray

    from rnnlab.tune import connect

    root = tmp_path_factory.mktemp("seeded")
    connect(None)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            code = main(
                [
                    "tune",
                    SEARCH_DIGITS,
                    "--samples",
                    "4",
                    "--concurrency",
                    "2",
                    "--storage",
                    str(root),
                    "--name",
                    "s",
                    "--set",
                    "train.epochs=2",
                    "train.max_batches=3",
                    "search.grace_period=1",
                    "search.seeds=2",
                ]
            )
    finally:
        ray.shutdown()
    assert code == 0, printed.getvalue()[-3000:]
    return {"folder": root / "s", "printed": printed.getvalue()}


@pytest.mark.slow
def test_seeded_search_report_shows_a_confidence_interval_per_family(seeded_search, tmp_path):
    folder = seeded_search["folder"]
    study = load_study(folder)
    assert len(study.trials) == 4
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert complete
    for t in complete:  # each configuration ran 2 seeds; the study holds their mean
        trial_dir = folder / "trials" / t.user_attrs["ray_trial_id"]
        seeds = [json.loads((trial_dir / f"seed_{i}" / "result.json").read_text()) for i in range(2)]
        assert [s["seed"] for s in seeds] == [0, 1]
        assert math.isclose(t.value, (seeds[0]["val/acc"] + seeds[1]["val/acc"]) / 2)
        result = json.loads((trial_dir / "result.json").read_text())
        assert result["seeds/val/acc"] == [s["val/acc"] for s in seeds]
        assert [json.loads(r)["epoch"] for r in (trial_dir / "metrics.jsonl").read_text().splitlines()] == [1, 2]

    assert main(["report", str(folder)]) == 0
    out = folder / "report"
    html = (out / "report.html").read_text()
    check_figures(out, html, {p.stem for p in out.glob("*.png")} | {"learning_curves", "families"})
    assert {"optimization_history", "parallel_coordinate"} <= {p.stem for p in out.glob("*.png")}
    families = json.loads((out / "families.json").read_text())
    searched = {t.params["model.family"] for t in study.trials}
    assert {f["family"] for f in families} == searched
    markdown = (out / "report.md").read_text()
    assert "| 95% CI |" in markdown and "std over seeds" in markdown
    for f in families:
        if f["complete"]:
            assert f["ci_source"] == "2 seeds of the best config" and f["ci"][0] <= f["best"] <= f["ci"][1]
    assert any(w in markdown for w in ("within noise", "beyond noise", "Only one family", "cannot tell"))

    printed = seeded_search["printed"]  # live progress: a status line per trial event, with the best so far
    assert "best val/acc=" in printed
    for trial_dir in (folder / "trials").iterdir():
        assert f"<- {trial_dir.name} started" in printed
        assert any(f"<- {trial_dir.name} {end}" in printed for end in ("finished", "stopped", "diverged", "errored"))


@pytest.mark.slow
def test_replay_of_a_seeded_trial_replays_every_seed_and_compares_their_mean(seeded_search, tmp_path, capsys):
    """Replaying a trial of 2 seeds reran seed_0 only and compared it with seed_0's record, while the trial's value
    (the study's, W&B's) is the mean over both: now every seed is replayed into its own folder, each compared with
    its own record, and their mean with the trial's."""
    folder = seeded_search["folder"]
    best = load_study(folder).best_trial.user_attrs["ray_trial_id"]
    trial = json.loads((folder / "trials" / best / "result.json").read_text())
    capsys.readouterr()
    assert main(["replay", str(folder), best, "--out", str(tmp_path / "replay")]) == 0
    printed = capsys.readouterr().out
    for i in range(2):
        seed = json.loads((tmp_path / "replay" / f"seed_{i}" / "result.json").read_text())
        assert seed["seed"] == i and math.isclose(seed["val/acc"], trial["seeds/val/acc"][i], rel_tol=1e-3)
        assert f"seed_{i} (seed {i}):" in printed
    assert "mean over 2 seeds (the trial's value, as the study holds it):" in printed
    mean_line = next(line for line in printed.splitlines() if line.startswith("mean val/acc"))
    recorded, replayed = (float(v) for v in mean_line.split()[2:4])
    assert math.isclose(recorded, trial["val/acc"], rel_tol=1e-4) and math.isclose(replayed, recorded, rel_tol=1e-3)
    assert printed.rstrip().endswith("replay reproduces the recorded metrics")

    assert main(["replay", str(folder), f"{best}/seed_1", "--out", str(tmp_path / "one")]) == 0  # one seed alone
    printed = capsys.readouterr().out
    assert "mean over" not in printed and (tmp_path / "one" / "result.json").is_file()


def test_replay_comparison_takes_nan_again_as_reproduced(capsys):
    """The mean over seeds of a trial with a diverged seed is nan: a replay that diverges again reproduces it."""
    from rnnlab.replay import compare_rows

    assert compare_rows([("mean val/loss", math.nan, math.nan)], [], 1e-3)
    assert not compare_rows([("mean val/loss", 0.5, math.nan)], [], 1e-3)
    assert "DIFFERS" in capsys.readouterr().out.splitlines()[-1]


def test_best_overrides_and_the_report_hold_what_the_space_returned_beside_its_parameters(tmp_path, capsys):
    """A space that returns a value it did not suggest ({"model.hidden_size": 4 if family == "gru" else 6}): the
    trial ran it, but best_overrides.txt, the printed best trial and the report said `--set model.family=gru` alone,
    which reruns the base width (8). Now they hold the trial's params.json beside the study's parameters."""
    import optuna

    from rnnlab.report import make_report
    from rnnlab.search_report import report_search

    folder = tmp_path / "s"
    folder.mkdir()
    spec = SearchSpec(experiment=SEARCH_DIGITS, name="s", storage=str(tmp_path), folder=str(folder), metric="val/acc")
    spec.mode = "max"
    spec.save()
    study = optuna.create_study(study_name=STUDY_NAME, storage=open_study_storage(folder), direction="maximize")
    for number, (family, width, value) in enumerate([("gru", 4, 0.9), ("lstm", 6, 0.7)]):
        study.enqueue_trial({"model.family": family})
        trial = study.ask()
        trial.suggest_categorical("model.family", ["gru", "lstm"])
        trial.set_user_attr("ray_trial_id", f"t{number}")
        write_trial(folder, f"t{number}", [value], {"status": "completed", "val/acc": value})
        sent = {"model.family": family, "model.hidden_size": width, "optuna_trial_number": number}
        (folder / "trials" / f"t{number}" / "params.json").write_text(json.dumps(sent))
        study.tell(trial, value)
    assert report_search(spec) == 0
    out = capsys.readouterr().out
    assert (folder / "best_overrides.txt").read_text() == "--set model.family=gru model.hidden_size=4\n"
    assert "best trial t0 (val/acc=0.9): model.family=gru model.hidden_size=4" in out, out
    assert "--set model.family=gru model.hidden_size=4`" in (make_report(folder).parent / "report.md").read_text()
