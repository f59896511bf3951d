"""A search whose `--storage` is a URI (s3://, gs://, ...): the whole search lives in the bucket, not on a node.

`<uri>/<name>/` holds what a local search folder holds, in the same layout: `search.json`, `optuna.journal`,
`trials/<trial_id>/` (record, checkpoints and offline W&B run), the plots, `report/`, `replays/`, and `ray/`
(Ray's experiment state and checkpoints). A machine that never held the search downloads it (all but `ray/`,
which Ray reads from the bucket itself) into `./searches/<name>/` and works there.

Who uploads what, and with which mechanism:
- Ray's experiment state and checkpoints: Ray itself (`RunConfig(storage_path=<uri>/<name>)`, its pyarrow
  storage filesystem). The URI's query (`?endpoint_override=host:port&scheme=http`) reaches pyarrow untouched,
  and credentials come from the environment (AWS_ACCESS_KEY_ID, ...), so no secret is pickled into Ray's state.
- A trial's folder: the worker that runs it, through pyarrow's filesystem, after each epoch and at its end (only
  the files that changed: `FolderUpload`); a trial retried or resumed on another node first downloads its
  folder, so metrics.jsonl and the W&B run go on.
  Not Ray's `SyncConfig(sync_artifacts=True)`: it uploads the trial's working dir into Ray's own trial folder,
  next to Ray's `result.json` and `params.json` (names our record uses too), in the background every
  `sync_period` or on a checkpoint; a node that dies between syncs loses the newest epochs of the record.
- The Optuna journal: the driver, its only writer, uploads it after each append (`MirroredJournal`, a
  `rnnlab.journal.JournalFile` subclass), so a new head resumes with every told trial.
- search.json, the plots, the report and replays: the command that wrote them, when it is done.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from rnnlab.config import ConfigError
from rnnlab.folder_lock import LOCK_FILE  # this machine's flock: it means nothing in a bucket
from rnnlab.journal import JournalFile
from rnnlab.search_folder import (
    JOURNAL_FILE,
    RAY_DIR,
    SEARCH_FILE,
    TRIALS_DIR,
    NewerSearch,
    SearchSpec,
    new_search_id,
    refuse_a_newer_search,
)

CACHE = "searches"  # where a URI search is downloaded to, under the current folder: ./searches/<name>/


def is_uri(target: str | Path) -> bool:
    return "://" in str(target)


def join(uri: str, *parts: str) -> str:
    """`uri` with path parts appended before its query: join("s3://b/x?endpoint_override=h", "y") is s3://b/x/y?..."""
    split = urlsplit(uri)
    path = "/".join([split.path.rstrip("/"), *(p.strip("/") for p in parts)])
    return urlunsplit(split._replace(path=path))


def resolve(uri: str):
    """(pyarrow filesystem, path in it) of a URI; ConfigError naming --storage if pyarrow cannot resolve it."""
    import pyarrow.fs

    try:
        return pyarrow.fs.FileSystem.from_uri(uri)
    except Exception as err:
        raise ConfigError("--storage", f"cannot resolve {redact(uri)!r} with pyarrow.fs: {err}") from None


def redact(uri: str) -> str:
    """A URI as it may be shown: without any user:password part (keys belong in the environment)."""
    split = urlsplit(uri)
    return urlunsplit(split._replace(netloc=split.hostname or "")) if split.password else uri


def search_uri(spec: SearchSpec) -> str | None:
    """Where a search whose storage is a URI lives: the URI it was given as (a copied or moved search is its own,
    never the original its search.json's name points to), else `<storage>/<name>`; None for a local folder."""
    if not is_uri(spec.storage):
        return None
    return spec.uri or join(spec.storage, spec.name)


def parent(uri: str) -> str:
    """`uri` without its last path part (its query kept): parent("s3://b/x/s?q") is s3://b/x?q."""
    split = urlsplit(uri)
    return urlunsplit(split._replace(path=split.path.rstrip("/").rsplit("/", 1)[0]))


def same_place(a: str, b: str) -> bool:
    """Whether two URIs name one place: scheme, bucket and path (a trailing / and the query aside)."""
    place = lambda uri: (urlsplit(uri).scheme, urlsplit(uri).netloc, urlsplit(uri).path.rstrip("/"))  # noqa: E731
    return place(a) == place(b)


def holds_search(uri: str | None) -> bool:
    """Whether a search is at `uri` (its search.json); False for None (a local or shared folder)."""
    if uri is None:
        return False
    import pyarrow.fs

    fs, path = resolve(uri)
    return fs.get_file_info(f"{path}/{SEARCH_FILE}").type == pyarrow.fs.FileType.File


def remote_record(uri: str) -> dict:
    """The search.json at `uri` as an object; {} for none, a torn one or no object (the download then says so)."""
    fs, path = resolve(uri)
    try:
        with fs.open_input_stream(f"{path}/{SEARCH_FILE}") as f:
            record = json.loads(f.read())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def push(local: str | Path, uri: str) -> None:
    """Upload a file or a folder (recursively, overwriting) to `uri`."""
    import pyarrow.fs

    fs, path = resolve(uri)
    if Path(local).is_dir():
        fs.create_dir(path, recursive=True)
    pyarrow.fs.copy_files(str(local), path, source_filesystem=pyarrow.fs.LocalFileSystem(), destination_filesystem=fs)


class FolderUpload:
    """Uploads the files of a local folder that changed (size or mtime) since its last call: a trial's checkpoints
    and W&B files are sent once each, not at every epoch."""

    def __init__(self, local: str | Path, uri: str):
        self.local, self.uri, self.sent = Path(local), uri, {}

    def __call__(self) -> None:
        fs, root = resolve(self.uri)
        for path in sorted(p for p in self.local.rglob("*") if p.is_file()):
            stat = path.stat()
            key = (stat.st_size, stat.st_mtime_ns)
            if self.sent.get(path) == key:
                continue
            with open(path, "rb") as src, fs.open_output_stream(f"{root}/{path.relative_to(self.local)}") as dst:
                while chunk := src.read(1 << 22):
                    dst.write(chunk)
            self.sent[path] = key

    def mark_sent(self) -> None:
        """Take the folder as it is now as uploaded (it was just downloaded from `uri`)."""
        self.sent = {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in self.local.rglob("*") if p.is_file()}


def pull(uri: str, local: str | Path, skip: tuple[str, ...] = ()) -> bool:
    """Download the folder at `uri` into `local` (overwriting), but its top-level entries named in `skip`.
    False if there is nothing at `uri`."""
    import pyarrow.fs

    fs, path = resolve(uri)
    entries = fs.get_file_info(pyarrow.fs.FileSelector(path, allow_not_found=True))
    if not entries:
        return False
    Path(local).mkdir(parents=True, exist_ok=True)
    for entry in entries:
        if entry.base_name in skip:
            continue
        target = Path(local, entry.base_name)
        if entry.type == pyarrow.fs.FileType.Directory:
            target.mkdir(parents=True, exist_ok=True)
        pyarrow.fs.copy_files(
            entry.path, str(target), source_filesystem=fs, destination_filesystem=pyarrow.fs.LocalFileSystem()
        )
    return True


def push_search(spec: SearchSpec) -> None:
    """What the driver wrote (search.json, the journal, plots, report, replays) to the bucket; the trials' folders
    are their workers' to upload, `ray/` is Ray's, and the folder's lock stays on this machine."""
    uri = search_uri(spec)
    if uri is None:
        return
    for entry in Path(spec.folder).iterdir():
        if entry.name not in (TRIALS_DIR, RAY_DIR, LOCK_FILE) and not entry.name.startswith(f"{RAY_DIR}-"):
            push(entry, join(uri, entry.name))


def pull_trials(spec: SearchSpec) -> None:
    """Every trial's folder from the bucket into the local search folder, for the report (the driver's view)."""
    uri = search_uri(spec)
    if uri is not None:
        pull(join(uri, TRIALS_DIR), Path(spec.folder, TRIALS_DIR))


def localize(target: str | Path) -> Path:
    """The local folder of a search given as a folder or a URI: a URI's search is downloaded to ./searches/<last
    part of the URI>/ (all but Ray's state) and its search.json there names that folder and the URI: a search copied
    or moved in the bucket is the one at the URI given, its original untouched (its name, the W&B group, is kept)."""
    if not is_uri(target):
        return Path(target)
    uri = str(target)
    last = urlsplit(uri).path.rstrip("/").rsplit("/", 1)[-1]
    folder = (Path(CACHE) / last).resolve()
    check_cache_is_free(folder, uri)
    refuse_a_newer_search(remote_record(uri), f"the {SEARCH_FILE} of {redact(uri)}")  # before any download
    if not pull(uri, folder, skip=tuple(ray_runs(uri))) or not (folder / SEARCH_FILE).is_file():
        raise ConfigError("search", f"{redact(uri)} holds no {SEARCH_FILE}: not a search (give <storage>/<name>)")
    spec = SearchSpec.load(folder)
    if not same_place(spec.uri or join(spec.storage, spec.name), uri):  # copied or moved in the bucket: its own
        spec.search_id = new_search_id()  # search-level W&B run, not the original's
    spec.folder, spec.uri, spec.storage = str(folder), uri, parent(uri)
    spec.save()  # the folder a search.json names is the one of the machine that reads it
    bind(uri, folder)
    return folder


def check_cache_is_free(folder: Path, uri: str) -> None:
    """Refuse to download a search into a cache folder that holds another one (s3://b/x/s and s3://b/y/s would
    both be ./searches/s, and so is a local search named s by default): its files would mix, and its driver would
    write to the wrong search."""
    if not (folder / SEARCH_FILE).is_file():
        return
    try:
        held = search_uri(SearchSpec.load(folder))
    except NewerSearch:
        raise  # whose it is, this rnnlab cannot tell: it is not overwritten
    except ConfigError:
        return  # a torn search.json: the download overwrites it
    if held is None or not same_place(held, uri):
        raise ConfigError(
            "search",
            f"{folder} already holds {'a local search' if held is None else 'the search of ' + redact(held)}, not "
            f"{redact(uri)}; run from another folder (its ./{CACHE}/ is where a bucket search is downloaded)",
        )


def ray_runs(uri: str) -> list[str]:
    import pyarrow.fs

    fs, path = resolve(uri)
    entries = fs.get_file_info(pyarrow.fs.FileSelector(path, allow_not_found=True))
    return [e.base_name for e in entries if e.base_name == RAY_DIR or e.base_name.startswith(f"{RAY_DIR}-")]


# --- the Optuna journal, mirrored ------------------------------------------------------------------------------

_local_folders: dict[str, str] = {}  # search URI -> its local folder in this process (see MirroredJournal)


def bind(uri: str, folder: str | Path) -> None:
    _local_folders[uri] = str(Path(folder).resolve())


class MirroredJournal(JournalFile):
    """The search's journal file, uploaded to `<uri>/optuna.journal` after each append.

    Ray pickles the searcher (and this backend) into its experiment state; unpickled on a new head, the journal
    is the local folder that process bound to the URI (`bind`, done by `localize`), not the old head's path.
    """

    def __init__(self, folder: str | Path, uri: str):
        bind(uri, folder)
        self.path, self.uri = os.path.join(_local_folders[uri], JOURNAL_FILE), uri
        super().__init__(self.path)

    def append_logs(self, logs) -> None:
        super().append_logs(logs)
        push(self.path, join(self.uri, JOURNAL_FILE))

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        folder = _local_folders.get(self.uri)
        if folder is not None and self.path != os.path.join(folder, JOURNAL_FILE):
            self.__init__(folder, self.uri)


def open_mirrored_study_storage(folder: str | Path, uri: str | None):
    """The search's Optuna storage: the journal in `folder`, mirrored to the search's URI if it has one."""
    from optuna.storages import JournalStorage

    from rnnlab.search_folder import open_study_storage

    if uri is None:
        return open_study_storage(folder)
    return JournalStorage(MirroredJournal(folder, uri))
