"""A tagger's local data for the data tests: a parquet file of words and their List(ClassLabel) tags, and the
DataConfig that reads such files."""

from __future__ import annotations

from pathlib import Path

from rnnlab.config import DataConfig


def tags_parquet(path: Path, names: list[str], tags: list[list[int]], words: list[list[str]]) -> str:
    """A parquet file of rows `words` and `ner`, a List(ClassLabel) of `names` holding the ids `tags`."""
    from datasets import ClassLabel, Dataset, Features, List, Value

    features = Features({"words": List(Value("string")), "ner": List(ClassLabel(names=names))})
    Dataset.from_dict({"words": words, "ner": tags}, features=features).to_parquet(str(path))
    return str(path)


def tagger_config(name: str, **fields) -> DataConfig:
    """A tagger on the local files `name` (words in `words`, tags in `ner`); no val split cut out of train."""
    fields = {"val_fraction": 0.0, **fields}
    return DataConfig(source="local", name=name, task="tagging", tokens_column="words", label_column="ner", **fields)
