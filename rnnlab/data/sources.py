"""Raw data from the three sources (built-in generators, the Hugging Face hub, local files) and its splits.

The hub path fails fast without network: a 2.5 s probe, then the local `datasets` cache in offline mode, then a
`DataError` that says how to use local files instead, never the hub client's own ~25 s of retries.
"""

from __future__ import annotations

import contextlib
import glob
import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
from datasets import Dataset, DatasetDict

from rnnlab.config import DataConfig
from rnnlab.data.taskdata import DataError

LOCAL_FORMATS = {  # file extension -> datasets builder
    ".csv": "csv",
    ".tsv": "csv",
    ".json": "json",
    ".jsonl": "json",
    ".parquet": "parquet",
    ".txt": "text",
}
PROBE_TIMEOUT = 2.5  # seconds


# --- hub -------------------------------------------------------------------------------------------------------


def hub_offline_by_env() -> bool:
    return any(
        os.environ.get(v, "").upper() in ("1", "ON", "YES", "TRUE") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


def hub_reachable(timeout: float = PROBE_TIMEOUT) -> bool:
    """True if a TCP connection to the hub endpoint (HF_ENDPOINT or huggingface.co) opens within `timeout`."""
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    result: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    # A thread bounds DNS resolution too, which socket timeouts do not cover.
    probe = threading.Thread(target=connect, daemon=True)
    probe.start()
    probe.join(timeout)
    return bool(result and result[0])


@contextlib.contextmanager
def hub_offline_mode():
    """Offline mode at run time: the HF_HUB_OFFLINE env var is read once at import, so patch the read values."""
    import datasets.config
    import huggingface_hub.constants

    saved = datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = huggingface_hub.constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, huggingface_hub.constants.HF_HUB_OFFLINE = saved


def load_hub(cfg: DataConfig) -> DatasetDict:
    """`load_dataset(name, config_name, revision)`; without network, from the local cache or a DataError."""
    from datasets import load_dataset

    def load() -> DatasetDict:
        return load_dataset(cfg.name, cfg.config_name, revision=cfg.revision)

    if hub_offline_by_env() or not hub_reachable():
        try:
            with hub_offline_mode():
                return load()
        except Exception as err:
            raise DataError(
                "data.name",
                f"the Hugging Face hub is unreachable and {cfg.name!r} is not in the local datasets cache ({err}). "
                "Use local files: --set data.source=local data.name=path/to/file.csv (csv, tsv, json, jsonl, "
                "parquet or txt), or point HF_HOME at a cache filled on a machine with network and set "
                "HF_DATASETS_OFFLINE=1.",
            ) from None
    try:
        return load()
    except Exception as err:
        raise DataError("data.name", f"could not load hub dataset {cfg.name!r}: {err}") from err


# --- local files -----------------------------------------------------------------------------------------------


def local_files(cfg: DataConfig) -> list[str]:
    files = sorted(glob.glob(os.path.expanduser(cfg.name)))
    if not files:
        raise DataError("data.name", f"no file matches {cfg.name!r} (cwd {os.getcwd()}); give a path or glob")
    return files


def local_format(cfg: DataConfig, files: list[str]) -> str:
    if cfg.format:
        return cfg.format
    suffixes = {Path(f).suffix.lower() for f in files}
    builders = {LOCAL_FORMATS.get(s) for s in suffixes}
    if None in builders or len(builders) != 1:
        raise DataError(
            "data.format", f"cannot tell the format of {sorted(suffixes)}; set one of csv, json, parquet, text"
        )
    return builders.pop()


def load_local(cfg: DataConfig) -> DatasetDict:
    """One file or glob through datasets' csv/json/parquet/text builders, as the split `train_split`."""
    from datasets import load_dataset

    files = local_files(cfg)
    builder = local_format(cfg, files)
    kwargs = {"delimiter": "\t"} if builder == "csv" and all(f.lower().endswith(".tsv") for f in files) else {}
    try:
        return load_dataset(builder, data_files={cfg.train_split: files}, **kwargs)
    except Exception as err:  # datasets reports an empty or malformed file in its own words
        raise DataError(
            "data.name", f"could not read {files} with the {builder} builder (empty or malformed?): {err}"
        ) from err


def local_identity(cfg: DataConfig) -> list:
    """Path, size and mtime of each file: a changed file must change the fingerprint."""
    return [[f, os.stat(f).st_size, os.stat(f).st_mtime_ns] for f in local_files(cfg)]


# --- splits ----------------------------------------------------------------------------------------------------


def select_split(raw: DatasetDict, name: str, field_path: str) -> Dataset:
    if name not in raw:
        raise DataError(field_path, f"no split {name!r}; the dataset has {', '.join(raw)}")
    return raw[name]


def split_raw(raw: Dataset | DatasetDict, cfg: DataConfig, seed: int, task) -> dict[str, Dataset]:
    """train/val/test: named splits when configured, else carved out of train (seeded; contiguous when the task is
    `chronological`; all three the train rows when it takes `cues_from_train`). `task` is an `rnnlab.tasks.Task`."""
    if isinstance(raw, Dataset):
        raw = DatasetDict({cfg.train_split: raw})
    train = select_split(raw, cfg.train_split, "data.train_split")
    if len(train) == 0:
        raise DataError("data.train_split", f"split {cfg.train_split!r} is empty")
    if task.cues_from_train:  # cues are noisy copies of the stored (train) patterns, made in encoding
        return {"train": train, "val": train, "test": train}
    val = select_split(raw, cfg.val_split, "data.val_split") if cfg.val_split else None
    test = select_split(raw, cfg.test_split, "data.test_split") if cfg.test_split else None
    n = len(train)
    n_val = round(n * cfg.val_fraction) if val is None else 0
    n_test = round(n * cfg.test_fraction) if test is None else 0
    n_train = n - n_val - n_test
    if n_train <= 0:
        raise DataError("data.val_fraction", f"{n} rows leave nothing to train on after the val/test cut")
    if task.chronological:
        order = np.arange(n)
    else:
        order = np.random.default_rng(seed).permutation(n)
    parts = {"train": train.select(np.sort(order[:n_train]))}
    parts["val"] = val if val is not None else train.select(np.sort(order[n_train : n_train + n_val]))
    parts["test"] = test if test is not None else train.select(np.sort(order[n_train + n_val :]))
    for name, given, fraction in (("val", val, cfg.val_fraction), ("test", test, cfg.test_fraction)):
        if (given is not None or fraction > 0) and len(parts[name]) == 0:  # asked for, yet empty: metrics of nothing
            field_path = f"data.{name}_split" if given is not None else f"data.{name}_fraction"
            raise DataError(
                field_path,
                f"the {name} split is empty ({n} train rows); its metrics would be computed "
                f"on nothing: name a non-empty split or raise data.{name}_fraction",
            )
    return parts


class Columns:
    """A split whose columns are materialised as Python lists, each once, on first access.

    A `Dataset`'s `split[column]` is a lazy column that formats one row per step of iteration: preparing 100k CSV
    rows spent ~96% of its time there. One batch read per column gives the same values (datasets' own formatter).
    Preparers read `len(s)`, `s.column_names`, `s[column]` and `s[row]` alike from this and from a `Dataset`.
    """

    def __init__(self, split: Dataset):
        self.split, self.column_names = split, list(split.column_names)
        self.values: dict[str, list] = {}

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, column: str) -> list:
        if not isinstance(column, str):  # a row (an int) or rows: as the Dataset gives them
            return self.split[column]
        if column not in self.values:
            self.values[column] = self.split[column][:] if len(self.split) else []
        return self.values[column]


def require_column(split: Dataset | Columns, column: str, field_path: str) -> None:
    if column not in split.column_names:
        raise DataError(field_path, f"no column {column!r}; the dataset has columns: {', '.join(split.column_names)}")
