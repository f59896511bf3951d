"""W&B tracking, beside the local record. The training core never imports it; wandb is imported only in functions.

`tracker.py`: a trial's W&B run (offline by default, continued on resume). `wandb_run.py`: starting and finishing a
W&B run. `wandb_log.py`: reads W&B's offline `.wandb` logs back. `search.py`: a search's own W&B run, with its Table
of trials. `sync.py`: `rnnlab sync`.
"""

from rnnlab.tracking.sync import find_offline_runs, sync_offline_runs
from rnnlab.tracking.tracker import open_tracker, resolve_mode, resume_step

__all__ = ["find_offline_runs", "open_tracker", "resolve_mode", "resume_step", "sync_offline_runs"]
