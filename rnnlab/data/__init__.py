"""Data: built-in datasets, hub and local datasets, encoders fitted on train, and the prepared-data cache.

`load_prepared(cfg.data, seed, task) -> TaskData` is the one entry point (`rnnlab.tasks.load_task_data(cfg.data,
seed)` finds the task by name: data/ never imports tasks). Shapes per task (N sequences, T steps):
- classification: inputs float32 (N, T, D) or int64 (N, T) token ids, targets int64 (N,)
- tagging: int64 (N, T) ids, targets int64 (N, T) with IGNORE_INDEX where there is nothing to predict
- regression: targets float32 (N, output_size)
- forecast: float32 (N, T, D) inputs, targets (N, T, D) `horizon` steps ahead
- lm: inputs = targets = int64 (L,), one stream per split; lengths = tensor([L])
- recall: inputs float32 (N, 1, D) cues, targets float32 (N, D) clean ±1 patterns

Hugging Face `datasets` (with pyarrow and pandas, ~1 s to import) is imported inside the functions that load,
generate or split raw data, and only for annotations elsewhere: a trial whose data is cached never imports it
(tests/test_imports.py).
"""

from rnnlab.data.builtin import BUILTIN_SETTINGS, BUILTIN_TASKS, DATASETS
from rnnlab.data.classlabels import save_labels
from rnnlab.data.encoders import load_vocab, save_vocab
from rnnlab.data.load import load_prepared
from rnnlab.data.taskdata import IGNORE_INDEX, DataError, Split, TaskData

__all__ = [
    "BUILTIN_SETTINGS",
    "BUILTIN_TASKS",
    "DATASETS",
    "IGNORE_INDEX",
    "DataError",
    "Split",
    "TaskData",
    "load_prepared",
    "load_vocab",
    "save_labels",
    "save_vocab",
]
