"""The `rnnlab` command line's arguments: what each command takes (`build_parser`), and what it was given, checked
before any work starts: the experiment and its overrides, no argument empty, each number in its range, an --out
that can be a folder."""

from __future__ import annotations

import argparse
from pathlib import Path

import rnnlab
from rnnlab import console
from rnnlab.config import ConfigError
from rnnlab.config.checks import MAX_CONCURRENCY, MAX_SAMPLES, MAX_WAIT_S
from rnnlab.config.overrides import parse_set_args
from rnnlab.search_folder import refuse_the_file

# --- what each command takes -----------------------------------------------------------------------------------


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "experiment",
        nargs="?",
        help="experiment file: a path, or a name looked up in ./experiments, then in the experiments "
        "folder of rnnlab's checkout",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field by its dotted path, e.g. model.hidden_size=64 (rnnlab fields lists them)",
    )
    parser.add_argument("--device", help="force a device (cpu, cuda, cuda:N); default: CUDA when present")


def verbosity_flags() -> argparse.ArgumentParser:
    """-v/-q, accepted before the subcommand and after it (SUPPRESS: a subcommand's absent flag keeps the other)."""
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument(
        "-v",
        "--verbose",
        action="store_const",
        const=console.VERBOSE,
        dest="verbosity",
        default=argparse.SUPPRESS,
        help="also the output of Ray Tune, Ray, Optuna, wandb",
    )
    flags.add_argument(
        "-q",
        "--quiet",
        action="store_const",
        const=console.QUIET,
        dest="verbosity",
        default=argparse.SUPPRESS,
        help="only warnings, errors and the results",
    )
    return flags


def build_parser(description: str) -> argparse.ArgumentParser:
    """The parser of every command: its arguments, their defaults and help; `args.command` names the one given."""
    flags = verbosity_flags()
    parser = argparse.ArgumentParser(prog="rnnlab", description=description, parents=[flags])
    parser.add_argument("--version", action="version", version=f"rnnlab {rnnlab.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    add = lambda name, **kw: sub.add_parser(name, parents=[flags], **kw)  # noqa: E731
    run = add("run", help="run one trial in-process (no Ray)")
    add_common(run)
    run.add_argument("--out", help="run folder (default: runs/NAME-TIMESTAMP)")
    run.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    sync = add("sync", help="upload offline W&B runs (needs WANDB_API_KEY and a network)")
    sync.add_argument("path", help="a run or search folder, any folder holding them, or a search's URI")
    sync.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for each run's upload")
    tune = add("tune", help="search the experiment's search_space with Ray Tune + Optuna")
    add_common(tune)
    tune.add_argument("--samples", type=int, help="trials in total (shorthand for --set search.samples=N)")
    tune.add_argument("--concurrency", type=int, help="trials at once (shorthand for --set search.concurrency=K)")
    tune.add_argument("--address", help="join a running Ray cluster: auto, ray://host:10001 or host:6379")
    tune.add_argument(
        "--storage",
        default="searches",
        help="folder, shared folder or URI (s3://bucket/path?endpoint_override=host:port, gs://...) of "
        "searches; a URI holds the whole search (every node uploads what it writes; credentials from "
        "the environment), worked on in ./searches/NAME",
    )
    tune.add_argument("--name", help="search name, its folder under --storage (default: NAME-TIMESTAMP)")
    tune.add_argument(
        "--resume",
        action="store_true",
        help="continue a search whose driver died (EXPERIMENT may be its folder); more --samples extend a finished one",
    )
    replay = add("replay", help="re-run one trial of a search in-process (no Ray) and compare metrics")
    replay.add_argument("search_dir", help="the search folder (holds search.json) or its URI, <storage>/<name>")
    replay.add_argument("trial_id", help="the trial's id (its folder under trials/)")
    replay.add_argument("--out", help="folder of the replay (default: SEARCH_DIR/replays/TRIAL_ID-TIMESTAMP)")
    preflight = add("preflight", help="check trials fit the cluster and reach storage, data and W&B")
    add_common(preflight)
    preflight.add_argument("--address", help="Ray cluster to check: auto or host:6379 (default: this machine)")
    preflight.add_argument("--storage", default="searches", help="the --storage of the search (folder or URI)")
    preflight.add_argument("--cluster-config", help="a `ray up` YAML: trials must also fit one of its node types")
    report = add("report", help="a search's HTML report and markdown summary (best trials, families)")
    report.add_argument("search_dir", help="the search folder (holds search.json) or its URI, <storage>/<name>")
    report.add_argument("--out", help="folder of the report (default: SEARCH_DIR/report)")
    dashboard = add("dashboard", help="serve a search's Optuna study in optuna-dashboard")
    dashboard.add_argument("search_dir", help="the search folder (holds search.json and optuna.journal) or its URI")
    dashboard.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: reachable remotely)")
    dashboard.add_argument("--port", type=int, default=8080)
    fields = add("fields", help="list the config fields (the --set paths) with type, default and meaning")
    fields.add_argument("prefix", nargs="?", help="only the fields under this dotted path, e.g. optim or model.esn")
    return parser


# --- what it was given -----------------------------------------------------------------------------------------


def experiment_from(args: argparse.Namespace) -> str:
    """The EXPERIMENT argument, also when `--set a=1 NAME` took it as one more override (it has no `=`)."""
    if args.experiment is None and args.overrides and "=" not in args.overrides[-1]:
        args.experiment = args.overrides.pop()
    if args.experiment is None:
        raise ConfigError("experiment", "missing: give an experiment file or name (rnnlab run NAME --set k=v ...)")
    stray = [item for item in args.overrides if "=" not in item]
    if stray:
        raise ConfigError(
            "--set",
            f"{stray[0]!r} is not KEY=VALUE; put the experiment before --set, e.g. "
            f"rnnlab {args.command} {args.experiment} --set model.hidden_size=64",
        )
    return args.experiment


def overrides_from(args: argparse.Namespace, **flags: str) -> dict[str, str]:
    """The --set overrides and the shorthand flags (`--device` and `flags`, {flag name: field path}) given."""
    overrides = parse_set_args(args.overrides)
    for flag, path in {"device": "train.device", **flags}.items():
        value = getattr(args, flag, None)
        if value is None:
            continue
        if path in overrides:  # one of the two would be dropped without a word
            raise ConfigError(path, f"given by --{flag} {value} and by --set {path}={overrides[path]}; give it once")
        overrides[path] = str(value)
    return overrides


def check_out_folder(out: str | None) -> None:
    if out is None:
        return
    existing = next((p for p in (Path(out), *Path(out).parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():  # --out itself, or a file where one of its folders would go
        raise ConfigError("--out", f"{existing} is a file, not a folder; choose another --out")


POSITIONALS = ("experiment", "path", "search_dir", "trial_id", "prefix")  # the arguments that are no --flag
AT_LEAST_ONE = ("samples", "concurrency")  # counts of trials
SEARCH_FOLDERS = ("search_dir", "path", "experiment")  # the arguments that may name a search folder (tune: --resume)


def check_arguments(args: argparse.Namespace) -> None:
    """No argument given empty or blank (--out '' ran in the current folder, `sync ''` synced it, --storage ''
    searched in it), and each number in its range (`sync --timeout -1` was taken), before any work starts."""
    for dest, value in vars(args).items():
        flag = dest if dest in POSITIONALS else "--" + dest.replace("_", "-")
        if isinstance(value, str) and not value.strip():
            hint = f"give the {dest.replace('_', ' ')}" if dest in POSITIONALS else f"give a value or leave {flag} out"
            raise ConfigError(flag, f"is empty ({value!r}); {hint}")
        if dest in AT_LEAST_ONE and value is not None and value < 1:
            raise ConfigError(flag, f"must be >= 1, got {value}")
    for dest in SEARCH_FOLDERS:  # report, replay, dashboard, sync, tune --resume
        if isinstance(value := getattr(args, dest, None), str) and (dest != "experiment" or getattr(args, "resume", 0)):
            refuse_the_file(value, dest)
    samples = getattr(args, "samples", None)
    if samples is not None and samples > MAX_SAMPLES:  # search.samples' bound, named by the flag given
        raise ConfigError("--samples", f"must be at most {MAX_SAMPLES} (search.samples), got {samples}")
    concurrency = getattr(args, "concurrency", None)
    if concurrency is not None and concurrency > MAX_CONCURRENCY:  # search.concurrency's bound, by the flag given
        raise ConfigError("--concurrency", f"must be at most {MAX_CONCURRENCY} (search.concurrency), got {concurrency}")
    timeout = getattr(args, "timeout", None)
    if timeout is not None and not 0 < timeout <= MAX_WAIT_S:  # 1e10 overflowed in subprocess's wait, a traceback
        raise ConfigError("--timeout", f"seconds, > 0 and at most {MAX_WAIT_S:g}; got {timeout}")
