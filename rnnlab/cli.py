"""The `rnnlab` command line: run one trial, search, replay, sync and report.

Bad input (unknown fields, wrong types, invalid values, missing files) exits with code 2 and a message naming the
field, before any work starts. Anything else is a bug or a real failure and shows its full traceback.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

from rnnlab.config import ConfigError
from rnnlab.config.overrides import parse_set_args

EXIT_BAD_INPUT = 2
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143, as if SIGTERM had ended the process


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", help="experiment file (path or name in ./experiments)")
    parser.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override a config field by its dotted path, e.g. model.hidden_size=64")  # fmt: skip
    parser.add_argument("--device", help="force a device (cpu, cuda, cuda:N); default: CUDA when present")


def overrides_from(args: argparse.Namespace) -> dict[str, str]:
    overrides = parse_set_args(args.overrides)
    if getattr(args, "device", None):
        overrides["train.device"] = args.device
    return overrides


def check_output_dir(out: Path, resume: bool) -> None:
    """An existing run folder is never overwritten: it must be resumed or another folder chosen."""
    if out.exists() and any(out.iterdir()) and not resume:
        raise ConfigError("--out", f"{out} already holds a run; pass --resume to continue it or choose another --out")
    if resume and not (out / "checkpoints").exists():
        raise ConfigError("--resume", f"{out} has no checkpoints to resume from; run without --resume")
    probe = out if out.exists() else next((p for p in out.parents if p.exists()), Path("."))
    import os

    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise ConfigError("--out", f"{probe} is not a writable folder; choose another --out")


def cmd_run(args: argparse.Namespace) -> int:
    from rnnlab.experiment import load_experiment
    from rnnlab.progress import EpochProgress
    from rnnlab.tracking import open_tracker, resolve_mode
    from rnnlab.trial import TrialStopped, prepare_data, run_trial

    experiment = load_experiment(args.experiment, overrides_from(args))
    cfg = experiment.config
    out = Path(args.out or f"runs/{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}")
    check_output_dir(out, args.resume)
    resolve_mode(cfg)  # a bad WANDB_MODE fails now, not after the run folder exists
    data = prepare_data(cfg)  # every input error surfaces before the run folder is touched

    # SIGTERM (a scheduler, `kill`): training stops at its next batch, dropping the epoch in progress; one that is
    # already past training ends after its row is logged everywhere. Either way W&B holds every completed epoch.
    stop: list[str] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: stop.append(signal.Signals(signum).name))
    try:
        with EpochProgress(cfg.train.epochs, cfg.metric) as progress, open_tracker(cfg, out, job_type="run") as tracker:

            def report(metrics, checkpoint=None):  # noqa: E306
                tracker.log(metrics, checkpoint)
                progress.update(metrics)
                if stop:
                    raise TrialStopped(f"terminated by {stop[0]} after epoch {metrics['epoch']}")

            def should_stop():  # noqa: E306
                return f"terminated by {stop[0]} during an epoch, which was dropped" if stop else None

            result = run_trial(cfg, report, out, out / "checkpoints" if args.resume else None, data, should_stop)
            tracker.finish(result)
    finally:
        signal.signal(signal.SIGTERM, previous)
    print(f"run folder: {out}")
    if result["status"] == "stopped":
        print(f"run {result['reason']}; continue it with: rnnlab run {args.experiment} --out {out} --resume",
              file=sys.stderr)  # fmt: skip
        return EXIT_TERMINATED
    if result["status"] in ("diverged", "out_of_memory"):
        print(f"trial {result['status']}: {result['reason']}", file=sys.stderr)
        return 1
    shown = {k: v for k, v in result.items() if k.startswith(("test/", "best/"))}
    print("result: " + "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items()))
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    """Upload the offline W&B runs under PATH; exit 1 when any of them could not be synced."""
    from rnnlab.tracking import find_offline_runs, sync_offline_runs

    if not Path(args.path).exists():
        raise ConfigError("path", f"{args.path} does not exist")
    if not find_offline_runs(args.path):
        print(f"no offline W&B runs under {args.path}")
        return 0
    results = sync_offline_runs(args.path, timeout=args.timeout)
    for run_dir, (ok, message) in results.items():
        print(f"{'synced' if ok else 'FAILED'}  {run_dir}  ({message})")
    failed = sum(not ok for ok, _ in results.values())
    print(f"{len(results) - failed} of {len(results)} runs synced")
    return 1 if failed else 0


def cmd_tune(args: argparse.Namespace) -> int:
    """Launch a search, or resume (and extend) the one in <storage>/<name> or in the folder given."""
    from rnnlab.experiment import load_experiment
    from rnnlab.search_folder import SEARCH_FILE, SearchSpec
    from rnnlab.tune import run_search

    overrides = overrides_from(args)
    if args.samples is not None:
        overrides["search.samples"] = str(args.samples)
    if args.concurrency is not None:
        overrides["search.concurrency"] = str(args.concurrency)
    given = Path(args.experiment)
    folder = given if (given / SEARCH_FILE).is_file() else Path(args.storage) / (args.name or "")
    if args.resume:
        if not (folder / SEARCH_FILE).is_file():
            raise ConfigError("--resume", f"no search in {folder}; give its folder or --storage and --name")
        spec = SearchSpec.load(folder)
        spec.overrides.update({k: v for k, v in overrides.items() if k.startswith("search.samples")})
        experiment = load_experiment(spec.experiment, spec.overrides)
        return run_search(experiment, spec, resume=True, address=args.address)
    experiment = load_experiment(args.experiment, overrides)
    cfg = experiment.config
    name = args.name or f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    local = Path("searches") if "://" in args.storage else Path(args.storage)
    folder = (local / name).resolve()
    if (folder / SEARCH_FILE).is_file():
        raise ConfigError("--name", f"{folder} already holds a search; pass --resume to continue it or another --name")
    spec = SearchSpec(experiment=str(experiment.path.resolve()), name=name, storage=args.storage,
                      folder=str(folder), overrides=overrides, metric=cfg.metric, mode=cfg.mode,
                      objectives=cfg.search.objectives)  # fmt: skip
    return run_search(experiment, spec, address=args.address)


def cmd_preflight(args: argparse.Namespace) -> int:
    """Check a search can start where it is headed; print each failure with the field to change, exit 2 if any."""
    from rnnlab.experiment import load_experiment
    from rnnlab.preflight import run_preflight

    cfg = load_experiment(args.experiment, overrides_from(args)).config
    log = lambda message: print(f"preflight: {message}")  # noqa: E731
    failures = run_preflight(cfg, args.address, args.storage, args.cluster_config, log=log)
    for failure in failures:
        print(f"preflight: FAIL {failure}", file=sys.stderr)
    print(f"preflight: {len(failures)} failure(s)" if failures else "preflight: ok")
    return EXIT_BAD_INPUT if failures else 0


def cmd_replay(args: argparse.Namespace) -> int:
    from rnnlab.search_report import replay_trial

    return replay_trial(args.search_dir, args.trial_id, args.out)


def cmd_report(args: argparse.Namespace) -> int:
    """Write the search's HTML report and markdown summary; optionally serve its Optuna study in optuna-dashboard."""
    from rnnlab.report import make_report

    page = make_report(args.search_dir, args.out)
    print(f"report: {page}\nsummary: {page.with_name('report.md')}")
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    from rnnlab.report import serve_dashboard

    serve_dashboard(args.search_dir, args.host, args.port)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rnnlab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one trial in-process (no Ray)")
    add_common(run)
    run.add_argument("--out", help="run folder (default: runs/NAME-TIMESTAMP)")
    run.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    run.set_defaults(func=cmd_run)
    sync = sub.add_parser("sync", help="upload offline W&B runs (needs WANDB_API_KEY and a network)")
    sync.add_argument("path", help="a run folder, or any folder holding run folders")
    sync.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for each run's upload")
    sync.set_defaults(func=cmd_sync)
    tune = sub.add_parser("tune", help="search the experiment's search_space with Ray Tune + Optuna")
    add_common(tune)
    tune.add_argument("--samples", type=int, help="trials in total (shorthand for --set search.samples=N)")
    tune.add_argument("--concurrency", type=int, help="trials at once (shorthand for --set search.concurrency=K)")
    tune.add_argument("--address", help="join a running Ray cluster: auto, ray://host:10001 or host:6379")
    tune.add_argument("--storage", default="searches",
                      help="folder or shared folder of searches; an s3:// gs:// URI holds only Ray's state (journal "
                      "and trial folders stay in ./searches/NAME, unsynced)")  # fmt: skip
    tune.add_argument("--name", help="search name, its folder under --storage (default: NAME-TIMESTAMP)")
    tune.add_argument("--resume", action="store_true",
                      help="continue a search whose driver died (EXPERIMENT may be its folder); more --samples "
                      "extend a finished one")  # fmt: skip
    tune.set_defaults(func=cmd_tune)
    replay = sub.add_parser("replay", help="re-run one trial of a search in-process (no Ray) and compare metrics")
    replay.add_argument("search_dir", help="the search folder (holds search.json)")
    replay.add_argument("trial_id", help="the trial's id (its folder under trials/)")
    replay.add_argument("--out", help="folder of the replay (default: SEARCH_DIR/replays/TRIAL_ID-TIMESTAMP)")
    replay.set_defaults(func=cmd_replay)
    preflight = sub.add_parser("preflight", help="check trials fit the cluster and reach storage, data and W&B")
    add_common(preflight)
    preflight.add_argument("--address", help="Ray cluster to check: auto or host:6379 (default: this machine)")
    preflight.add_argument("--storage", default="searches", help="the --storage of the search (folder or URI)")
    preflight.add_argument("--cluster-config", help="a `ray up` YAML: trials must also fit one of its node types")
    preflight.set_defaults(func=cmd_preflight)
    report = sub.add_parser("report", help="a search's HTML report and markdown summary (best trials, families)")
    report.add_argument("search_dir", help="the search folder (holds search.json)")
    report.add_argument("--out", help="folder of the report (default: SEARCH_DIR/report)")
    report.set_defaults(func=cmd_report)
    dashboard = sub.add_parser("dashboard", help="serve a search's Optuna study in optuna-dashboard")
    dashboard.add_argument("search_dir", help="the search folder (holds search.json and optuna.journal)")
    dashboard.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: reachable remotely)")
    dashboard.add_argument("--port", type=int, default=8080)
    dashboard.set_defaults(func=cmd_dashboard)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"rnnlab: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
