"""`rnnlab fields [PREFIX]`: every config field by its dotted path, with its type, default and meaning.

Read from the config dataclasses themselves, following the field types down from `Config`: the type from the
annotations, the default from a default instance, the meaning from the comment ending the field's line (or the
comment lines just above it) in the class's source, and each section's docstring. A config class is described the
same way wherever it lives.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import textwrap
import tokenize
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

from rnnlab.config import Config, ConfigError

SKIPPED_COMMENTS = ("fmt:", "noqa", "type:")


@dataclass
class FieldDoc:
    path: str
    type: str
    default: Any
    meaning: str


@dataclass
class SectionDoc:
    path: str  # "" for the top level
    doc: str
    fields: list[FieldDoc]


def short_type(tp: Any) -> str:
    """`int`, `float|None`, `ridge|gradient` (a Literal's choices), `list[str]`."""
    origin = get_origin(tp)
    if origin is Literal:
        return "|".join(str(a) for a in get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return "|".join(short_type(a) for a in get_args(tp))
    if origin is list:
        return f"list[{short_type(get_args(tp)[0])}]"
    return "None" if tp is type(None) else getattr(tp, "__name__", str(tp))


def field_comments(cls: type) -> dict[str, str]:
    """{field name: its comment}: the comment ending the field's line, else the comment lines right above it."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):  # no source (a class made at run time): no meanings
        return {}
    lines = source.splitlines()
    tokens = [t for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type == tokenize.COMMENT]
    comments = {t.start[0]: t.string.lstrip("#").strip() for t in tokens}
    comments = {line: text for line, text in comments.items() if not text.startswith(SKIPPED_COMMENTS)}
    found = {}
    for node in ast.parse(source).body[0].body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        text = comments.get(node.end_lineno, "")
        if not text:  # comment lines just above the field
            above, line = [], node.lineno - 1
            while line in comments and lines[line - 1].lstrip().startswith("#"):
                above.insert(0, comments[line])
                line -= 1
            text = " ".join(above)
        found[node.target.id] = text.split(". ")[0] if len(text) > 100 else text  # a long why: its first sentence
    return found


def class_doc(cls: type) -> str:
    doc = cls.__doc__ or ""
    if doc.startswith(f"{cls.__name__}("):  # dataclass's generated signature, not a docstring
        return ""
    return " ".join(doc.strip().split("\n\n")[0].split())


def describe(cls: type = Config, prefix: str = "", default: Any = None) -> list[SectionDoc]:
    """The config tree under `cls` as sections (one per dataclass), each with its fields in declaration order."""
    default = cls() if default is None else default
    hints = typing.get_type_hints(cls)
    comments = field_comments(cls)
    section = SectionDoc(prefix.rstrip("."), class_doc(cls), [])
    nested = []
    for f in dataclasses.fields(cls):
        tp, value = hints[f.name], getattr(default, f.name)
        if dataclasses.is_dataclass(value):  # the instance's own class: a family's config, not the base annotated
            nested += describe(type(value), f"{prefix}{f.name}.", value)
        else:
            section.fields.append(FieldDoc(f"{prefix}{f.name}", short_type(tp), value, comments.get(f.name, "")))
    return [section, *nested]


def describe_config() -> list[SectionDoc]:
    """Config's sections, with the model's once per family config class (each family holds only its own)."""
    from rnnlab.models import MODELS

    by_class: dict[type, list[str]] = {}
    for name, family in MODELS.items():
        by_class.setdefault(family.config, []).append(name)
    sections = [s for s in describe(Config) if s.path != "model"]
    at = next(i for i, s in enumerate(sections) if s.path > "model")  # the sections stay in alphabetical order
    families = []
    for config_class, names in by_class.items():
        for s in describe(config_class, "model.", config_class(family=names[0])):
            label = f"model.family={'|'.join(names)}"
            families.append(SectionDoc(s.path, f"{s.doc} ({label})" if s.doc else f"({label})", s.fields))
    return [*sections[:at], *families, *sections[at:]]


def select(sections: list[SectionDoc], prefix: str | None) -> list[SectionDoc]:
    """The sections and fields under the dotted `prefix` (`optim`, `model.esn`, `train.epochs`); all for None."""
    if not prefix:
        return sections
    path = prefix.rstrip(".")
    chosen = []
    for s in sections:
        fields = [f for f in s.fields if path and (f.path == path or f.path.startswith(path + "."))]
        if fields:
            chosen.append(SectionDoc(s.path, s.doc, fields))
    if not chosen:  # '.' was stripped to '' and the message said no field under ''
        names = sorted({s.path for s in sections if s.path})
        top = sorted({f.path for s in sections if not s.path for f in s.fields})
        raise ConfigError(
            "fields",
            f"no config field under {prefix!r}; give a section ({', '.join(names)}), a top-level field "
            f"({', '.join(top)}) or a field's dotted path (train.epochs), or nothing for all",
        )
    return chosen


def format_sections(sections: list[SectionDoc]) -> list[str]:
    """Aligned lines: a header per section, then `path  type  default  meaning` per field."""
    rows = [(f.path, f.type, repr(f.default)) for s in sections for f in s.fields]
    widths = [min(max(len(r[i]) for r in rows), cap) for i, cap in enumerate((48, 20, 14))]  # a long one overflows
    lines = []
    for s in sections:
        lines.append(f"[{s.path or 'top level'}]" + (f"  {s.doc}" if s.doc else ""))
        for f in s.fields:
            cells = (f.path, f.type, repr(f.default))
            lines.append(("  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths)) + f"  {f.meaning}").rstrip())
    return lines
