"""Raw data from local files (a file, a glob, a folder or a mapping of split names to files): which files are
which split, their format, and reading them. The hub source is in hub.py; the train/val/test cuts in splitting.py."""

from __future__ import annotations

import csv
import glob
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from rnnlab.config import DataConfig
from rnnlab.data import classlabels
from rnnlab.data.local_paths import glob_files, walk_files
from rnnlab.data.taskdata import DataError

if TYPE_CHECKING:
    from datasets import DatasetDict

LOCAL_FORMATS = {  # file extension -> datasets builder
    ".csv": "csv",
    ".tsv": "csv",
    ".json": "json",
    ".jsonl": "json",
    ".parquet": "parquet",
    ".txt": "text",
}
# A CSV cell is missing only when it is empty: pandas' default also reads "NA", "null", "None", "nan", "N/A" ... as
# missing, so a class "NA" (North America) or a line of text "null" was lost (an lm read it as an empty line).
CSV_CELLS = {"keep_default_na": False, "na_values": [""]}
CSV_CHUNK = 10_000  # rows datasets' csv builder hands pandas at a time (CsvConfig.chunksize): types per chunk


def expand(pattern: str, field_path: str = "data.name") -> list[str]:
    files = glob_files(pattern, field_path)
    if not files:
        raise DataError(field_path, f"no file matches {pattern!r} (cwd {os.getcwd()}); give a path, glob or folder")
    return files


def split_by_names(files: list[str], base: str, default: str) -> dict[str, list[str]]:
    """`files` (under folder `base`) into splits by datasets' own conventions: split names in the file or folder
    names (train, validation/valid/val/dev, test/eval); no such name anywhere: all of them are split `default`."""
    from datasets.data_files import DEFAULT_PATTERNS_ALL, DataFilesDict, get_data_patterns

    try:
        patterns = get_data_patterns(base)
    except Exception:  # datasets finds no data file under base: none of ours has a split name either
        patterns = DEFAULT_PATTERNS_ALL
    if patterns == DEFAULT_PATTERNS_ALL:
        return {default: files}
    chosen = set(files)  # absolute paths, as datasets resolves them
    resolved = DataFilesDict.from_patterns(patterns, base_path=os.path.abspath(base))
    splits = {str(name): sorted(f for f in found if f in chosen) for name, found in resolved.items()}
    splits = {name: found for name, found in splits.items() if found}
    if unplaced := sorted(chosen - {f for found in splits.values() for f in found}):
        linked = next((str(p) for p in Path(unplaced[0]).parents if p.is_symlink()), None)
        why = f", a linked folder ({linked}), which datasets' naming does not follow" if linked else ""
        raise DataError(
            "data.name",
            f"{len(unplaced)} of {len(files)} file(s) get no split from datasets' naming under {base!r} (e.g. "
            f"{unplaced[0]}{why}; placed: {', '.join(splits) or 'none'}): name every file or its folder after its "
            "split, or map them: data.name='train=a.csv,test=b.csv'",
        )
    return splits


def is_mapping(name: str) -> bool:
    """'train=a.csv,test=b.csv' is a mapping; a path that exists (`runs/lr=0.1/data.csv`) is not, whatever it holds."""
    if glob.glob(name):  # not recursive: a `**` is one folder here, and the check stays quick
        return False
    return all(re.match(r"\s*[A-Za-z_][\w.-]*\s*=", item) for item in name.split(","))


def local_data_files(cfg: DataConfig) -> dict[str, list[str]]:
    """Split name -> files, for the forms of `data.name`: one file (the split `train_split`); a glob or a folder
    (splits from the file and folder names, as datasets names them); or a mapping 'train=a.csv,test=b/*.csv'."""
    name = os.path.expanduser(cfg.name)
    if is_mapping(name):
        mapping = {}
        for item in name.split(","):
            split, sep, pattern = item.partition("=")
            if not sep or not split.strip() or not pattern.strip():
                raise DataError("data.name", f"{item!r} is not split=path; a mapping reads 'train=a.csv,test=b.csv'")
            mapping[split.strip()] = expand(pattern.strip())
        seen: dict[str, str] = {}
        for split, files in mapping.items():
            for f in files:
                if f in seen:
                    raise DataError("data.name", f"{f} is in split {seen[f]!r} and in split {split!r}: a leak")
                seen[f] = split
        return mapping
    if os.path.isdir(name):
        found = walk_files(name)
        known = sorted(os.path.abspath(f) for f in found if Path(f).suffix.lower() in LOCAL_FORMATS)
        if not known:
            raise DataError("data.name", f"folder {cfg.name!r} holds no {', '.join(LOCAL_FORMATS)} file")
        return split_by_names(known, name, cfg.train_split)
    files = expand(name)
    if not glob.has_magic(name):
        return {cfg.train_split: files}
    base = name[: min(name.index(c) for c in "*?[" if c in name)]
    return split_by_names(files, os.path.dirname(base) or ".", cfg.train_split)


def local_files(cfg: DataConfig) -> list[str]:
    return sorted({f for files in local_data_files(cfg).values() for f in files})


def local_format(cfg: DataConfig, files: list[str]) -> str:
    if cfg.format:
        return cfg.format
    suffixes = {Path(f).suffix.lower() for f in files}
    builders = {LOCAL_FORMATS.get(s) for s in suffixes}
    if None in builders or len(builders) != 1:
        raise DataError(
            "data.format", f"cannot tell the format of {sorted(suffixes)}; set one of csv, json, parquet, text"
        )
    return builders.pop()


def check_header(files: list[str], delimiter: str) -> None:
    """A CSV header naming a column twice is refused: pandas renames the second 'text.1', so `text` silently meant
    the first of the two."""
    for path in files:
        try:
            with open(path, newline="", encoding="utf-8-sig", errors="replace") as handle:
                header = next(csv.reader(handle, delimiter=delimiter), [])
        except csv.Error:  # not a header csv can read (a field past its size limit): datasets says what is wrong
            continue
        if twice := next((name for name in header if header.count(name) > 1), None):
            raise DataError(
                "data.name",
                f"{path}: the header names column {twice!r} {header.count(twice)} times (datasets would read the "
                f"others as {twice + '.1'!r}, ...): give each column its own name",
            )


def label_as_text(files: list[str], delimiter: str, column: str) -> dict:
    """The csv builder's kwargs that read `column` as written (pandas' `converters`) when its cells spell one value
    in different ways ('01' and '1', '1.0' and '1', 'True' and 'true'): pandas reads them as one number or boolean,
    so two classes of the file became one, silently. {} otherwise: plain numeric labels stay numbers, as before."""
    cells: set[str] = set()
    for path in files:
        try:
            with open(path, newline="", encoding="utf-8-sig", errors="replace") as handle:
                rows = csv.reader(handle, delimiter=delimiter)
                header = next(rows, [])
                if column in header:
                    at = header.index(column)
                    cells.update(row[at] for row in rows if len(row) > at)
        except csv.Error:  # datasets says what is wrong with the file
            continue
    return {"converters": {column: str}} if classlabels.spelling_twins(cells) else {}


def causes(err: BaseException) -> list[BaseException]:
    """`err` and the errors under it: datasets' 'An error occurred while generating the dataset' says nothing; under
    it, pyarrow's "Failed to parse string: 'neg' as a scalar of type int64" does."""
    chain = [err]
    while (cause := chain[-1].__cause__ or chain[-1].__context__) is not None and len(chain) < 5:
        chain.append(cause)
    return chain


def unreadable(err: BaseException, files: list[str], builder: str) -> DataError:
    """A DataError in datasets' words and those of the error under them; a CSV column whose type its first rows set
    (pyarrow's ArrowInvalid: a word or a fraction later in a column of integers) says so."""
    import pyarrow as pa

    chain = causes(err)
    words = ": ".join(dict.fromkeys(str(e) for e in chain if str(e)))
    hint = ""
    if builder == "csv" and any(isinstance(e, pa.ArrowInvalid) for e in chain):
        hint = (
            f"; a CSV column's type is set by the first rows datasets reads (the first {CSV_CHUNK}, of the first "
            "file of several), so a later cell that does not fit (a word or a fraction in a column of integers) is "
            "refused: give the data as JSON lines or parquet, or fix the cell if it is a mistake (a missing value "
            "is an empty cell)"
        )
    guess = "" if hint else " (empty or malformed?)"
    return DataError("data.name", f"could not read {files} with the {builder} builder{guess}: {words}{hint}")


def load_local(cfg: DataConfig) -> DatasetDict:
    """Local files through datasets' csv/json/parquet/text builders, a split per entry of `local_data_files`."""
    from datasets import load_dataset

    data_files = local_data_files(cfg)
    files = sorted({f for found in data_files.values() for f in found})
    builder = local_format(cfg, files)
    kwargs = dict(CSV_CELLS) if builder == "csv" else {}
    if builder == "text":  # a byte-order mark was the first character of the first line (an lm's token '\ufeff')
        kwargs["encoding"] = "utf-8-sig"
    if builder == "csv" and all(f.lower().endswith(".tsv") for f in files):
        kwargs["delimiter"] = "\t"
    if builder == "csv":
        check_header(files, kwargs.get("delimiter", ","))
        kwargs.update(label_as_text(files, kwargs.get("delimiter", ","), cfg.label_column))
    alone = builder == "parquet" and classlabels.class_names_differ(data_files)  # each split keeps its ClassLabel
    try:
        if alone:
            return classlabels.load_each_split(data_files)
        return load_dataset(builder, data_files=data_files, **kwargs)
    except Exception as err:  # datasets reports an empty or malformed file in its own words
        raise unreadable(err, files, builder) from err


def local_identity(cfg: DataConfig) -> list:
    """Split, path, size and mtime of each file: a changed or re-assigned file must change the fingerprint."""
    return [
        [split, f, os.stat(f).st_size, os.stat(f).st_mtime_ns]
        for split, found in local_data_files(cfg).items()
        for f in found
    ]
