"""Provenance of a trial: the code, packages, data, seed and machine a result came from.

`collect_provenance` gathers it as a flat dict (`git.commit`, `packages.torch`, `data.fingerprint`, ...) that is
written to `out_dir/provenance.json` whether or not W&B runs, and into the W&B config under `provenance.*`.
No environment variable is ever read into it: a record that travels must not carry secrets.
"""

from __future__ import annotations

import functools
import json
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from rnnlab.checkpoint import atomic_write_bytes
from rnnlab.config import Config

PACKAGES = ("torch", "numpy", "datasets", "optuna", "ray", "wandb", "rnnlab")
GIT_TIMEOUT_S = 5.0  # a hung network filesystem must not hold up a trial


def run_git(args: list[str], cwd: Path) -> str | None:
    """`git <args>` in `cwd`, stripped stdout, or None when git or the repository is absent."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=GIT_TIMEOUT_S, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


# once per process, like package_versions: a worker running trial after trial asks git once (an in-process
# rnnlab.run in a notebook records the state of its first run: restart the kernel after committing)
@functools.cache
def describe_git(cwd: Path) -> dict[str, Any]:
    """Commit and dirty flag of the repository holding `cwd` (the experiment's), or {} outside one."""
    head = run_git(["rev-parse", "HEAD", "--show-toplevel"], cwd)
    if head is None:
        return {}
    commit, _, root = head.partition("\n")
    status = run_git(["status", "--porcelain", "--untracked-files=no"], cwd)
    return {"git.commit": commit, "git.dirty": bool(status), "git.root": root or None}


@functools.cache  # once per process: a worker that runs many trials runs the code it imported at its start
def package_versions() -> dict[str, str]:
    """Installed versions from package metadata: nothing is imported, so this stays cheap."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[f"packages.{name}"] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[f"packages.{name}"] = "not installed"
    return versions


def describe_device(name: str) -> str:
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and torch.cuda.is_available():
        return f"{name} ({torch.cuda.get_device_name(torch.device(name))})"
    return name


def collect_provenance(cfg: Config, cwd: str | Path = ".") -> dict[str, Any]:
    """Everything known before the data is loaded; `data.fingerprint` joins later (see `add_data_provenance`)."""
    record: dict[str, Any] = {
        "seed": cfg.seed,
        "host": socket.gethostname(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "executable": sys.executable,
        "device": describe_device(cfg.train.device),
        "data.source": cfg.data.source,
        "data.name": cfg.data.name,
        "data.revision": cfg.data.revision,
    }
    record.update(describe_git(Path(cwd).resolve()))
    record.update(package_versions())
    return record


def add_data_provenance(record: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """The data identity `run_trial` reports as `data/<key>` (its fingerprint) as `data.<key>` entries."""
    record.update({"data." + k.split("/", 1)[1]: v for k, v in result.items() if k.startswith("data/")})
    return record


def write_provenance(path: str | Path, record: dict[str, Any], durable: bool = True) -> None:
    data = (json.dumps(record, indent=2, sort_keys=True, default=str) + "\n").encode()
    atomic_write_bytes(Path(path), data, durable)


def read_provenance(path: str | Path) -> dict[str, Any]:
    """A run's provenance.json; {} when it is missing or torn."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}
