"""Reading W&B's offline `.wandb` transaction logs: which rows a trial's runs durably hold.

wandb 0.31 has no Python reader for these files (its readers live in wandb-core), so this one decodes the format:
a 7-byte header (":W&B", magic, version), then 32 KiB blocks of chunks, each with a 7-byte header (CRC-32 of the
chunk's type byte and data, length, type: full/first/middle/last) carrying one `wandb_internal_pb2.Record`.
wandb-core buffers its writes, so a killed run's log ends wherever its last write stopped, possibly mid-record:
the reader keeps every whole record before that and drops the rest. wandb is imported only inside functions.
"""

from __future__ import annotations

import glob
import json
import struct
import time
import zlib
from pathlib import Path
from typing import Any

MAGIC = b":W&B"
HEADER_BYTES = 7  # the file's header and each chunk's header have the same size
BLOCK_BYTES = 32 * 1024
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_records(path: str | Path) -> list:
    """Every whole record of the log, in order. A torn or corrupt tail ends the list; it never raises."""
    from google.protobuf.message import DecodeError
    from wandb.proto import wandb_internal_pb2  # private: pyproject.toml bounds wandb at the tested 0.31

    data = Path(path).read_bytes()
    if len(data) < HEADER_BYTES:  # killed before the header was written
        return []
    if not data.startswith(MAGIC):
        raise ValueError(f"{path} is not a W&B transaction log")
    records, chunks, pos = [], [], HEADER_BYTES
    while pos + HEADER_BYTES <= len(data):
        left_in_block = BLOCK_BYTES - pos % BLOCK_BYTES
        if left_in_block < HEADER_BYTES:  # a block's tail too short for a header is zero padding
            pos += left_in_block
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER_BYTES])
        if kind == 0:  # zero fill up to the end of the block
            pos += left_in_block
            continue
        chunk = data[pos + HEADER_BYTES : pos + HEADER_BYTES + length]
        torn = len(chunk) < length or length > left_in_block - HEADER_BYTES
        if torn or zlib.crc32(chunk, zlib.crc32(bytes([kind]))) != crc or (kind in (FULL, FIRST)) == bool(chunks):
            break  # a partial write or a chunk out of sequence: nothing after it can be trusted
        chunks.append(chunk)
        pos += HEADER_BYTES + length
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            try:
                record.ParseFromString(b"".join(chunks))
            except DecodeError:
                break
            records.append(record)
            chunks = []
    return records


def read_history(path: str | Path) -> list[dict[str, Any]]:
    """The history rows of one log, in order, keyed by metric name (`val/acc`) with `_step` among them."""
    rows = []
    for record in read_records(path):
        if record.WhichOneof("record_type") == "history":
            rows.append({"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in record.history.item})
    return rows


def run_logs(out_dir: str | Path, run_id: str) -> list[Path]:
    """The `.wandb` logs of run `run_id`'s offline parts (one per start or resume) in `out_dir/wandb/`, oldest first.

    A part's folder is `offline-run-<time>-<run id>`, with `-<n>` added when an earlier part started in the same second.
    """

    def started(log: Path) -> tuple[str, int]:
        stamp, _, suffix = log.parent.name.removeprefix("offline-run-").partition(f"-{run_id}")
        return stamp, int(suffix[1:]) if suffix[1:].isdigit() else 0

    logs = (Path(out_dir) / "wandb").glob(f"offline-run-*/run-{glob.escape(run_id)}.wandb")
    return sorted(logs, key=started)


def logged_steps(out_dir: str | Path, run_id: str) -> int:
    """The largest `epoch` in the history rows of run `run_id`'s offline logs: the last step W&B holds for sure."""
    return max(
        (int(row["epoch"]) for log in run_logs(out_dir, run_id) for row in read_history(log) if "epoch" in row),
        default=0,
    )


def has_exit_record(path: str | Path) -> bool:
    return any(r.WhichOneof("record_type") == "exit" for r in read_records(path))


def wait_for_exit_record(path: str | Path, timeout: float) -> bool:
    """Wait until the log holds the run's exit record: wandb-core may still be writing it after `finish` returns."""
    deadline, pause = time.monotonic() + timeout, 0.002  # a tiny run's record comes within milliseconds
    while True:
        if Path(path).exists() and has_exit_record(path):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(pause)
        pause = min(2 * pause, 0.05)
