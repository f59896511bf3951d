"""What `--resume` checks before it writes: the run folder's stored config against the new one, its data, its
checkpoints. A resumed run may extend or observe what was computed (more epochs, patience, tracking, threads),
never change it (the experiment, a width, the seed, the data): that is refused, naming the fields that differ.
A resumed search likewise (`check_search_resume`), with its own list of the fields it may change.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rnnlab.checkpoint import is_valid, list_checkpoints
from rnnlab.config import Config, ConfigError
from rnnlab.config.overrides import to_flat_dict

# Fields (or dotted prefixes) a resumed run may change: they extend the run or observe it, and leave the epochs
# already computed as they were.
MAY_CHANGE = (
    "name",
    "train.epochs",
    "train.patience",
    "train.threads",
    "train.device",
    "train.diagnostics_every",
    "train.flush_denormal",
    "tracking.",
    "search.",
)


# Fields a resumed *search* may change: its budget, its resources and limits, what observes it. Not epochs or
# patience (the trials already told would have run under other ones), nor the sampler, scheduler or objectives.
SEARCH_MAY_CHANGE = (
    "name",
    "train.threads",
    "train.device",
    "train.diagnostics_every",
    "train.flush_denormal",
    "tracking.",
    "search.samples",
    "search.concurrency",
    "search.cpus_per_trial",
    "search.gpus_per_trial",
    "search.max_failures",
    "search.memory_per_trial_mb",
    "search.reuse_workers",
    "search.trial_time_limit_s",
)


# Fields under a prefix above that still change what a run computes: the seeds it replicates (its result.json is
# their mean, and its folder holds seed_<i>/ records, or a single seed's at its top).
NEVER_CHANGE = ("search.seeds",)


def may_change(path: str, allowed: tuple[str, ...] = MAY_CHANGE) -> bool:
    if path in NEVER_CHANGE:
        return False
    return any(path == p or (p.endswith(".") and path.startswith(p)) for p in allowed)


def read_stored(out: Path, name: str) -> dict[str, Any]:
    try:
        return json.loads((out / name).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise ConfigError(
            "--resume",
            f"{out / name} is unreadable ({err}); the run cannot be checked, so it is not "
            "resumed: start over with another --out",
        ) from None


def differing_fields(stored: dict[str, Any], cfg: Config, allowed: tuple[str, ...] = MAY_CHANGE) -> list[str]:
    """`path (stored -> new)` for each field that differs and is not one a resume may change."""
    new = json.loads(json.dumps(to_flat_dict(cfg), default=str))  # as stored: lists, not tuples
    paths = sorted(set(stored) | set(new))
    return [
        f"{p} ({stored.get(p)!r} -> {new.get(p)!r})"
        for p in paths
        if stored.get(p) != new.get(p) and not may_change(p, allowed)
    ]


def check_search_resume(folder: Path, stored: dict[str, Any], cfg: Config) -> None:
    """`tune --resume` with --set, --samples, --concurrency or --device: the search's config (`stored`, flat) may
    only change where it extends or observes the search; anything else is refused before work, naming the fields."""
    if differing := differing_fields(stored, cfg, SEARCH_MAY_CHANGE):
        raise ConfigError(
            "--resume",
            f"the search in {folder} was computed with other values of: {'; '.join(differing)}. A resume may "
            f"change only {', '.join(p.rstrip('.') for p in SEARCH_MAY_CHANGE)}; start a new search (another "
            "--name) for the rest",
        )


def check_one_search_folder(given: Path, name: str | None, storage: str) -> None:
    """A resume given a search folder refuses a --name or --storage naming another one (it used to ignore them)."""
    named = [flag for flag, value in (("--name", name), ("--storage", storage != "searches" and storage)) if value]
    if named and (Path(storage) / (name or given.name)).resolve() != given.resolve():
        raise ConfigError(
            named[0],
            f"the search folder {given} is given and {' and '.join(named)} name(s) another "
            f"({Path(storage) / (name or given.name)}); give the folder alone, or --storage and --name alone",
        )


def resumed_experiment(spec, overrides: dict[str, str]):
    """The experiment of a resumed search with the new overrides, checked against the config it was computed with
    (search.json's, or for a search saved before it held one, its stored overrides'); `spec` takes them."""
    from rnnlab.experiment import load_experiment

    merged = {**spec.overrides, **overrides}
    exp = load_experiment(spec.experiment, merged)
    stored = spec.config or to_flat_dict(load_experiment(spec.experiment, spec.overrides).config)
    check_search_resume(Path(spec.folder), stored, exp.config)
    spec.overrides, spec.config = merged, json.loads(json.dumps(to_flat_dict(exp.config), default=str))
    return exp


def check_resume(out: Path, cfg: Config) -> None:
    """Before anything is written: the folder holds a run of this config and a valid checkpoint to continue from."""
    stored = read_stored(out, "config.json").get("flat")
    if stored is None:
        raise ConfigError(
            "--resume",
            f"{out} holds no config.json (a run's files without it: removed or never written), so the run cannot "
            "be checked and is not resumed: start over with another --out",
        )
    if differing := differing_fields(stored, cfg):
        raise ConfigError(
            "--resume",
            f"the run in {out} was computed with other values of: {'; '.join(differing)}. "
            "Resume it with its own config, or start a new run with another --out",
        )
    folders = [out / "checkpoints", *sorted(out.glob("seed_*/checkpoints"))]  # seed replicates keep their own
    checkpoints = [c for folder in folders for c in list_checkpoints(folder)]
    if not any(is_valid(c) for c in checkpoints):
        found = f"{len(checkpoints)} checkpoint(s), all incomplete or corrupted" if checkpoints else "no checkpoint"
        raise ConfigError(
            "--resume",
            f"{out} has {found}: nothing valid to continue from. Start over explicitly: "
            f"delete {out} or choose another --out",
        )


def check_resume_data(out: Path, fingerprint: str) -> None:
    """The data a resumed run loads now is the data it was trained on (provenance.json's fingerprint)."""
    stored = read_stored(out, "provenance.json").get("data.fingerprint")
    if stored and fingerprint and stored != fingerprint:
        raise ConfigError(
            "--resume",
            f"the data changed since the run in {out} started (fingerprint {stored} -> "
            f"{fingerprint}); start a new run with another --out",
        )
