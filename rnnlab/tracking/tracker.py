"""W&B tracking of one trial: one run per trial, offline by default, never in the way of the local record.

`open_tracker` opens the trial's run (its files in `out_dir/wandb/`; `wandb.init` in a thread of its own while the
trial loads its data and builds its model), logs each epoch with `epoch` as the step and closes it. The run id comes
from the trial's identity, so a resumed or retried trial continues its own run, after the last step the run holds
(offline: read from its `.wandb` logs) and first logging the `metrics.jsonl` rows it missed.
Any W&B failure prints one warning and turns tracking off: `metrics.jsonl` and `result.json` never depend on W&B.
wandb is imported only inside functions; `wandb_run.py` starts and finishes the run, `sync.py` uploads offline
runs later (`rnnlab sync`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from rnnlab.checkpoint import atomic_write_bytes
from rnnlab.config import Config, ConfigError
from rnnlab.provenance import add_data_provenance, collect_provenance, read_provenance, write_provenance
from rnnlab.tracking.wandb_log import has_exit_record, logged_steps, run_logs
from rnnlab.tracking.wandb_run import finish_run, start_run, wandb_name

MODES = ("offline", "online", "disabled")
WANDB_MODE_ALIASES = {"dryrun": "offline", "run": "online"}  # older spellings wandb still accepts
STATE_FILE = "tracking.json"  # run id and last step handed to wandb (offline, a kill can keep it off disk)
FAILED_ENDS = ("diverged", "failed", "out_of_memory")  # a run that ends so is failed in W&B too (a non-zero exit)


def resolve_mode(cfg: Config) -> str:
    """`cfg.tracking.mode`, unless the environment says otherwise through WANDB_MODE."""
    env = os.environ.get("WANDB_MODE", "").strip().lower()
    mode = WANDB_MODE_ALIASES.get(env, env) or cfg.tracking.mode
    if mode not in MODES:
        raise ConfigError("WANDB_MODE", f"got {env!r}; valid: {', '.join(MODES)}")
    return mode


def read_state(out_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((out_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}


def resume_step(out_dir: Path, run_id: str, mode: str) -> int:
    """The last step run `run_id` already holds: a resumed trial logs only later epochs.

    Online, the step tracking.json recorded after handing it to wandb. Offline, the largest in the run's `.wandb`
    logs: a SIGKILL can stop wandb-core before it writes the last rows tracking.json claims, and W&B would lose them.
    """
    state = read_state(out_dir)
    claimed = int(state.get("last_step", 0)) if state.get("run_id") == run_id else 0
    if mode != "offline":
        return claimed
    try:
        return logged_steps(out_dir, run_id)
    except Exception as err:
        warn(
            f"reading the offline W&B logs in {out_dir / 'wandb'} failed ({type(err).__name__}: {err}); "
            f"continuing the run after step {claimed}, the last one {STATE_FILE} records."
        )
        return claimed


def derive_run_id(out_dir: Path, run_id: str | None = None) -> str:
    """An explicit id (a search's trial id), else the one this folder already used, else a hash of its path."""
    if run_id:
        return wandb_name(run_id)
    return read_state(out_dir).get("run_id") or hashlib.sha256(str(out_dir.resolve()).encode()).hexdigest()[:16]


logger = logging.getLogger(__name__)


def warn(message: str) -> None:
    logger.warning(message)


# --- the tracker -------------------------------------------------------------------------------------------------


class Tracker:
    """Logs a trial's epochs to its W&B run; a no-op once tracking is disabled or W&B has failed."""

    def __init__(self, cfg: Config, out_dir: Path, provenance: dict[str, Any], run=None, last_step: int = 0, rows=None):
        self.cfg, self.out, self.provenance, self.run = cfg, out_dir, provenance, run
        self.rows: list[dict[str, Any]] = [] if rows is None else rows  # the run's RunRecord rows, in memory
        self.last_step = last_step  # steps at or below it are already in the run (a resumed trial replays none)
        self.checkpoints: dict[int, str] = {}
        self.exit_code = 0
        self.starting: Future | None = None  # the run's wandb.init, under way in its own thread
        self.mode = "disabled"

    def ready(self) -> None:
        """Wait for the run `open_tracker` started; a failed start warns once and leaves tracking off."""
        if self.starting is None:
            return
        starting, self.starting = self.starting, None
        try:
            self.run = starting.result()
        except Exception as err:
            warn(
                f"starting W&B ({self.mode}) failed ({type(err).__name__}: {err}); training goes on without "
                f"tracking. The local record in {self.out} is unaffected."
            )

    def log(self, metrics: dict[str, Any], checkpoint: str | None = None) -> None:
        """Log one epoch's metrics at step `epoch`; epochs the run missed (a crash before reporting) go first."""
        epoch = int(metrics["epoch"])
        if checkpoint:
            self.checkpoints[epoch] = checkpoint
        self.ready()
        if self.run is None or epoch <= self.last_step:
            return
        try:
            for row in self.missing_rows(epoch):
                self.log_row(row)
            self.log_row(metrics)
            self.save_state()
        except Exception as err:
            self.fail("logging to W&B", err)

    def missing_rows(self, epoch: float) -> list[dict[str, Any]]:
        """Rows of the local record between the last logged step and `epoch` (run_trial records them first)."""
        if epoch == self.last_step + 1:
            return []
        return [r for r in self.rows if self.last_step < r["epoch"] < epoch]

    def save_state(self) -> None:
        state = {"run_id": self.run.id, "last_step": self.last_step}
        # not fsynced (per epoch, a few ms): lost to a power loss, a resume only relogs steps the run may hold
        # (offline the step comes from the run's own log, resume_step)
        atomic_write_bytes(self.out / STATE_FILE, json.dumps(state).encode(), durable=False)

    def log_row(self, row: dict[str, Any]) -> None:
        # committed at once: a step wandb holds open is flushed at finish, and its values then overwrite the summary
        self.run.log(row, step=int(row["epoch"]), commit=True)
        self.last_step = int(row["epoch"])

    def finish(self, result: dict[str, Any]) -> None:
        """Record the trial's result: provenance with its data identity, test metrics in the summary, artifacts."""
        add_data_provenance(self.provenance, result)
        write_provenance(self.out / "provenance.json", self.provenance)
        if result.get("status") in FAILED_ENDS:
            self.exit_code = 1
        self.ready()
        if self.run is None:
            return
        try:
            # rows no later epoch brought in: a resume from the final checkpoint trains none
            if rows := self.missing_rows(math.inf):
                for row in rows:
                    self.log_row(row)
                self.save_state()
            data = {f"provenance.{k}": v for k, v in self.provenance.items() if k.startswith("data.")}
            self.run.config.update(data, allow_val_change=True)
            # the summary is result.json: val/* of the best model (not the last epoch), test/*, how it ended
            self.run.summary.update(result)
            if "reason" not in result:  # an earlier attempt's failure (a retried trial) is not this end's reason
                del self.run.summary["reason"]
            if self.cfg.tracking.log_checkpoints:
                self.log_checkpoint(result)
            self.log_dataset(result)
        except Exception as err:
            self.fail("recording the result in W&B", err)

    def log_checkpoint(self, result: dict[str, Any]) -> None:
        """The best epoch's checkpoint folder, or the newest (it carries the best weights as `best_model`)."""
        import wandb

        folder = self.checkpoints.get(int(result.get("best_epoch", 0)))
        if folder is None or not Path(folder).is_dir():
            folder = self.checkpoints[max(self.checkpoints)] if self.checkpoints else None
        if folder is None or not Path(folder).is_dir():
            return
        metadata = {"best_epoch": result.get("best_epoch"), "folder": Path(folder).name}
        artifact = wandb.Artifact(f"checkpoint-{self.run.id}", type="model", metadata=metadata)
        artifact.add_dir(str(folder), policy="immutable")  # checkpoints are never rewritten: no staging copy
        self.run.log_artifact(artifact, aliases=["best", "latest"])

    def log_dataset(self, result: dict[str, Any]) -> None:
        """The data as a reference (never an upload): the hub dataset's URL or the local cache file."""
        import wandb

        d, fingerprint = self.cfg.data, result.get("data/fingerprint")
        if not fingerprint:
            return
        if d.source == "hub":
            revision = result.get("data/commit") or d.revision  # the resolved commit: what was read
            uri = f"https://huggingface.co/datasets/{d.name}" + (f"/tree/{revision}" if revision else "")
        else:
            from rnnlab.data.cache import cache_path

            path = cache_path(d, fingerprint)
            if not path.exists():
                return
            uri = path.resolve().as_uri()
        name = wandb_name(f"data-{d.name}-{d.task}", 128, "A-Za-z0-9_.-")
        artifact = wandb.Artifact(
            name,
            type="dataset",
            metadata={"fingerprint": fingerprint, "revision": d.revision, "commit": result.get("data/commit")},
        )
        artifact.add_reference(uri, checksum=False)  # a checksum would read the whole file: not cheap
        if self.run.offline:  # wandb refuses to mark inputs offline; an output still names the data used
            self.run.log_artifact(artifact, aliases=[fingerprint[:16]])
        else:
            self.run.use_artifact(artifact)

    def fail(self, what: str, err: BaseException) -> None:
        """One warning, then tracking off for the rest of the trial; training goes on."""
        warn(
            f"{what} failed ({type(err).__name__}: {err}); W&B tracking is off for the rest of this trial. "
            f"The local record ({self.out}/metrics.jsonl, result.json) is unaffected."
        )
        run, self.run = self.run, None
        with contextlib.suppress(Exception):
            run.finish(exit_code=1)

    def close(self, exit_code: int = 0) -> None:
        self.ready()
        if self.run is None:
            return
        run, self.run = self.run, None
        try:
            finish_run(run, exit_code or self.exit_code)  # a resume reads the log for its last step: whole first
        except Exception as err:
            warn(f"closing the W&B run failed ({type(err).__name__}: {err}); the local record is unaffected.")
            return
        if run.offline:
            logger.info(f"W&B offline run saved in {self.out / 'wandb'}; upload it with: rnnlab sync {self.out}")


def end_torn_run(cfg: Config, out: Path, run_id: str, group: str, name: str, result: dict[str, Any]) -> bool:
    """End the offline W&B run of a trial whose process died without closing it (its driver was killed): its log
    has no exit record, so W&B showed it running, or crashed, with no result. A new part of the run (as a resume
    would add) logs the `metrics.jsonl` epochs the log lacks, puts `result` in the summary and exits 1 for a failed
    end. Online, W&B marks such a run crashed itself. Returns whether it ended the run."""
    from rnnlab.records import read_metrics

    run_id = derive_run_id(out, run_id)
    logs = run_logs(out, run_id)
    if resolve_mode(cfg) != "offline" or not logs or has_exit_record(logs[-1]):
        return False
    provenance, rows = read_provenance(out / "provenance.json"), read_metrics(out / "metrics.jsonl")
    tracker = Tracker(cfg, out, provenance, None, resume_step(out, run_id, "offline"), rows)
    try:
        tracker.run = start_run(cfg, out, "offline", "search", run_id, cfg.tracking.group or group, name, provenance)
        for row in tracker.missing_rows(math.inf):
            tracker.log_row(row)
        tracker.save_state()
        tracker.run.summary.update(result)
    except Exception as err:
        tracker.fail(f"ending the torn W&B run {run_id}", err)
        return False
    tracker.close(exit_code=1 if result.get("status") in FAILED_ENDS else 0)
    return True


def start_in_background(fn, *args) -> Future:
    """`fn(*args)` in a thread of its own; its result, or what it raised, in the Future."""
    future: Future = Future()

    def call() -> None:
        try:
            future.set_result(fn(*args))
        except BaseException as err:
            future.set_exception(err)

    threading.Thread(target=call, name="wandb-init", daemon=True).start()
    return future


@contextlib.contextmanager
def open_tracker(
    cfg: Config,
    out_dir: str | Path,
    job_type: str = "run",
    run_id: str | None = None,
    group: str | None = None,
    name: str | None = None,
    rows: list[dict[str, Any]] | None = None,
) -> Iterator[Tracker]:
    """The trial's tracker: its W&B run (one per trial, continued on resume) is closed on exit. `rows`: the run's
    RunRecord rows (`metrics.jsonl` in memory), from which a resumed run logs the epochs W&B missed.

    Group: `cfg.tracking.group`, else `group`, else `cfg.name`. The mode is `cfg.tracking.mode` unless WANDB_MODE is
    set. `provenance.json` is written in every mode.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mode = resolve_mode(cfg)
    provenance = collect_provenance(cfg)
    write_provenance(out / "provenance.json", provenance, durable=False)  # rewritten durably by Tracker.finish
    run_id = derive_run_id(out, run_id)
    last_step = resume_step(out, run_id, mode)
    tracker = Tracker(cfg, out, provenance, None, last_step, rows)
    if mode != "disabled":  # wandb.init waits on wandb-core: it runs while the trial loads its data and builds
        group, name = cfg.tracking.group or group or cfg.name, name or f"{cfg.name}-{out.name}"
        tracker.starting = start_in_background(start_run, cfg, out, mode, job_type, run_id, group, name, provenance)
        tracker.mode = mode
    try:
        yield tracker
    except BaseException:
        tracker.close(exit_code=1)
        raise
    tracker.close()
