"""`rnnlab replay SEARCH_DIR TRIAL_ID`: one trial of a search run again in-process (no Ray: a breakpoint works) from
its own record, and its metrics compared with the recorded ones; a trial of seed replicates seed by seed.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from pathlib import Path

from rnnlab.config import ConfigError
from rnnlab.folder_lock import LOCK_FILE, hold_folder
from rnnlab.registries import from_flat_dict
from rnnlab.replay_data import data_state, verdict, what_changed
from rnnlab.search_folder import TRIALS_DIR, SearchSpec, ended_by_the_driver, ended_by_time_limit, read_json

logger = logging.getLogger(__name__)


def read_trial_file(path: Path) -> dict:
    """A trial's config.json or params.json, whole: a corrupted one is refused naming it (read as empty, replay ran
    the search's base config instead of the trial's and reported that the trial did not reproduce)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        record = err
    if not isinstance(record, dict) or (path.name == "config.json" and not isinstance(record.get("flat"), dict)):
        raise ConfigError(
            "trial_id",
            f"{path} is unreadable ({record if isinstance(record, Exception) else 'not a trial record'}): the "
            "trial's configuration is lost, so it cannot be replayed; run its parameters (the study's) with rnnlab run",
        )
    return record


def config_from_params(spec: SearchSpec, trial_dir: Path):
    """A trial's config as its worker built it (the experiment, the search's overrides, the parameters it was sent),
    for a trial that failed before run_trial wrote its config.json."""
    from rnnlab.experiment import load_experiment
    from rnnlab.registries import apply_overrides

    params = {k: v for k, v in read_trial_file(trial_dir / "params.json").items() if k != "optuna_trial_number"}
    cfg = apply_overrides(load_experiment(spec.experiment, spec.overrides).config, params)
    return apply_overrides(cfg, {"train.threads": max(1, int(cfg.search.cpus_per_trial))})


def check_replay_out(out: Path) -> None:
    """A replay writes a new run folder: one that holds anything (a run, another replay) is never overwritten, and
    none goes among a search's trials (a folder there that is no trial of the study)."""
    from rnnlab.run_folder import refuse_a_trials_folder

    refuse_a_trials_folder(out)
    if out.exists() and not out.is_dir():
        raise ConfigError("--out", f"{out} is a file, not a folder; choose another --out")
    if out.exists() and any(p.name != LOCK_FILE for p in out.iterdir()):
        raise ConfigError(
            "--out",
            f"{out} is not empty (it may hold a run or an earlier replay, which a replay would overwrite): choose "
            "another --out, or leave --out out for a new SEARCH_DIR/replays/TRIAL_ID-TIMESTAMP",
        )


def stop_where_it_stopped(final: dict, recorded: list[dict], limit_s: float):
    """A trial the scheduler, its time limit or a dead driver (an orphan) stopped ran fewer epochs than its config
    asks: its replay stops after the same epoch, so its record (status, last metrics) is the trial's, not a longer
    run's. One its time limit stopped before any epoch stops at that limit (a replay had none, and ran as long as the
    trial's config asked). Returns (report, should_stop) for run_seed."""
    from rnnlab.train import TrialStopped

    time_limited = ended_by_time_limit(final)
    stopped_from_outside = final.get("status") == "stopped" or ended_by_the_driver(final)
    if recorded and (time_limited or stopped_from_outside):
        last = recorded[-1]["epoch"]

        def report(metrics, checkpoint=None):
            if metrics["epoch"] >= last:
                reason = f"replay stopped after epoch {last}, as the trial was ({final.get('reason')})"
                raise TrialStopped(reason, final["status"])

        return report, None
    if time_limited and limit_s:
        deadline = time.monotonic() + limit_s

        def should_stop():
            if time.monotonic() > deadline:
                reason = f"replay stopped at the trial's time limit, as the trial was ({final['reason']})"
                raise TrialStopped(reason, final["status"])

        return None, should_stop
    return None, None


SHOWN_TRIALS = 10  # valid trial ids listed in an error


def find_trial(spec: SearchSpec, trial_id: str) -> Path:
    """The folder of `trial_id`: a folder's name under trials/, or ID/seed_<i> of a trial of seed replicates. Any
    other id is refused listing valid ones: '../../other/trials/x' replayed another search's trial and wrote its
    replay into that search's trials/, as a trial of its own; a replay reads and writes only inside its search."""
    trials = Path(spec.folder, TRIALS_DIR)
    known = sorted(p.name for p in trials.iterdir() if p.is_dir()) if trials.is_dir() else []
    head, _, seed = trial_id.partition("/")
    seed_ok = not seed or (re.fullmatch(r"seed_\d+", seed) is not None and (trials / head / seed).is_dir())
    if head in known and seed_ok:
        return trials / trial_id
    if not known:
        raise ConfigError("trial_id", f"no trial {trial_id!r} in {spec.folder}; it holds no trial yet")
    shown = ", ".join(known[:SHOWN_TRIALS]) + (f", ... ({len(known)} in all)" if len(known) > SHOWN_TRIALS else "")
    raise ConfigError(
        "trial_id",
        f"no trial {trial_id!r} in {spec.folder}; valid: a trial's id (its folder under {TRIALS_DIR}/: {shown}), "
        "or ID/seed_<i> for one seed of a trial of seed replicates",
    )


def trial_config(spec: SearchSpec, trial_dir: Path):
    """The config a trial (or one seed of it) ran: its config.json, or rebuilt from its params.json."""
    if (trial_dir / "config.json").is_file():
        return from_flat_dict(read_trial_file(trial_dir / "config.json")["flat"])
    if (trial_dir / "params.json").is_file():  # it failed before run_trial wrote its config (bad config or data)
        return config_from_params(spec, trial_dir)
    raise ConfigError(
        "trial_id",
        f"{trial_dir} holds neither config.json nor params.json: the trial never started; nothing to replay",
    )


def seed_dirs(trial_dir: Path) -> list[Path]:
    """A trial of seed replicates' seed folders in order (seed_0, seed_1, ...; a diverged seed ends the trial), or []
    for a trial of one seed."""
    found = {int(p.name[5:]): p for p in trial_dir.glob("seed_*") if re.fullmatch(r"seed_\d+", p.name) and p.is_dir()}
    return [found[i] for i in range(len(found)) if i in found]


def replay_seed(cfg, trial_dir: Path, out: Path) -> dict:
    """Run one seed of a trial again (its config, stopped where the trial was) into `out`; its result."""
    from rnnlab.trial import read_metrics, run_seed

    final = read_json(trial_dir / "result.json")
    report, should_stop = stop_where_it_stopped(
        final, read_metrics(trial_dir / "metrics.jsonl"), cfg.search.trial_time_limit_s
    )
    return run_seed(cfg, report, out, should_stop=should_stop)  # one seed: a replicate's own folder


def compare_rows(pairs: list, ends: list, rel_tol: float) -> bool:
    """Print recorded beside replayed values; True when all agree (numbers within rel_tol, ends alike)."""
    ok = True
    print(f"{'':28}  {'recorded':>10}  {'replayed':>10}")
    for label, a, b in pairs:
        same = agree(a, b, rel_tol)
        ok &= same
        print(f"{label:28}  {a:10.5g}  {b:10.5g}  {'' if same else 'DIFFERS'}")
    for label, a, b in ends:
        ok &= a == b
        print(f"{label:28}  {a:>10}  {b:>10}  {'' if a == b else 'DIFFERS'}")
    return ok


def agree(a: float, b: float, rel_tol: float) -> bool:
    # nan and nan agree: the mean over seeds of one that diverged again, as it did in the trial
    return math.isclose(a, b, rel_tol=rel_tol, abs_tol=1e-6) or (math.isnan(a) and math.isnan(b))


def is_value(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def compare_every_value(recorded: list[dict], replayed: dict, final: dict, result: dict, rel_tol: float) -> bool:
    """Every number of the record but times (each metric of each epoch both ran, and of result.json) against the
    replay's: one line with how many are equal bit for bit and within rel_tol, one per value beyond it. True when
    none is (the verdict spoke of "the recorded metrics" after comparing the monitored one alone)."""
    pairs = [
        (f"epoch {r['epoch']} {k}", v, replayed[r["epoch"]].get(k))
        for r in recorded
        if r["epoch"] in replayed
        for k, v in r.items()
        if is_value(v) and not k.startswith("time/")
    ]
    pairs += [(f"result {k}", v, result.get(k)) for k, v in final.items() if is_value(v) and not k.startswith("time/")]
    if not pairs:
        return True
    differ = [(label, a, b) for label, a, b in pairs if not (is_value(b) and agree(a, b, rel_tol))]
    bitwise = sum(a == b or (is_value(b) and math.isnan(a) and math.isnan(b)) for _, a, b in pairs)
    print(
        f"every value but times ({len(pairs)}: each metric of each epoch and of the result): {bitwise} equal bit for "
        f"bit, {len(pairs) - bitwise - len(differ)} within rel_tol={rel_tol}, {len(differ)} beyond"
    )
    for label, a, b in differ:
        print(f"{label:28}  {a:10.5g}  {b if b is None else format(b, '10.5g'):>10}  DIFFERS")
    return not differ


def result_keys(cfg) -> tuple[str, str]:
    return cfg.metric, f"test/{cfg.metric.split('/')[1]}"


def compare_seed(spec: SearchSpec, cfg, trial_dir: Path, out: Path, result: dict, rel_tol: float):
    """Compare one replayed seed with its record, epoch by epoch and at the end; (agrees, anything compared, whether
    on the trial's data: `data_state`)."""
    from rnnlab.trial import read_metrics

    final, recorded = read_json(trial_dir / "result.json"), read_metrics(trial_dir / "metrics.jsonl")
    replayed = {row["epoch"]: row for row in read_metrics(out / "metrics.jsonl")}
    pairs = [
        (f"epoch {r['epoch']} {cfg.metric}", r[cfg.metric], replayed[r["epoch"]][cfg.metric])
        for r in recorded
        if r["epoch"] in replayed
    ]
    if not final and (trial_dir / "result.json").exists():
        print(f"{trial_dir / 'result.json'} is unreadable (torn?): only its epochs are compared")
    pairs += [
        (f"result {k}", final[k], result[k])
        for k in result_keys(cfg)
        if isinstance(final.get(k), float) and isinstance(result.get(k), float)
    ]
    ends = replayed_end(final, result)
    ok = compare_rows(pairs, ends, rel_tol)
    ok = compare_every_value(recorded, replayed, final, result, rel_tol) and ok
    data, why = data_state(spec, cfg, final, result)
    for line in [why] if why else []:
        print(line)  # the values decide; these say why they may differ (it compared silently before)
    for line in what_changed(final, result, read_json(trial_dir / "provenance.json")):
        print(line)
    return ok, bool(pairs or ends), data


def compare_mean(cfg, trial_dir: Path, outs: list[Path], results: list[dict], rel_tol: float) -> tuple[bool, bool]:
    """Compare the mean over the replayed seeds with the trial's own record (what the study and W&B hold). A trial
    stopped in its last seed holds the means of the epoch it stopped after, as run_replicates wrote them."""
    from rnnlab.replicates import mean_row, mean_rows
    from rnnlab.trial import read_metrics

    final = read_json(trial_dir / "result.json")
    if final.get("status") == "stopped":
        rows = mean_rows([read_metrics(out / "metrics.jsonl") for out in outs], cfg.metric)
        mean = rows[-1] if rows else {}
    else:
        mean = mean_row(results, cfg.metric)
    pairs = [
        (f"mean {k}", final[k], mean[k])
        for k in result_keys(cfg)
        if isinstance(final.get(k), float) and isinstance(mean.get(k), float)
    ]
    return compare_rows(pairs, [], rel_tol), bool(pairs)


def replay_trial(folder: str | Path, trial_id: str, out: str | Path | None = None, rel_tol: float = 1e-3) -> int:
    """Re-run one trial in-process (no Ray: a breakpoint works) and print its metrics next to the recorded ones. A
    trial of seed replicates is replayed seed by seed into `out/seed_<i>/`, each compared with its own record, and
    the mean over seeds with the trial's (ID/seed_<i> replays one seed)."""
    spec = SearchSpec.load(folder)
    trial_dir = find_trial(spec, trial_id)
    dirs = seed_dirs(trial_dir) or [trial_dir]
    cfgs = [trial_config(spec, d) for d in dirs]  # all read before any work: a lost one is refused first
    out = Path(out or Path(spec.folder, "replays", f"{trial_id}-{time.strftime('%Y%m%d-%H%M%S')}"))
    outs = [out / d.name for d in dirs] if dirs[0] is not trial_dir else [out]
    with hold_folder(out, "--out", lambda: check_replay_out(out), started=(outs[0] / "config.json").exists):
        results = []
        for cfg, trial_seed, seed_out in zip(cfgs, dirs, outs):
            logger.info(f"replaying trial {trial_id}{'' if seed_out == out else '/' + seed_out.name} into {seed_out}")
            results.append(replay_seed(cfg, trial_seed, seed_out))
    ok, compared, states = True, False, set()
    for cfg, trial_seed, seed_out, result in zip(cfgs, dirs, outs, results):
        if seed_out != out:
            print(f"{trial_seed.name} (seed {cfg.seed}):")
        seed_ok, seed_compared, data = compare_seed(spec, cfg, trial_seed, seed_out, result, rel_tol)
        ok, compared = ok and seed_ok, compared or seed_compared
        states.add(data)
    if outs[0] != out:
        print(f"mean over {len(outs)} seeds (the trial's value, as the study holds it):")
        mean_ok, mean_compared = compare_mean(cfgs[0], trial_dir, outs, results, rel_tol)
        ok, compared = ok and mean_ok, compared or mean_compared
    metric = cfgs[0].metric
    if not compared:
        print(f"nothing to compare: trial {trial_id} recorded no {metric}")
    else:
        data = "changed" if "changed" in states else "unknown" if "unknown" in states else "same"
        print(verdict(ok, data, rel_tol))
        ok = ok and data != "changed"  # values that agree on other data do not reproduce the trial
    return 0 if ok and compared else 1


REPLAYED_ENDS = ("completed", "early_stopped", "stopped", "diverged")  # what a replay of the same config reproduces


def replayed_end(final: dict, result: dict) -> list[tuple[str, str, str]]:
    """How the trial and its replay ended, when the trial's end came from its config (not a worker's death, a
    dead driver or memory): a replay that diverges where the trial completed, or the reverse, differs."""
    if final.get("status") not in REPLAYED_ENDS:
        return []
    ends = [("status", str(final["status"]), str(result.get("status")))]
    if final["status"] == "diverged":  # the metric, its value and the epoch it became non-finite
        ends.append(("reason", str(final.get("reason")), str(result.get("reason"))))
    return ends
