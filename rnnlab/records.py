"""The files of a run folder that the core writes and everyone reads: `config.json`, `metrics.jsonl` (one row per
epoch, appended and flushed at once) and `result.json`, each written whole (atomically) or appended by line.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from rnnlab.checkpoint import atomic_write_bytes
from rnnlab.config import Config, ConfigError
from rnnlab.config.overrides import to_flat_dict

CONFIG_FILE, METRICS_FILE, RESULT_FILE = "config.json", "metrics.jsonl", "result.json"


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


def last_row(out: Path) -> dict[str, Any]:
    rows = read_metrics(Path(out) / "metrics.jsonl")
    return rows[-1] if rows else {}


class MetricsLog:
    """One JSON row per epoch appended to `metrics.jsonl` and flushed at once: the local record."""

    def __init__(self, path: Path, resume_state: dict[str, Any] | None):
        self.path = Path(path)
        rows = read_metrics(self.path)
        if resume_state is None:
            rows = []
        else:  # keep rows up to the checkpoint's epoch; restore its row if a kill came before it was written
            last = resume_state["metrics"]["epoch"]
            rows = [r for r in rows if r["epoch"] < last] + [resume_state["metrics"]]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def append(self, metrics: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(metrics) + "\n")
            f.flush()
