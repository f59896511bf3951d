"""A run's folder before the run takes it: the default one (`runs/NAME-TIMESTAMP`, a free one for each run started
in the same second) and the checks that keep an existing run from being overwritten."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

from rnnlab.config import Config, ConfigError


def default_outs(cfg: Config) -> Iterator[Path]:
    """runs/NAME-TIMESTAMP, then NAME-TIMESTAMP-2, -3, ...: several runs started in one second (a shell loop of
    `rnnlab run ... &`) each get a folder of their own (all but one were refused: "in use", "already holds a run")."""
    stem = f"runs/{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    yield Path(stem)
    for n in range(2, 1000):
        yield Path(f"{stem}-{n}")


def check_output_dir(out: Path, resume: bool, cfg: Config | None = None) -> None:
    """An existing run folder is never overwritten: it must be resumed (with the config it was computed with, from
    a valid checkpoint) or another folder chosen."""
    from rnnlab.folder_lock import LOCK_FILE
    from rnnlab.resume import check_resume

    refuse_a_trials_folder(out)
    if out.exists() and not out.is_dir():
        raise ConfigError("--out", f"{out} is a file, not a folder; choose another --out")
    if out.exists() and any(p.name != LOCK_FILE for p in out.iterdir()) and not resume:
        run_files = ("config.json", "result.json", "metrics.jsonl", "provenance.json", "checkpoints", "seed_0")
        if not any((out / name).exists() for name in run_files):  # not a run: --resume would not help
            raise ConfigError("--out", f"{out} is not empty and holds no run: choose another --out (or empty it)")
        raise ConfigError("--out", f"{out} already holds a run; pass --resume to continue it or choose another --out")
    if resume and not any(p.is_dir() for p in (out / "checkpoints", *out.glob("seed_*/checkpoints"))):
        raise ConfigError("--resume", f"{out} has no checkpoints to resume from; run without --resume")
    if resume and cfg is not None:
        check_resume(out, cfg)
    probe = out if out.exists() else next((p for p in out.parents if p.exists()), Path("."))
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise ConfigError("--out", f"{probe} is not a writable folder; choose another --out")


def refuse_a_trials_folder(out: Path) -> None:
    """A search's trial folder (`S/trials/ID`, or a folder below one) belongs to the study: a run continued there
    ("more epochs for the best trial") rewrote the trial's config.json, metrics.jsonl and result.json while the study
    kept its value, and a new run there was a folder of trials/ that is no trial of the study."""
    from rnnlab.search_folder import SEARCH_FILE, TRIALS_DIR

    path = out.resolve()
    for trials in path.parents:
        if trials.name == TRIALS_DIR and (trials.parent / SEARCH_FILE).is_file():
            trial_id = path.relative_to(trials).parts[0]
            raise ConfigError(
                "--out",
                f"{out} is in the search {trials.parent}, whose study holds its trials' records: replay a trial "
                f"with rnnlab replay {trials.parent} {trial_id}, or run (and continue) it in a folder of its own "
                "(another --out)",
            )
