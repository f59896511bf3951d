"""The `rnnlab` command line: run one trial, search, replay, sync, report and list the config fields.

Bad input (unknown fields, wrong types, invalid values, missing files) exits with code 2 and a message naming the
field, before any work starts. Anything else is a bug or a real failure and shows its full traceback. Status goes
to stderr through the `rnnlab` logger (`-v` adds the libraries' own output, `-q` keeps warnings and errors); the
results a command was asked for go to stdout.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import select
import shlex
import signal
import sys
from pathlib import Path

from rnnlab import console
from rnnlab.cli_args import build_parser, check_arguments, check_out_folder, experiment_from, overrides_from
from rnnlab.config import ConfigError

EXIT_BAD_INPUT = 2
EXIT_ENVIRONMENT = 1  # a full disk, no memory: nothing wrong with the input
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143, as if SIGTERM had ended the process
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130, as after Ctrl-C
EXIT_BROKEN_PIPE = 128 + 13  # 141, as if SIGPIPE had ended it (`yes | head`): output cut short, not a failure (1)

logger = logging.getLogger("rnnlab.cli")


def cmd_run(args: argparse.Namespace) -> int:
    from rnnlab import api

    experiment = experiment_from(args)
    overrides = overrides_from(args)
    again = shlex.join(  # the same config, as --resume needs it, quoted for a shell
        ["rnnlab", "run", str(experiment), *(["--set", *args.overrides] if args.overrides else [])]
        + (["--device", args.device] if getattr(args, "device", None) else [])
    )
    try:
        result = api.run(experiment, overrides, args.out, args.resume, verbosity=console.verbosity())
    except api.RunTerminated as err:
        logger.warning(f"run {err.reason}; continue it with: {again} --out {shlex.quote(str(err.out))} --resume")
        return EXIT_TERMINATED
    except api.RunInterrupted as err:  # Ctrl-C: the epoch in progress is lost, the completed ones are kept
        logger.warning(f"run interrupted; continue it with: {again} --out {shlex.quote(str(err.out))} --resume")
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        logger.warning("run interrupted before it started: nothing was recorded")
        return EXIT_INTERRUPTED
    if result["status"] in ("diverged", "out_of_memory"):
        logger.error(f"trial {result['status']}: {result.get('reason')}")
        return 1
    shown = {k: v for k, v in result.items() if k.startswith(("test/", "best/"))}
    print("result: " + "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items()))
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    """Upload the offline W&B runs under PATH; exit 1 when any of them could not be synced."""
    from rnnlab.search_folder import refuse_newer_searches
    from rnnlab.storage import localize
    from rnnlab.tracking import find_offline_runs, sync_offline_runs

    args.path = str(localize(args.path))
    if not Path(args.path).exists():
        raise ConfigError("path", f"{args.path} does not exist")
    runs = find_offline_runs(args.path)
    refuse_newer_searches([args.path, *runs])  # a newer rnnlab's search is this one's to leave as it is
    if not runs:
        print(f"no offline W&B runs under {args.path}")
        return 0
    if not os.environ.get("WANDB_API_KEY"):  # checked once, before any upload is tried
        raise ConfigError(
            "WANDB_API_KEY",
            f"not set; {len(runs)} offline run(s) under {args.path} wait for it. "
            "Export your key (wandb.ai/authorize) as WANDB_API_KEY and rerun rnnlab sync",
        )
    results = sync_offline_runs(args.path, timeout=args.timeout)
    for run_dir, (status, message) in results.items():
        print(f"{status}  {run_dir}  ({message})")
    statuses = [status for status, _ in results.values()]
    skipped = f", {statuses.count('skipped')} not this folder's to upload" if "skipped" in statuses else ""
    print(f"{statuses.count('synced')} of {len(results) - statuses.count('skipped')} runs synced{skipped}")
    return 1 if "FAILED" in statuses else 0


def cmd_tune(args: argparse.Namespace) -> int:
    """Launch a search, or resume (and extend) the one in <storage>/<name> or in the folder given."""
    from rnnlab.api import plan_search
    from rnnlab.resume import check_one_search_folder, resumed_experiment
    from rnnlab.search_folder import SEARCH_FILE, SearchSpec
    from rnnlab.storage import is_uri, join, localize
    from rnnlab.tune import run_search

    experiment = experiment_from(args)
    overrides = overrides_from(args, samples="search.samples", concurrency="search.concurrency")
    in_bucket = args.resume and (is_uri(experiment) or is_uri(args.storage))
    if in_bucket:  # a search in a bucket: download it first
        experiment = str(localize(experiment if is_uri(experiment) else join(args.storage, args.name or "")))
    given = Path(experiment)
    folder = given if (given / SEARCH_FILE).is_file() else Path(args.storage) / (args.name or "")
    if args.resume and folder == given and not in_bucket:
        check_one_search_folder(given, args.name, args.storage)
    if args.resume:
        if not (folder / SEARCH_FILE).is_file():
            raise ConfigError("--resume", f"no search in {folder}; give its folder or --storage and --name")
        spec = SearchSpec.load(folder)
        exp = resumed_experiment(spec, overrides)
        return run_search(exp, spec, resume=True, address=args.address)
    exp, spec = plan_search(experiment, overrides, args.name, args.storage)
    return run_search(exp, spec, address=args.address, free_name=args.name is None)  # NAME-TIMESTAMP, or -2, ...


def cmd_preflight(args: argparse.Namespace) -> int:
    """Check a search can start where it is headed; print each failure with the field to change, exit 2 if any."""
    from rnnlab.experiment import load_experiment
    from rnnlab.preflight import run_preflight

    cfg = load_experiment(experiment_from(args), overrides_from(args)).config
    log = lambda message: logger.info(f"preflight: {message}")  # noqa: E731
    failures = run_preflight(cfg, args.address, args.storage, args.cluster_config, log=log)
    for failure in failures:
        print(f"preflight: FAIL {failure}", file=sys.stderr)
    print(f"preflight: {len(failures)} failure(s)" if failures else "preflight: ok")
    return EXIT_BAD_INPUT if failures else 0


def cmd_replay(args: argparse.Namespace) -> int:
    from rnnlab.replay import replay_trial
    from rnnlab.search_folder import SearchSpec
    from rnnlab.storage import localize, push_search

    folder = localize(args.search_dir)
    check_out_folder(args.out)
    code = replay_trial(folder, args.trial_id, args.out)
    push_search(SearchSpec.load(folder))  # a URI search: the replay goes back to the bucket
    return code


def cmd_report(args: argparse.Namespace) -> int:
    """Write the search's HTML report and markdown summary; optionally serve its Optuna study in optuna-dashboard."""
    from rnnlab.report import make_report
    from rnnlab.search_folder import SearchSpec
    from rnnlab.storage import localize, push_search

    folder = localize(args.search_dir)
    check_out_folder(args.out)
    page = make_report(folder, args.out)
    push_search(SearchSpec.load(folder))  # a URI search: the report goes back to the bucket
    print(f"report: {page}\nsummary: {page.with_name('report.md')}")
    return 0


def cmd_fields(args: argparse.Namespace) -> int:
    """Every config field under PREFIX by its dotted path (the --set flag), with its type, default and meaning."""
    from rnnlab.fields import describe_config, format_sections, select

    print("\n".join(format_sections(select(describe_config(), args.prefix))))
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    from rnnlab.dashboard import serve_dashboard
    from rnnlab.storage import localize

    if not 1 <= args.port <= 65535:
        raise ConfigError("--port", f"got {args.port}; valid: 1..65535")
    serve_dashboard(localize(args.search_dir), args.host, args.port)
    return 0


COMMANDS = {  # the subcommand (cli_args.build_parser) -> what runs it
    "run": cmd_run,
    "sync": cmd_sync,
    "tune": cmd_tune,
    "replay": cmd_replay,
    "preflight": cmd_preflight,
    "report": cmd_report,
    "dashboard": cmd_dashboard,
    "fields": cmd_fields,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser(__doc__.splitlines()[0]).parse_args(argv)
    with console.output(getattr(args, "verbosity", console.DEFAULT)):
        try:
            check_arguments(args)
            return COMMANDS[args.command](args)
        except ConfigError as err:
            logger.error(str(err))
            return EXIT_BAD_INPUT
        except KeyboardInterrupt as err:  # Ctrl-C (a search's SIGTERM: Terminated) where no command handles it: a
            from rnnlab.tune.stop_signals import Terminated  # search's launch does once it has a search.json

            started = " before the search started: nothing was recorded" if args.command == "tune" else ""
            terminated = isinstance(err, Terminated)  # `run` handles its own
            logger.warning(f"rnnlab {args.command} {err if terminated else 'interrupted'}{started}")
            return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
        except OSError as err:  # the environment, not rnnlab: a full disk, a read-only or vanished folder
            from rnnlab.records import environment_fault

            if environment_fault(err) is None:
                raise
            if args.command != "run":  # a search says so itself once it has a folder; report, replay: no state
                where, flag = (
                    f" ({err.filename})" if err.filename else "",
                    "--storage" if args.command == "tune" else "--out",
                )
                logger.error(
                    f"{err.strerror}{where}: rnnlab {args.command} could not write; free space or choose another {flag}"
                )
                return EXIT_ENVIRONMENT
            logger.error(
                f"{err.strerror} ({err.filename or 'writing the run'}): free space or choose another "
                "folder; a run folder keeps its completed epochs (--resume continues from its last valid "
                "checkpoint; with none, delete the folder)"
            )
            return EXIT_ENVIRONMENT
        except (MemoryError, RuntimeError) as err:  # the model or data does not fit in memory
            from rnnlab.trial import is_out_of_memory

            if not is_out_of_memory(err):
                raise
            hint = getattr(err, "hint", "lower model.hidden_size, model.num_layers or train.batch_size")
            logger.error(f"out of memory ({str(err)[:200]}): {hint}")
            return EXIT_ENVIRONMENT


def entry() -> int:
    """The `rnnlab` command as a process: `main`, then the interpreter's last garbage collection is skipped. It would
    walk the whole heap of torch, Ray, W&B, Optuna and matplotlib at exit (1-3 s, measured, after `rnnlab tune`);
    the exit handlers (W&B's teardown, Ray's shutdown, the journal's sync) still run, and the OS frees the rest.
    Only the process's own entry point does this: a caller of `main` (a test) keeps its collector. A closed stdout
    (`rnnlab fields | head -1`) ends it quietly, stdout pointed at devnull so the last flush cannot raise again
    (Python's recipe); a broken pipe that is not stdout's (a worker's socket) keeps its traceback."""
    try:
        code = main()
        sys.stdout.flush()  # inside the try: a short output still sits in the buffer
    except BrokenPipeError:
        poller = select.poll()  # the write end of a pipe whose reader has gone polls as an error
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        if not any(events & select.POLLERR for _, events in poller.poll(0)):
            raise
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    gc.freeze()
    return code


if __name__ == "__main__":
    sys.exit(entry())
