"""Hub datasets: loaded at `data.revision` through `load_dataset_builder`, with the commit they resolved to.

The hub path fails fast without network: a 2.5 s probe, then the local `datasets` cache in offline mode, then a
`DataError` that says how to use local files instead, never the hub client's own ~25 s of retries.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import threading
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from rnnlab.config import DataConfig
from rnnlab.data.sources import CSV_CELLS
from rnnlab.data.taskdata import DataError

if TYPE_CHECKING:
    from datasets import DatasetDict

PROBE_TIMEOUT = 2.5  # seconds
log = logging.getLogger(__name__)


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


def resolved_commit(builder) -> str | None:
    """The hub commit a `datasets` builder reads: its `hash`, which `load_dataset_builder` sets to the revision's
    commit sha (online: resolved by the hub; offline: the cached copy's). None when it is no commit (a local folder
    loaded by path hashes its files)."""
    commit = getattr(builder, "hash", None)
    return commit if isinstance(commit, str) and re.fullmatch(r"[0-9a-f]{40}", commit) else None


def check_pin(cfg: DataConfig, commit: str | None, offline: bool) -> None:
    """Offline, datasets loads the newest cached copy whatever revision was asked: a pinned sha must match it."""
    if not offline or not cfg.revision:
        return
    if re.fullmatch(r"[0-9a-f]{40}", cfg.revision):
        if commit != cfg.revision:
            raise DataError(
                "data.revision",
                f"pinned {cfg.revision} but the hub is unreachable and the local datasets cache holds "
                f"{cfg.name!r} at {commit or 'an unknown commit'}; fill the cache at that commit or change the pin",
            )
    else:
        log.warning(
            "hub unreachable: %r is the cached copy at commit %s, unverified against %r", cfg.name, commit, cfg.revision
        )


def hub_builder(cfg: DataConfig):
    """The `datasets` builder of the hub dataset, CSV files read as local ones are (`CSV_CELLS`: only an empty cell
    is missing, not "NA", "null", "None"). The csv builder takes those kwargs (offline, the cache holds a copy so read
    under their config id); another builder refuses them with a ValueError and is made without them."""
    from datasets import load_dataset_builder

    try:
        return load_dataset_builder(cfg.name, cfg.config_name, revision=cfg.revision, **CSV_CELLS)
    except ValueError as err:  # ParquetConfig has no keep_default_na; offline, no copy read with them is cached
        why = err
    builder = load_dataset_builder(cfg.name, cfg.config_name, revision=cfg.revision)
    if builder.info.builder_name == "csv":  # offline: a copy read with pandas' defaults, "NA" and "null" lost
        raise DataError(
            "data.name",
            f"{cfg.name!r} is CSV files, and the local datasets cache holds them read with pandas' missing-value "
            "words ('NA', 'null', 'None' read as missing), not as rnnlab reads a CSV (only an empty cell missing); "
            f"load it once with the hub reachable to cache it so ({why})",
        )
    return builder


def load_hub(cfg: DataConfig) -> tuple[DatasetDict, str | None]:
    """The hub dataset at `data.revision` (None: the default branch) and the commit sha it resolved to, through
    `load_dataset_builder` (what `load_dataset` runs). Without network: from the local cache, or a DataError."""

    def load() -> tuple[DatasetDict, str | None]:
        builder = hub_builder(cfg)
        builder.download_and_prepare()
        return builder.as_dataset(), resolved_commit(builder)

    if hub_offline_by_env() or not hub_reachable():
        try:
            with hub_offline_mode():
                raw, commit = load()
        except DataError:
            raise
        except Exception as err:
            raise DataError(
                "data.name",
                f"the Hugging Face hub is unreachable and {cfg.name!r} is not in the local datasets cache ({err}). "
                "Use local files: --set data.source=local data.name=path/to/file.csv (csv, tsv, json, jsonl, "
                "parquet or txt), or point HF_HOME at a cache filled on a machine with network and set "
                "HF_DATASETS_OFFLINE=1.",
            ) from None
        check_pin(cfg, commit, offline=True)
        return raw, commit
    try:
        return load()
    except DataError:
        raise
    except Exception as err:
        raise DataError("data.name", f"could not load hub dataset {cfg.name!r}: {err}") from err
