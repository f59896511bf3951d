"""The files a local `data.name` (a folder, a glob, a file) names, found by a walk that always ends: a symlinked
folder is followed once, by its real path (a link back to an ancestor, as /proc/self/root is to /, is a cycle walked
no further), the kernel's pseudo-filesystems are refused, and a folder of more than MAX_ENTRIES entries is refused
rather than walked for hours. `data.name=/proc/self` hung."""

from __future__ import annotations

import fnmatch
import glob
import os

from rnnlab.data.taskdata import DataError

PSEUDO_FILESYSTEMS = ("/proc", "/sys", "/dev")  # the kernel's own files: endless, special, never data
MAX_ENTRIES = 200_000  # files and folders a walk visits before it refuses the folder


def refuse_pseudo(path: str, field_path: str = "data.name") -> None:
    """A DataError when `path` (links resolved) lies in one of PSEUDO_FILESYSTEMS."""
    real = os.path.realpath(os.path.expanduser(path))
    for root in PSEUDO_FILESYSTEMS:
        if real == root or real.startswith(root + os.sep):
            raise DataError(
                field_path,
                f"{path!r} is in {root}, a pseudo-filesystem of the kernel, not data files; give a file, folder or "
                "glob of csv, json, parquet or text files",
            )


def walk_files(folder: str, field_path: str = "data.name") -> list[str]:
    """Every regular file under `folder`, each folder walked once by its real path (a linked split folder such as
    `data/train -> /mnt/big/train` is data: not following links dropped its files silently), or a DataError past
    MAX_ENTRIES or into a pseudo-filesystem."""
    refuse_pseudo(folder, field_path)
    files, seen, walked = [], 0, set()
    for root, dirs, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in walked:  # a cycle (a link to an ancestor), or a folder linked twice: its files are already in
            dirs[:] = []
            continue
        walked.add(real)
        refuse_pseudo(root, field_path)
        seen += len(dirs) + len(names)
        if seen > MAX_ENTRIES:
            raise DataError(
                field_path,
                f"{folder!r} holds more than {MAX_ENTRIES} files and folders; give the folder of the data itself, "
                "a glob or a mapping 'train=a.csv,test=b.csv'",
            )
        files += [path for name in names if os.path.isfile(path := os.path.join(root, name))]
    return files


def _matches(parts: list[str], names: list[str]) -> bool:
    """glob's rules for one path split at /: `**` any number of folders, `*`, `?`, `[...]` within one name, a
    leading dot matched only by a leading dot."""
    if not parts:
        return not names
    head, rest = parts[0], parts[1:]
    if head == "**":
        return _matches(rest, names) or bool(names) and not names[0].startswith(".") and _matches(parts, names[1:])
    if not names or names[0].startswith(".") and not head.startswith("."):
        return False
    return fnmatch.fnmatchcase(names[0], head) and _matches(rest, names[1:])


def glob_files(pattern: str, field_path: str = "data.name") -> list[str]:
    """The regular files `pattern` matches (absolute, sorted). A recursive `**` is walked by `walk_files`; glob's
    own `**` follows symlinked folders, round a cycle forever."""
    pattern = os.path.expanduser(pattern)
    if "**" not in pattern:
        refuse_pseudo(pattern.split("*")[0].split("?")[0].split("[")[0] or ".", field_path)
        return sorted(os.path.abspath(f) for f in glob.glob(pattern) if os.path.isfile(f))
    base = os.path.dirname(pattern[: min(pattern.index(c) for c in "*?[" if c in pattern)]) or "."
    parts = os.path.relpath(pattern, base).split(os.sep)
    found = [f for f in walk_files(base, field_path) if _matches(parts, os.path.relpath(f, base).split(os.sep))]
    return sorted(os.path.abspath(f) for f in found)
