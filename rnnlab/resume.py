"""What `--resume` checks before it writes: the run folder's stored config against the new one, its data, its
checkpoints. A resumed run may extend or observe what was computed (more epochs, patience, tracking, threads),
never change it (the experiment, a width, the seed, the data): that is refused, naming the fields that differ.
A resumed search likewise (`check_search_resume`), with its own list of the fields it may change, and its data
(`check_search_data`): the trials a resume adds must be computed on the data its earlier trials were.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
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


def check_resume_data(out: Path, fingerprint: str, content: str = "") -> None:
    """The data a resumed run loads now is the data it was trained on (provenance.json's fingerprint, or its
    prepared data's digest when other code prepares them now)."""
    provenance = read_stored(out, "provenance.json")
    stored = provenance.get("data.fingerprint")
    if content and provenance.get("data.content") == content:
        return
    if stored and fingerprint and stored != fingerprint:
        raise ConfigError(
            "--resume",
            f"the data changed since the run in {out} started (fingerprint {stored} -> "
            f"{fingerprint}); start a new run with another --out",
        )


# --- a resumed search's data ------------------------------------------------------------------------------------


def data_record(cfg: Config, data) -> dict[str, Any]:
    """What search.json records of the data its driver prepared (`data`, for the base config): `source_record`."""
    return source_record(cfg, data.fingerprint, data.meta.get("commit"), data.content)


def source_record(cfg: Config, fingerprint: str, commit: str | None = None, content: str = "") -> dict[str, Any]:
    """The fingerprint of `cfg`'s data and, to say what changed, a hub dataset's resolved commit or a local source's
    files (split, path, size, mtime and content digest), with the versions of the code that prepared them; and the
    prepared data's own digest (`content`), which says whether other code (a newer rnnlab) prepares the same data."""
    import datasets

    from rnnlab.data.cache import code_hash
    from rnnlab.data.sources import local_identity
    from rnnlab.tasks import task_of

    record: dict[str, Any] = {"fingerprint": fingerprint}
    if content:
        record["content"] = content
    if cfg.data.source == "local":
        record["files"] = [[*entry, file_digest(entry[1])] for entry in local_identity(cfg.data)]
        record.update(code=code_hash(task_of(cfg.data.task)), datasets=datasets.__version__)
    if commit:
        record["commit"] = commit
    return record


def file_digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def same_content(was: dict[str, Any], now: dict[str, Any]) -> bool:
    """Local files whose fingerprints differ only as files touched or copied over do (a fresh clone, a new head
    node; the fingerprint keys their mtimes): each split's content as it was, prepared by the same code."""
    files = was.get("files") or []
    if not files or any(len(f) < 5 for f in files) or any(was.get(k) != now.get(k) for k in ("code", "datasets")):
        return False
    return same_source(was, now)


def same_source(was: dict[str, Any], now: dict[str, Any]) -> bool | None:
    """Whether two data records read the same source: each split's files with the same content digests, or the same
    hub commit (a built-in dataset has neither: its config and seed are keyed). None when `was` lists files without
    their digests (a search.json written before it recorded them): that cannot be told."""
    files = was.get("files")
    if files is None:
        return was.get("commit") == now.get("commit")
    if any(len(f) < 5 for f in files):
        return None
    return sorted((f[0], f[4]) for f in files) == sorted((f[0], f[4]) for f in now.get("files", []))


def same_prepared(was: dict[str, Any], now: dict[str, Any]) -> bool:
    """The data prepared now are those prepared at launch, value for value, though the code preparing them changed
    (an upgraded rnnlab: the fingerprint keys its data modules' source)."""
    return bool(was.get("content")) and was.get("content") == now.get("content")


def trials_fingerprints(folder: Path, cfg: Config) -> Counter:
    """The fingerprints the trials' result.json files hold, of the trials whose data config and seed are the base
    config's (a space may vary data.* or run seed replicates: those trials' data have fingerprints of their own)."""
    from rnnlab.search_folder import read_json

    base = json.loads(json.dumps(to_flat_dict(cfg), default=str))
    keyed = {k: v for k, v in base.items() if k == "seed" or (k.startswith("data.") and k != "data.cache_dir")}
    found: Counter = Counter()
    for trial in sorted(Path(folder, "trials").glob("*/")):
        for out in (trial, trial / "seed_0"):  # seed_0 of replicates runs the base seed
            fingerprint = read_json(out / "result.json").get("data/fingerprint")
            flat = read_json(out / "config.json").get("flat") or {}
            if fingerprint and all(flat.get(k) == v for k, v in keyed.items()):
                found[fingerprint] += 1
                break
    return found


def check_search_data(spec, cfg: Config, now: dict[str, Any]) -> None:
    """`tune --resume`: the data prepared now (`now`, a `data_record`) are those the search computed its trials on,
    as search.json recorded them at launch or, for a search saved before it did, as most of its trials' result.json
    files say. Refused before any work otherwise: trials on other data are not comparable in one study."""
    was, source = spec.data.get("fingerprint"), "recorded in search.json at its launch"
    if not was:
        found = trials_fingerprints(Path(spec.folder), cfg)
        if not found:
            return
        was, held = found.most_common(1)[0]
        source = f"held by {held} of its trials' result.json"
        if len(found) > 1:
            source += f"; it already mixes {len(found)} data: {', '.join(f'{f} ({n})' for f, n in found.items())}"
    if was == now["fingerprint"] or same_content(spec.data, now) or same_prepared(spec.data, now):
        return
    changed, remedy = what_changed_in_data(spec.data, now)
    raise ConfigError(
        "data",
        f"the data (data.source={cfg.data.source}, data.name={cfg.data.name}) differ from those the search in "
        f"{spec.folder} computed its trials on (fingerprint {was} -> {now['fingerprint']}, {source}): {changed}. "
        f"Its trials and new ones would be mixed in one study and one report, their values not comparable: {remedy}",
    )


NEW_SEARCH = "start a new search on these data with another --name"


def what_changed_in_data(was: dict[str, Any], now: dict[str, Any]) -> tuple[str, str]:
    """What differs between the data records `was` and `now` (their files, their commit), and the way on."""
    if "files" in was and "files" in now:
        before = {(f[0], f[1]): f[2:] for f in was["files"]}
        after = {(f[0], f[1]): f[2:] for f in now["files"]}
        lines = [f"{split} file {path} is gone" for split, path in before.keys() - after.keys()]
        lines += [f"{split} file {path} is new" for split, path in after.keys() - before.keys()]
        for (split, path), (size, mtime, *digest) in sorted(before.items()):
            new_size, new_mtime, *new_digest = after.get((split, path), (size, mtime, *digest))
            if (new_size, new_digest) != (size, digest):
                lines.append(
                    f"{split} file {path} changed (size {size} -> {new_size} bytes, modified {when(mtime)} -> "
                    f"{when(new_mtime)})"
                )
        if lines:
            return "; ".join(sorted(lines)), f"restore the files as they were, or {NEW_SEARCH}"
    if "commit" in was and was["commit"] != now.get("commit"):
        return (
            f"the hub dataset's revision moved from commit {was['commit']} to {now.get('commit')}",
            f"{NEW_SEARCH} (or on the earlier data, with --set data.revision={was['commit']})",
        )
    if was.get("fingerprint"):  # the same files and commit, the same data config and seed: the code preparing them
        moved = [
            f"{k} {was[k][:12]} -> {now.get(k, '-')[:12]}"
            for k in ("code", "datasets")
            if was.get(k, now.get(k)) != now.get(k)
        ]
        which = f" ({'; '.join(moved)})" if moved else ""
        if was.get("content"):
            prepared = f", and it prepares other data now (content {was['content']} -> {now.get('content', '-')})"
        else:  # recorded before search.json held the prepared data's digest
            prepared = "; this search recorded no digest of its prepared data to tell whether they are the same"
        return (
            "their source is as recorded (the same files' content, commit or built-in task), so rnnlab's data "
            f"preparation (rnnlab/data, rnnlab/tasks) or the datasets library changed since{which}{prepared}",
            f"resume with the versions that launched the search, or {NEW_SEARCH}",
        )
    return (
        "the data files, the hub revision's commit or rnnlab's data preparation changed since",
        f"restore the data as they were, or {NEW_SEARCH}",
    )


def when(mtime_ns: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(mtime_ns / 1e9))
