"""What the `rnnlab` command line was given, checked before any work starts: the experiment and its overrides,
no argument empty, each number in its range, an --out that can be a folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from rnnlab.config import ConfigError
from rnnlab.config.checks import MAX_CONCURRENCY, MAX_SAMPLES, MAX_WAIT_S
from rnnlab.config.overrides import parse_set_args
from rnnlab.search_folder import refuse_the_file


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
