"""Starting and finishing one W&B run: the settings that keep its files free of secrets and its overhead low, its
requirements.txt, `wandb.init` with the trial's identity, and a finish that waits until an offline log is whole.

`tracker.py` (a trial's run) and `search.py` (a search's run) open and close their runs here; wandb is imported
only inside functions.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import re
from pathlib import Path
from typing import Any

from rnnlab import console
from rnnlab.config import Config
from rnnlab.config.overrides import to_flat_dict
from rnnlab.tracking.wandb_log import wait_for_exit_record

LOG_TIMEOUT_S = 30.0  # for wandb-core to write a finished offline run's log
logger = logging.getLogger(__name__)


def wandb_name(text: str, limit: int = 64, allowed: str = "A-Za-z0-9_-") -> str:
    """`text` as a W&B run id (at most 64 of letters, digits, `_` and `-`) or artifact name: unchanged when W&B takes
    it as it is; otherwise its characters replaced and cut, ending in a hash of the whole text, so that two texts
    never share a name (ids used to be cut at 64 characters: every trial of a search whose name is longer than 55
    characters, a long experiment file's default name among them, shared one W&B run)."""
    clean = re.sub(f"[^{allowed}]", "-", text)
    if clean == text and len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    return f"{clean[: limit - len(digest) - 1]}-{digest}"


def wandb_label(text: str) -> str:
    """A group or display name W&B takes (at most 128 characters): a longer one, from a long search or experiment
    name, is cut with a hash of the whole, so that two searches never share a group."""
    return text if len(text) <= 128 else wandb_name(text, 128, allowed=r"\x20-\x7e")


def run_tags(cfg: Config) -> list[str]:
    tags = [cfg.model.family, cfg.data.name.split("/")[-1], cfg.data.task, *cfg.tracking.tags]
    return list(dict.fromkeys(t[:64] for t in tags if t))  # unique, in order; W&B caps tag length


def wandb_settings(mode: str):
    """Settings that keep the run's files free of secrets and its overhead low."""
    import wandb

    return wandb.Settings(
        mode=mode,
        console="off",  # stdout is not copied into the run: nothing printed can leak into its files
        x_disable_meta=True,  # no command line, environment or program capture; provenance.* replaces it
        disable_git=True,  # git state is in provenance.*
        save_code=False,
        quiet=True,
        silent=not console.is_verbose(),  # wandb's banners: shown with -v
        reinit="create_new",  # trials sharing a process each get their own run
        # wandb would parse every installed package's metadata again at each init (~0.5 s per run);
        # save_requirements writes the same requirements.txt from a list read once per process
        x_save_requirements=False,
    )


@functools.cache
def installed_packages() -> str:
    """`name==version` of every installed distribution, as wandb's own requirements.txt lists them."""
    from importlib import metadata

    lines = set()
    for dist in metadata.distributions():
        with contextlib.suppress(KeyError, UnicodeDecodeError, TypeError):  # malformed metadata, as wandb skips
            lines.add(f"{dist.metadata['Name']}=={dist.version}")
    return "".join(f"{line}\n" for line in sorted(lines, key=str.lower))


def save_requirements(run) -> None:
    """The run's requirements.txt (its files folder, synced with the run), as wandb writes it when asked."""
    (Path(run.dir) / "requirements.txt").write_text(installed_packages())


def start_run(
    cfg: Config, out_dir: Path, mode: str, job_type: str, run_id: str, group: str, name: str, provenance: dict[str, Any]
):
    import wandb

    if mode == "online" and not os.environ.get("WANDB_API_KEY"):
        raise RuntimeError("online mode needs WANDB_API_KEY in the environment (or use offline and `rnnlab sync`)")
    config = to_flat_dict(cfg)
    config.update({f"provenance.{k}": v for k, v in provenance.items()})
    (out_dir / "wandb").mkdir(parents=True, exist_ok=True)
    run = wandb.init(
        project=cfg.tracking.project,
        entity=cfg.tracking.entity,
        dir=str(out_dir),
        id=run_id,
        resume="allow",
        group=wandb_label(group),
        job_type=job_type,
        name=wandb_label(name),
        tags=run_tags(cfg),
        config=config,
        settings=wandb_settings(mode),
    )
    run.define_metric("epoch", hidden=True)
    run.define_metric("*", step_metric="epoch")
    save_requirements(run)
    return run


def finish_run(run, exit_code: int = 0) -> None:
    """`run.finish`, and for an offline run wait until wandb-core has written the log's exit record.

    `finish` can return before the `.wandb` log is whole; a reader (a resume, `rnnlab sync`, a test) must not see
    a torn log.
    """
    log = Path(run.settings.sync_file)
    run.finish(exit_code=exit_code)
    if run.offline and not wait_for_exit_record(log, LOG_TIMEOUT_S):
        logger.warning(
            f"wandb has not finished writing {log} after {LOG_TIMEOUT_S:.0f} s; its last rows may be missing."
        )
