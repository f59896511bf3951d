"""The prepared-data contract: `Split` and `TaskData` (what the trainer consumes), `DataError` and `IGNORE_INDEX`.

Everything here converts to plain dicts of tensors and strings, so the cache can use `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields, replace

import torch

from rnnlab.config import ConfigError

IGNORE_INDEX = -100  # target id of steps without a label (padding, blanks of the copy task): torch's default


class DataError(ConfigError):
    """Data that does not fit the config. `field` is the dotted path (e.g. "data.label_column")."""


@dataclass
class Split:
    """One split, padded to the right. Shapes per task are listed in `rnnlab.data.__init__`."""

    inputs: torch.Tensor  # float32 (N, T, D) features or int64 (N, T) token ids; lm: int64 (L,)
    lengths: torch.Tensor  # int64 (N,) true lengths; lm: tensor([L])
    targets: torch.Tensor

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    @property
    def empty(self) -> bool:
        """No time step at all (`data.val_fraction=0` leaves no validation split; an lm stream may be of length 0)."""
        return int(self.lengths.sum()) == 0


@dataclass
class TaskData:
    """Encoded train/val/test splits plus what a model needs to size itself."""

    task: str
    train: Split
    val: Split
    test: Split
    input_size: int  # feature dim D for float inputs; 0 for token inputs
    vocab_size: int  # token ids incl. padding/unk for token inputs; 0 otherwise
    output_size: int  # classes / tags / vocab (lm) / target dim
    fingerprint: str = ""  # hash of raw data + preprocessing config + preprocessing code
    content: str = ""  # hash of the prepared data themselves (`content_digest`), whatever code prepared them
    vocab: list[str] | None = None  # id -> token
    meta: dict = field(default_factory=dict)


SPLITS = ("train", "val", "test")


def to_plain(data: TaskData) -> dict:
    """A dict of tensors, strings and numbers (loadable with `weights_only=True`)."""
    plain = {f.name: getattr(data, f.name) for f in fields(TaskData) if f.name not in SPLITS}
    for name in SPLITS:
        split = getattr(data, name)
        plain[name] = {"inputs": split.inputs, "lengths": split.lengths, "targets": split.targets}
    return plain


def from_plain(plain: dict) -> TaskData:
    """Inverse of `to_plain`."""
    kwargs = dict(plain)
    for name in SPLITS:
        kwargs[name] = Split(**plain[name])
    return TaskData(**kwargs)


def content_digest(data: TaskData) -> str:
    """Hex digest of what a model trains and is scored on: every split's tensors (dtype, shape, bytes), the sizes,
    the vocabulary and the class names. Two preparations by different code (a new rnnlab whose data modules moved,
    or were edited) have different fingerprints; they gave the same data when their digests are equal."""
    digest = hashlib.sha256()
    head = [data.task, data.input_size, data.vocab_size, data.output_size, data.vocab, data.meta.get("labels")]
    digest.update(json.dumps(head, default=str).encode())
    for name in SPLITS:
        for part, tensor in vars(getattr(data, name)).items():
            flat = tensor.detach().cpu().contiguous().reshape(-1)
            digest.update(f"{name}.{part}:{flat.dtype}:{tuple(tensor.shape)}".encode())
            digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:32]


def with_dtype(data: TaskData, dtype: torch.dtype) -> TaskData:
    """`data` with its floating tensors (features, real targets) in `dtype`; token ids, labels and lengths as they
    are. A new TaskData: the given one (perhaps cached or shared) is left alone."""

    def cast(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.to(dtype) if tensor.is_floating_point() else tensor

    splits = {name: Split(*(cast(t) for t in vars(getattr(data, name)).values())) for name in SPLITS}
    return replace(data, **splits)


def empty_split(like: Split) -> Split:
    """A zero-row split with the dtypes and trailing shape of `like` (e.g. no validation data asked for)."""
    return Split(
        inputs=like.inputs[:0],
        lengths=like.lengths[:0],
        targets=like.targets[:0],
    )
