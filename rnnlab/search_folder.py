"""A search folder's layout and its records, read without Ray: the spec (`search.json`, refused when a newer rnnlab
wrote it), the Optuna study (an append-only journal), each trial's folder and rows.

The bottom of the search path: the tune driver, the trainable, tracking, the report and replay build on it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnlab.config import ConfigError

SEARCH_FILE = "search.json"
JOURNAL_FILE = "optuna.journal"
RAY_DIR = "ray"
TRIALS_DIR = "trials"
STUDY_NAME = "search"
# search.json's format, saved with the version of the rnnlab that wrote it (files saved before either: format 0):
# raise it when a field is added or a field's meaning changes, so that an older rnnlab refuses the file by name
SEARCH_FORMAT = 1
WRITER_FIELDS = ("format", "rnnlab_version")  # what search.json says of the rnnlab that wrote it, not of the search


class NewerSearch(ConfigError):
    """A search.json that an rnnlab newer than this one wrote: this one cannot tell what it asks of a reader."""


def running_version() -> str:
    """This rnnlab's version ("unknown" for a checkout never installed), as search.json records it."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rnnlab")
    except PackageNotFoundError:
        return "unknown"


def refuse_the_file(path: str | Path, field: str) -> None:
    """A search is named by its folder: the path of its search.json (said "holds no search.json") is refused naming
    the folder to give."""
    path = Path(path)
    if path.name == SEARCH_FILE and path.is_file():
        raise ConfigError(field, f"{path} is the search's {SEARCH_FILE}: give its folder {path.parent}, not the file")


@dataclass
class SearchSpec:
    """What `search.json` holds: enough to resume, extend or replay the search with nothing else."""

    experiment: str  # absolute path of the experiment file
    name: str
    storage: str  # local folder or URI holding Ray's experiment state
    folder: str  # absolute local folder of the search (journal, trials, report)
    overrides: dict[str, str] = field(default_factory=dict)  # the --set of the search, shrinking included
    metric: str = "val/loss"
    mode: str = "min"
    objectives: list[str] = field(default_factory=list)
    ray_runs: list[str] = field(default_factory=lambda: [RAY_DIR])  # one per launch that added trials
    config: dict[str, Any] = field(default_factory=dict)  # the resolved config, flat, that a resume is checked against
    search_id: str = ""  # random, drawn when planned: names the search-level W&B run ("" in older searches)
    # the data its driver prepared for the base config: fingerprint, and files or commit; a resume must find them
    # again ({} in older searches, checked against their trials' result.json: resume.check_search_data)
    data: dict[str, Any] = field(default_factory=dict)
    uri: str = ""  # a bucket search's URI as it was last given (a copy's own, not <storage>/<name>); "" until then

    def save(self) -> None:
        """Written whole or not at all (a kill or a full disk mid-write keeps the previous search.json), with the
        format and the version of the rnnlab writing it first."""
        from rnnlab.checkpoint import atomic_write_bytes

        record = {"format": SEARCH_FORMAT, "rnnlab_version": running_version(), **dataclasses.asdict(self)}
        atomic_write_bytes(Path(self.folder, SEARCH_FILE), (json.dumps(record, indent=2) + "\n").encode())

    @classmethod
    def load(cls, folder: str | Path) -> SearchSpec:
        refuse_the_file(folder, "search")
        path = Path(folder) / SEARCH_FILE
        if not path.is_file():
            raise ConfigError("search", f"{folder} holds no {SEARCH_FILE}: not a search folder")
        try:
            record = json.loads(path.read_text())
            if not isinstance(record, dict):
                raise TypeError(f"it holds a JSON {type(record).__name__}, not an object")
            refuse_a_newer_search(record, path)
            spec = cls(**{key: value for key, value in record.items() if key not in WRITER_FIELDS})
        except NewerSearch:
            raise
        except (ValueError, TypeError) as err:  # a torn or hand-edited file: say so, touch nothing
            raise ConfigError(
                "search",
                f"{path} is not a valid {SEARCH_FILE} ({err}); restore it or start a new search with another --name",
            ) from None
        return spec.relocated(Path(folder).resolve())

    def relocated(self, folder: Path) -> SearchSpec:
        """The spec of the search where it is now: a copied or moved folder is its own search, never the original,
        with its own search-level W&B run (a sync would otherwise overwrite the original's). A bucket search's local
        folder is wherever the machine reading it downloads it: it is the same search (storage.localize)."""
        if Path(self.folder) == folder:
            return self
        if "://" in self.storage:
            return dataclasses.replace(self, folder=str(folder))
        return dataclasses.replace(self, folder=str(folder), storage=str(folder.parent), search_id=new_search_id())


def refuse_a_newer_search(record: dict[str, Any], where: str | Path) -> None:
    """A search.json of a format past this rnnlab's, or with fields it does not know, is refused naming the rnnlab
    that wrote it. Never read without them: a field may change what a resume must check, and a save would drop it."""
    written = record.get("format", 0)
    unknown = sorted(set(record) - {f.name for f in dataclasses.fields(SearchSpec)} - set(WRITER_FIELDS))
    if not unknown and isinstance(written, int) and written <= SEARCH_FORMAT:
        return
    version = record.get("rnnlab_version")
    by = f"rnnlab {version}" if version else "an rnnlab that did not record its version"
    fields = f" and does not know its field(s) {', '.join(unknown)}" if unknown else ""
    raise NewerSearch(
        "search",
        f"{where} was written by {by} ({SEARCH_FILE} format {written!r}); this is rnnlab {running_version()}, which "
        f"reads format {SEARCH_FORMAT} and older{fields}: upgrade rnnlab to {version or 'the one that wrote it'} or "
        "later to resume, replay, report, serve or sync this search (it is left as it is)",
    )


def refuse_newer_searches(paths: list[str | Path]) -> None:
    """`refuse_a_newer_search` for every search folder that is or holds one of `paths` (what `rnnlab sync` uploads)."""
    folders = {p for path in paths for p in (Path(path).resolve(), *Path(path).resolve().parents)}
    for folder in sorted(f for f in folders if (f / SEARCH_FILE).is_file()):
        refuse_a_newer_search(read_json(folder / SEARCH_FILE), folder / SEARCH_FILE)


def new_search_id() -> str:
    """Random, drawn when a search is planned or found copied: names its search-level W&B run."""
    import secrets

    return secrets.token_hex(4)


def set_aside_torn_tail(folder: str | Path) -> Path | None:
    """Cut a last journal line without its newline (a kill mid-append) into `optuna.journal.torn-<time>`; the path,
    or None when the journal ends whole. Only the driver holding the folder may call it, and it holds the journal's
    lock meanwhile, the one every Optuna writer appends under (another process's study, optuna-dashboard): a record
    half written by a live writer is not torn; one whose writer died holds the lock until Optuna's grace period
    (30 s) lets it go. Optuna's reader skips such a fragment, but a record appended after it is lost with it."""
    from optuna.storages.journal import JournalFileSymlinkLock

    path = Path(folder) / JOURNAL_FILE
    if not path.is_file():
        return None
    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()
    try:
        with open(path, "rb+") as f:
            data = f.read()
            if not data or data.endswith(b"\n"):
                return None
            cut = data.rfind(b"\n") + 1
            aside = path.with_name(f"{JOURNAL_FILE}.torn-{time.strftime('%Y%m%d-%H%M%S')}")
            aside.write_bytes(data[cut:])
            f.truncate(cut)
            f.flush()
            os.fsync(f.fileno())
    finally:
        lock.release()
    return aside


def trial_folder(spec: SearchSpec, trial_id: str) -> Path:
    return Path(spec.folder, TRIALS_DIR, trial_id)


def open_study_storage(folder: str | Path):
    """The Optuna journal of the search: an append-only file that only the driver writes."""
    from optuna.storages import JournalStorage

    from rnnlab.journal import JournalFile

    return JournalStorage(JournalFile(str(Path(folder).resolve() / JOURNAL_FILE)))


def has_study(folder: str | Path) -> bool:
    """Whether the search's driver has created its study: the journal exists and holds a record."""
    journal = Path(folder, JOURNAL_FILE)
    return journal.is_file() and journal.stat().st_size > 0


def load_study(folder: str | Path):
    """The search's study; a journal corrupted inside (not just a torn last record) is a ConfigError naming it, and
    so is a search whose driver has not created its study yet (opening the journal would create the file)."""
    import optuna

    if not has_study(folder):
        raise ConfigError(
            "search",
            f"{folder} holds no Optuna study yet ({JOURNAL_FILE} missing or empty): its search has not started a "
            f"trial, or its driver died first (rnnlab tune {folder} --resume starts it)",
        )
    try:
        return optuna.load_study(study_name=STUDY_NAME, storage=open_study_storage(folder))
    except ValueError as err:  # JSONDecodeError, or Optuna's "Invalid log format." for a torn line followed by more
        raise ConfigError(
            "search",
            f"{Path(folder) / JOURNAL_FILE} is corrupted inside ({err}); the study cannot be "
            "read: restore the file from a copy",
        ) from None


def read_json(path: Path) -> dict[str, Any]:
    """A record file's object; {} for one missing, torn or not an object (a reader never fails on a trial's file)."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


ORPHANED = "orphaned"  # how the reason of a trial that ended FAIL without running to its end begins
LOST_REASON = (
    f"{ORPHANED}: it was running when the driver died (or a full disk stopped the search), after Ray's last "
    "whole save of its state, so Ray could not resume it; another trial took its place"
)
TIME_LIMIT = "exceeded search.trial_time_limit_s"  # how the reason of a trial its time limit ended begins
DRIVER_FAILED = "the driver failed"  # how the reason of a trial running when its driver raised begins


def ended_by_the_driver(result: dict[str, Any]) -> bool:
    """A trial's result.json that its driver's death or failure ended (an orphan): it never ran to its own end."""
    reason = str(result.get("reason", ""))
    return result.get("status") == "failed" and reason.startswith((ORPHANED, DRIVER_FAILED))


def ended_by_time_limit(result: dict[str, Any]) -> bool:
    """A trial's result.json whose attempt its time limit ended: a stop by the clock, not by its config."""
    return result.get("status") == "failed" and str(result.get("reason", "")).startswith(TIME_LIMIT)


def counts_as_sample(t) -> bool:
    """A trial of the search's budget (search.samples): one asked for a Ray trial, running or ended, except an
    orphan (asked and never run, or lost with a dead driver), which another trial replaces."""
    if "ray_trial_id" not in t.user_attrs:  # the space raised on its draw, or the driver died while asking
        return False
    return not (t.state.name == "FAIL" and str(t.user_attrs.get("reason", "")).startswith(ORPHANED))


def close_orphans(
    spec: SearchSpec, reason: str = f"{ORPHANED}: asked before the driver died; not run", only: set[str] | None = None
) -> list[str]:
    """Mark FAIL the study's trials still RUNNING after Ray finished (asked just before a driver died, never run),
    or after the driver itself failed; with `only`, those of these Ray trial ids. Returns their Ray ids."""
    import optuna
    from optuna.trial import TrialState

    closed = []
    storage = open_study_storage(spec.folder)  # a storage's own public API sets an attr of a trial by its id
    study = optuna.load_study(study_name=STUDY_NAME, storage=storage)
    study_id = storage.get_study_id_from_name(STUDY_NAME)
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        ray_id = t.user_attrs.get("ray_trial_id")
        if only is not None and ray_id not in only:
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        storage.set_trial_user_attr(trial_id, "reason", reason)
        study.tell(t.number, state=TrialState.FAIL)
        closed += [ray_id] if ray_id else []
    return closed


def trial_family(folder: Path, base: str) -> str:
    """The model family of a trial whose search did not suggest `model.family`: what its config says, else what
    the searcher sent it (params.json), else the search's own (`base`). A torn config.json made it "-", a family
    of its own in the report, compared against the real one."""
    config = read_json(folder / "config.json") or read_json(folder / "seed_0" / "config.json")
    return config.get("flat", {}).get("model.family") or read_json(folder / "params.json").get("model.family") or base


def trial_params(spec: SearchSpec, t) -> dict[str, Any]:
    """What Optuna trial `t` ran with beyond the base config: the study's parameters, then what its search_space
    returned beside them (a constant, a value derived from another: no Optuna parameter, yet the trial ran it), as
    the searcher sent them (params.json); the study's alone for a trial that never wrote it."""
    sent = read_json(trial_folder(spec, t.user_attrs.get("ray_trial_id", "-")) / "params.json")
    sent.pop("optuna_trial_number", None)  # the searcher's own key (tune.trainable.NUMBER_KEY), not a config path
    return {**t.params, **{k: v for k, v in sent.items() if k not in t.params}}


def trial_rows(spec: SearchSpec, study) -> list[dict[str, Any]]:
    """One row per Optuna trial, best first: finished trials by value, then pruned, then failed."""
    rows, base_family = [], spec.config.get("model.family", "-")
    for t in study.get_trials(deepcopy=False):
        trial_id = t.user_attrs.get("ray_trial_id", "-")
        folder = trial_folder(spec, trial_id)
        result = read_json(folder / "result.json")
        last = t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else math.nan
        values = t.values if t.values is not None else [last]  # pruned: its last reported value
        told, own = t.user_attrs.get("reason"), result.get("reason")  # Optuna's and the trial's record, once:
        reasons = [told] if told and own and own in told else [told, own]  # "diverged: X" holds X
        rows.append(
            {
                "trial_id": trial_id,
                "number": t.number,
                "state": t.state.name,
                "status": result.get("status", t.user_attrs.get("reason", t.state.name.lower())),
                "family": t.params.get("model.family") or trial_family(folder, base_family),
                "values": values,
                "params": {k: v for k, v in trial_params(spec, t).items() if k != "model.family"},
                "time": result.get("time/total_s", 0.0),
                "reason": "; ".join(dict.fromkeys(r for r in reasons if r)),
            }
        )
    sign = -1.0 if spec.mode == "max" else 1.0
    order = {"COMPLETE": 0, "PRUNED": 1, "FAIL": 2, "RUNNING": 3, "WAITING": 3}

    def key(row):
        value = row["values"][0] if row["values"] else math.nan
        return order[row["state"]], sign * value if value == value else math.inf

    return sorted(rows, key=key)
