"""The files of a run folder that the core writes and everyone reads: `config.json`, `metrics.jsonl` (one row per
epoch, appended and flushed at once) and `result.json`, each written whole (atomically) or appended by line.
"""

from __future__ import annotations

import dataclasses
import errno
import json
from pathlib import Path
from typing import Any

from rnnlab.checkpoint import atomic_write_bytes
from rnnlab.config import Config, ConfigError
from rnnlab.config.overrides import to_flat_dict

CONFIG_FILE, METRICS_FILE, RESULT_FILE = "config.json", "metrics.jsonl", "result.json"
ENVIRONMENT_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO)  # the machine refused a write


def environment_fault(err: BaseException) -> OSError | None:
    """The OSError behind `err` when the machine, not the run, failed: a full disk or quota, a read-only or failing
    one. A Ray task's error carries the trial's own as its `cause`. None for anything else."""
    err = getattr(err, "cause", None) or err
    return err if isinstance(err, OSError) and err.errno in ENVIRONMENT_ERRNOS else None


def write_config(out: Path, cfg: Config) -> None:
    """The resolved config, flat (the dotted names) and nested."""
    write_json(Path(out) / CONFIG_FILE, {"flat": to_flat_dict(cfg), "nested": dataclasses.asdict(cfg)})


def write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(Path(path), (json.dumps(obj, indent=2, default=str) + "\n").encode())


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The rows of a metrics.jsonl; a torn last line (a kill mid-append) is left out, a corrupted earlier one is a
    ConfigError naming the file and the line."""
    path = Path(path)
    if not path.exists():
        return []
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    rows = []
    for number, line in enumerate(lines, start=1):
        try:
            rows.append(json.loads(line))
        except ValueError:
            if number == len(lines):  # torn by a kill: the epochs before it are whole
                break
            raise ConfigError(
                "metrics.jsonl", f"{path} line {number} is not a JSON row; restore the file or remove that line"
            ) from None
    return rows


class RunRecord:
    """A run folder's record and its one writer: `metrics.jsonl`, whose rows it keeps in memory as they are appended
    (nobody re-reads the file), and `result.json`, the final record, which only `finish` builds and writes.

    Every way a run ends (completed, stopped, diverged, out of memory, failed; one seed, seed replicates, a search
    trial) goes through `finish`. A sealed record (a trial its time limit took over while its thread was stuck)
    takes no more rows and keeps the result it has.
    """

    def __init__(self, out: str | Path):
        self.out = Path(out)
        self.rows: list[dict[str, Any]] = read_metrics(self.out / METRICS_FILE)  # what an earlier attempt left
        self.result: dict[str, Any] | None = None
        self.sealed = False

    @property
    def last(self) -> dict[str, Any]:
        return self.rows[-1] if self.rows else {}

    def start(self, resume_metrics: dict[str, Any] | None) -> None:
        """Begin an attempt: no rows, or for a resume the rows before the checkpoint's epoch and its own row
        (restored if a kill came before it was written)."""
        if resume_metrics is None:
            self.replace([])
        else:
            epoch = resume_metrics["epoch"]
            self.replace([r for r in self.rows if r["epoch"] < epoch] + [resume_metrics])

    def replace(self, rows: list[dict[str, Any]]) -> None:
        """All rows at once (seed replicates' means): the file is rewritten whole."""
        if self.sealed:
            return
        self.rows[:] = rows  # in place: the tracker reads this same list
        atomic_write_bytes(self.out / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in rows).encode())

    def append(self, row: dict[str, Any]) -> None:
        """One epoch's row, appended and flushed at once."""
        if self.sealed:
            return
        with (self.out / METRICS_FILE).open("a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
        self.rows.append(row)

    def finish(
        self, status: str, reason: str | None = None, metrics: dict[str, Any] | None = None, **fields: Any
    ) -> dict[str, Any]:
        """Build and write `result.json`: `metrics` (the fit's result; by default the last epoch's row), how the run
        ended (`status`, `reason`) and `fields` (seed, parameters, time, ...). Returns it."""
        if self.sealed and self.result is not None:
            return self.result
        result = {**(self.last if metrics is None else metrics), "status": status}
        if reason is not None:
            result["reason"] = reason
        result.update(fields)
        write_json(self.out / RESULT_FILE, result)
        self.result = result
        return result

    def seal(self) -> None:
        self.sealed = True
