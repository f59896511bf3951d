"""Typed configs for a trial (model, data, optimisation, training, tracking, search) and the error a bad value raises.

One name per hyperparameter: the dotted field path (`model.hidden_size`, `optim.learning_rate`) is the `--set`
flag, the Optuna parameter, the W&B config key and the Ray result column. `overrides.py`, next to this module, sets
and checks fields by that path. A model family's settings live in its own config class, beside its model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


class ConfigError(ValueError):
    """A bad config value. `field` is the dotted path; the message says what would be valid."""

    def __init__(self, field_path: str, message: str):
        self.field, self.message = field_path, message
        super().__init__(f"{field_path}: {message}")

    def __reduce__(self):  # pickled by its two arguments: it crosses the Ray boundary with field and message intact
        return type(self), (self.field, self.message)


def check(ok: bool, path: str, message: str) -> None:
    """A ConfigError for `path` unless `ok`."""
    if not ok:
        raise ConfigError(path, message)


# --- model -----------------------------------------------------------------------------------------------------


@dataclass
class ModelConfig:
    """What every family's config has. Each family's own config subclasses it beside its model
    (`rnnlab.models.MODELS[family].config`); `rnnlab.registries` turns this base into the named family's config."""

    family: str = "lstm"  # a key of rnnlab.models.MODELS
    embedding_size: int = 64  # for token inputs

    def validate(self) -> None:
        """Raise a ConfigError (path `model.<field>`) for the first invalid setting; families extend it."""
        check(self.embedding_size > 0, "model.embedding_size", f"must be > 0, got {self.embedding_size}")

    def warmup(self) -> tuple[str, int]:
        """(field path, steps): the leading steps of each sequence a per-step task leaves unscored (a reservoir's
        washout), and the setting that gives them; families with one override it."""
        return "", 0


# --- data ------------------------------------------------------------------------------------------------------


@dataclass
class DataConfig:
    source: Literal["builtin", "hub", "local"] = "builtin"
    name: str = "digits"  # built-in task, hub path; local: a file, glob, folder or "train=a.csv,test=b.csv"
    task: str = "classification"  # a key of rnnlab.tasks.TASKS
    config_name: str | None = None  # hub dataset configuration
    revision: str | None = None  # hub git revision (branch, tag or commit); None: default branch; sha recorded
    format: Literal["csv", "json", "parquet", "text"] | None = None  # local builder; None: from the extension
    train_split: str = "train"
    val_split: str | None = None  # a split the dataset has (local: from file names); None: carved out of train
    test_split: str | None = None  # a split the dataset has, kept as it is; None: carved out of train
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    text_column: str = "text"  # token inputs: text (tokenized by `tokenizer`) or lists of tokens / integer ids
    # numeric inputs: columns of number lists, lists of vectors or "0.1 0.2" text; [] reads `inputs` if present
    sequence_columns: list[str] = field(default_factory=list)
    tokens_column: str = "tokens"  # tagging: a list of tokens per row
    label_column: str = "label"
    target_column: str = "target"
    tokenizer: Literal["char", "word"] = "char"
    max_vocab: int = 20000
    min_freq: int = 1
    max_length: int = 0  # truncate token sequences; 0 keeps all
    seq_len: int = 100  # built-in tasks: sequence length
    num_samples: int = 10000  # built-in tasks: sequences generated
    window: int = 0  # forecast, series: window length; 0 keeps each series (split) whole
    horizon: int = 1  # forecast: steps ahead
    # forecast/regression: standardise with train statistics (series: the targets; mse/rmse then in train-std units)
    normalize: bool = True
    noise: float = 0.1  # recall: fraction of flipped bits in a cue
    max_delay: int = 100  # memory_capacity: targets u[t-k] for the delays k = 1..max_delay
    # series: a row is one time step of one long series ("steps") or a whole series ("series"); "auto" reads it from
    # the column types and refuses the one form both fit (lists of equal length in the input and the target)
    rows: Literal["auto", "steps", "series"] = "auto"
    cache_dir: str | None = None  # None: ~/.cache/rnnlab


# --- optimisation and training ---------------------------------------------------------------------------------


@dataclass
class OptimConfig:
    optimizer: Literal["sgd", "adam", "adamw"] = "adam"
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9  # SGD only
    schedule: Literal["constant", "cosine", "step"] = "constant"
    step_size: int = 10  # step schedule: epochs between decays
    gamma: float = 0.1  # step schedule: decay factor
    grad_clip: float = 0.0  # 0 disables clipping
    clip_mode: Literal["norm", "value"] = "norm"


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 64
    patience: int = 0  # epochs without improvement of `metric` before stopping; 0 disables
    # truncated back-propagation length: language modelling, and a gradient model on one long series (data.task=
    # series, data.window=0), both cut into train.batch_size parallel streams with the state carried chunk to chunk
    bptt: int = 100
    max_batches: int = 0  # cap on training batches per epoch (smoke runs); 0 uses all. Evaluation scores whole splits
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: Literal["float32", "float64"] = "float32"  # model, readout and floating data (token/label ids stay int)
    threads: int = 0  # torch intra-op threads; 0 leaves torch's default
    # CPU: treat denormal floats as 0. A loss on the last step only (classification, the adding problem) sends back
    # gradients that decay over time into denormals, which the CPU computes ~10x slower (LSTM, T=200: 3.1 vs 0.23 s)
    flush_denormal: bool = True
    diagnostics_every: int = 0  # epochs between RNN diagnostics; 0 disables


@dataclass
class EvalConfig:
    """Evaluation protocols beyond a task's own metrics (`rnnlab.evaluation`), scored on val each epoch and on test."""

    # forecast, horizon 1: steps of closed-loop prediction (each prediction fed back as the next input) scored as
    # val/free_run_nrmse and test/free_run_nrmse; 0: off
    free_run_steps: int = 0
    free_run_warmup: int = 100  # teacher-forced steps at the start of each val/test sequence before the free run


@dataclass
class TrackingConfig:
    mode: Literal["offline", "online", "disabled"] = "offline"
    project: str = "rnnlab"
    entity: str | None = None
    group: str | None = None  # None: the experiment or search name
    tags: list[str] = field(default_factory=list)
    log_checkpoints: bool = False  # upload the best checkpoint as an artifact


@dataclass
class SearchConfig:
    samples: int = 8
    concurrency: int = 2
    sampler: Literal["tpe", "random", "cmaes", "gp", "grid"] = "tpe"
    scheduler: Literal["asha", "hyperband", "pbt", "none"] = "asha"
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_failures: int = 2  # retries of a failed trial from its last checkpoint
    grace_period: int = 1  # epochs before a scheduler may stop a trial
    objectives: list[str] = field(default_factory=list)  # extra objectives "metric:mode" (multi-objective)
    seeds: int = 1  # replicates per configuration (seed, seed+1, ...); the search optimises their mean
    memory_per_trial_mb: int = 0  # address-space cap of a trial's worker above its size at start; 0: no cap
    reuse_workers: bool = True  # a Ray worker runs trial after trial (imports, data, W&B service kept); off: fresh
    trial_time_limit_s: float = 0.0  # wall time of one attempt of a trial before it ends as failed; 0: no limit


@dataclass
class Config:
    name: str = "experiment"
    seed: int = 0
    metric: str = "val/loss"  # monitored for early stopping, best checkpoint and search
    mode: Literal["min", "max"] = "min"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
