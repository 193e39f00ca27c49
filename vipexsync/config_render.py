"""The example file and the ``vipexsync init`` starter, written from the key declarations.

Both come from the same setting() declarations that validate the file
(vipexsync/config.py) plus the prose of each section below, so neither can
drift from what the parser accepts: a test compares the committed
``config/vipexsync.example.toml`` with :func:`render_example`; regenerate it
with ``make example``.

The example shows realistic values and loads as it is (given a password);
the starter sets only the required keys, empty, so that ``vipexsync check``
names exactly what is left to fill in, and shows every other key commented
out.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from vipexsync.config import (
    CARD_SOURCE_TYPES,
    SOURCE_TYPES,
    VCARD_NAME,
    VCARD_PHONE_FIELDS,
    DatabaseConfig,
    JobConfig,
    LoggingConfig,
    MappingConfig,
    MetricsConfig,
    VipexConfig,
)
from vipexsync.config_schema import Key, keys_of
from vipexsync.errors import UsageError

Mode = Literal["example", "starter"]
_WIDTH = 78
_RULE = "# " + "-" * 74


@dataclass(frozen=True, slots=True)
class _Section:
    header: str  # the TOML table header: "[vipex]", "[[jobs]]"
    cls: type[Any]
    title: str  # after the header in the banner; "" = none
    prose: tuple[str, ...] = ()


_SECTIONS = (
    _Section("[vipex]", VipexConfig, "how to reach the VIPeX API"),
    _Section(
        "[database]",
        DatabaseConfig,
        "the mirror: what vipexsync last wrote and which numbers it owns",
    ),
    _Section("[metrics]", MetricsConfig, "Prometheus endpoint (/metrics, and /healthz)"),
    _Section("[logging]", LoggingConfig, "what the daemon logs, and how"),
)
_JOBS = _Section(
    "[[jobs]]",
    JobConfig,
    "one phonebook kept in step with one CRM source",
    (
        "Repeat the whole [[jobs]] block (with its [jobs.source] and [jobs.mapping])",
        "for each further phonebook. At least one job is required.",
    ),
)
_MAPPING_PROSE = (
    "Templates use {field} placeholders naming the source's fields; a missing or",
    'empty field renders as "", and runs of whitespace collapse to one space.',
    '{a|b|c} takes the first of the fields that is not empty: "{fn|n|org}" names a',
    "company-only contact by its organisation. Only plain names are allowed (no",
    "{x!r}, {x:>10}, {x:} or {x[0]}); write a literal brace as {{ or }}. A field",
    "name may contain spaces or dots ({Last Name}, {address.city}). `check`",
    "accepts exactly what a run renders.",
)

_EXAMPLE_HEADER = (
    "vipexsync: example configuration",
    "",
    "Generated from the declarations in vipexsync/config.py by `make example`;",
    "edit those, not this file. `vipexsync init` writes a starter like it.",
    "",
    "vipexsync keeps the phonebook of a VIPeX cloud PBX subscription equal to what",
    "your CRM says. Copy this file to /etc/vipexsync/vipexsync.toml (or point",
    "--config / $VIPEXSYNC_CONFIG at it), adjust it, then run `vipexsync check`.",
)
_STARTER_HEADER = (
    "vipexsync configuration, written by `vipexsync init --source {source}`",
    "",
    "Fill in every value marked Required (they are empty now), give the VIPeX",
    "password (see [vipex] below), then run `vipexsync check`: it names anything",
    "still missing. Every other key is shown commented out with its default.",
)
_COMMON_HEADER = (
    "",
    "Where the file is looked for when --config is not given:",
    "  1. $VIPEXSYNC_CONFIG (if set, it must exist)",
    "  2. ./vipexsync.toml",
    "  3. /etc/vipexsync/vipexsync.toml",
    "",
    "Conventions used below:",
    '  * "Default: X" means the key may be left out and X is used.',
    "  * Relative paths are relative to the folder this file is in.",
    "  * Every problem in the file is reported at once, named by its key path,",
    '    e.g. "jobs[0].source.type" (jobs count from 0 in the order they appear).',
    "  * Unknown keys are errors, so a typo never silently does nothing.",
)


# --------------------------------------------------------------------------
# Values and facts
# --------------------------------------------------------------------------

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_value(value: Any) -> str:
    """A value as TOML writes it (strings as basic strings, multi-line when they span lines)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str | Path):
        text = str(value)
        if "\n" in text and "\\" not in text and '"""' not in text:
            return f'"""\n{text}"""'  # TOML drops the newline right after the opening quotes
        return json.dumps(text, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if value is None:
        return '""'
    raise TypeError(f"no TOML form for {type(value).__name__}")


def _toml_key(name: str) -> str:
    return name if _BARE_KEY.match(name) else json.dumps(name, ensure_ascii=False)


def _default_text(key: Key) -> str:
    if key.default_doc:
        return key.default_doc
    default = key.default
    if default is None or default == {}:
        return "none"
    return toml_value(default)


def facts(key: Key) -> str:
    """The declaration's rules as one sentence or a few: required/default, range, choices."""
    parts: list[str] = []
    if key.required and not key.default_doc:
        parts.append("Required.")
    else:
        parts.append(f"Default: {_default_text(key)}.")
    if key.kind == "integer" and key.minimum is not None and key.maximum is not None:
        parts.append(f"Range {key.minimum:g}..{key.maximum:g}.")
    elif key.minimum is not None and key.maximum is not None:
        parts.append(f"Between {key.minimum:g} and {key.maximum:g}.")
    elif key.minimum is not None:
        parts.append(f"At least {key.minimum:g}.")
    elif key.maximum is not None:
        parts.append(f"At most {key.maximum:g}.")
    if key.positive:
        parts.append("Must be > 0.")
    if key.choices:
        parts.append(f"One of: {', '.join(key.choices)}.")
    if key.secret:
        parts.append(
            f"Secret: a file named by {key.name}_file (mode 0600), or inline {key.name} "
            "in a config only its owner can read."
        )
    return " ".join(parts)


# --------------------------------------------------------------------------
# Keys, sections, the whole file
# --------------------------------------------------------------------------


def _comment(lines: Iterable[str]) -> list[str]:
    return [f"# {line}".rstrip() for line in lines]


def _wrapped(text: str) -> list[str]:
    return textwrap.wrap(text, width=_WIDTH - 2, break_on_hyphens=False)


def _is_set(key: Key, mode: Mode) -> bool:
    """Whether the key's line is live (not commented out)."""
    if mode == "starter":
        return key.required and not key.secret
    return key.shown


def _placeholder(key: Key) -> Any:
    return [] if key.kind == "strings" else ""


def _key_body(key: Key, mode: Mode, table_path: str) -> tuple[bool, list[str]]:
    """(live, the key's TOML lines): a sub-table, a secret's _file key, or a value."""
    live = _is_set(key, mode)
    value = key.shown_value
    if key.kind == "table":
        body = [f"[{table_path}.{key.name}]"]
        body += [f"{_toml_key(name)} = {toml_value(item)}" for name, item in value.items()]
    elif key.secret:
        body = [f"{key.name}_file = {toml_value(value)}"]
    elif live and mode == "starter":
        # empty, so that `vipexsync check` names it until it is filled in
        example = toml_value(value)
        hint = "" if "\n" in example else f"  # e.g. {example}"
        body = [f"{key.name} = {toml_value(_placeholder(key))}{hint}"]
    else:
        body = f"{key.name} = {toml_value(value)}".split("\n")
    return live, body


def render_key(key: Key, mode: Mode, table_path: str) -> list[str]:
    """One key: its doc and facts as comments, then its line (or sub-table)."""
    lines = _comment([*_wrapped(f"{key.doc} {facts(key)}"), *key.notes])
    live, body = _key_body(key, mode, table_path)
    return lines + (body if live else _comment(body))


_DOC_COLUMN = 35  # where a compact block's trailing comments start
_BLOCK_WIDTH = 88


def _with_doc(lines: list[str], doc: str) -> list[str]:
    """Block lines with ``doc`` as aligned trailing comments from the last line on."""
    wrapped = textwrap.wrap(doc, width=_BLOCK_WIDTH - _DOC_COLUMN - 2, break_on_hyphens=False)
    last = lines[-1]
    if len(last) < _DOC_COLUMN - 1 and wrapped:
        lines = [*lines[:-1], f"{last.ljust(_DOC_COLUMN)}# {wrapped.pop(0)}"]
    return lines + ["#" + " " * (_DOC_COLUMN - 1) + f"# {line}" for line in wrapped]


def _compact_key(key: Key, mode: Mode, table_path: str) -> list[str]:
    """A key inside a commented-out block: ``# key = value   # doc``.

    Uncommenting the block (dropping each line's leading "# ") leaves valid
    TOML: a key that is off stays a comment, docs stay trailing comments.
    """
    live, body = _key_body(key, mode, table_path)
    lines = [f"# {line}" if live else f"#  # {line}" for line in body]
    return _with_doc(lines, " ".join([key.doc, facts(key), *key.notes]))


def _mapping_keys(source_type: str) -> tuple[Key, ...]:
    """The mapping's keys; a card job's phone_fields and name have defaults."""
    if source_type not in CARD_SOURCE_TYPES:
        return keys_of(MappingConfig)
    card_defaults = {"phone_fields": VCARD_PHONE_FIELDS, "name": VCARD_NAME}
    return tuple(
        dataclasses.replace(key, default=card_defaults[key.name], example=card_defaults[key.name])
        if key.name in card_defaults
        else key
        for key in keys_of(MappingConfig)
    )


def _render_keys(
    declared: Iterable[Key], mode: Mode, table_path: str, *, compact: bool
) -> list[str]:
    """Every key given; sub-tables last, since TOML keys after one belong to it."""
    keys = sorted(declared, key=lambda k: k.kind == "table")
    lines: list[str] = []
    for key in keys:
        if compact:
            lines += _compact_key(key, mode, table_path)
            continue
        if lines:
            lines.append("")
        lines += render_key(key, mode, table_path)
    return lines


def _banner(header: str, title: str) -> list[str]:
    return [_RULE, f"# {header}" + (f": {title}" if title else ""), _RULE]


def _source_doc(source_type: str) -> str:
    doc = (SOURCE_TYPES[source_type].__doc__ or "").strip()
    # a dataclass without a docstring gets its signature as __doc__: not prose
    return "" if doc.startswith(SOURCE_TYPES[source_type].__name__ + "(") else doc


def _source_block(source_type: str, mode: Mode, *, compact: bool) -> list[str]:
    doc = _source_doc(source_type)
    keys = _render_keys(keys_of(SOURCE_TYPES[source_type]), mode, "jobs.source", compact=compact)
    type_line = f"type = {toml_value(source_type)}"
    if compact:
        return ["# [jobs.source]", *_with_doc([f"# {type_line}"], doc), *keys]
    return [*_comment(_wrapped(doc)), "[jobs.source]", type_line, *keys]


def _job(source_type: str, mode: Mode) -> list[str]:
    others = [kind for kind in SOURCE_TYPES if kind != source_type]
    if mode == "example":
        where = "the others are shown, commented out, after this job."
    else:
        where = "`vipexsync init --source TYPE` shows the keys of another."
    lines = [*_banner(_JOBS.header, _JOBS.title), *_comment(_JOBS.prose), _JOBS.header]
    lines += _render_keys(keys_of(JobConfig), mode, "jobs", compact=False)
    lines += ["", "# -- where the CRM records come from " + "-" * 38]
    lines += _comment(
        _wrapped(f"type is one of: {', '.join(SOURCE_TYPES)}. Each type has its own keys; {where}")
    )
    lines += _source_block(source_type, mode, compact=False)
    lines += ["", "# -- how a CRM record becomes phonebook entries " + "-" * 27]
    lines += _comment(_MAPPING_PROSE)
    mapping = _render_keys(_mapping_keys(source_type), mode, "jobs.mapping", compact=False)
    lines += ["[jobs.mapping]", *mapping]
    if mode == "example" and others:
        lines += ["", "", _RULE]
        lines += _comment(
            [
                "The other source types: replace the [jobs.source] table above with one of",
                "these (each in its own job if you have several sources).",
            ]
        )
        lines.append(_RULE)
        for kind in others:
            lines += ["#", *_source_block(kind, mode, compact=True)]
    return lines


def _render(source_type: str, mode: Mode) -> str:
    header = _EXAMPLE_HEADER if mode == "example" else _STARTER_HEADER
    lines = _comment([*(line.format(source=source_type) for line in header), *_COMMON_HEADER])
    for section in _SECTIONS:
        lines += ["", "", *_banner(section.header, section.title), *_comment(section.prose)]
        lines += [section.header, *_render_keys(keys_of(section.cls), mode, "", compact=False)]
    lines += ["", "", *_job(source_type, mode)]
    return "\n".join(lines) + "\n"


def render_example() -> str:
    """The text of config/vipexsync.example.toml."""
    return _render(next(iter(SOURCE_TYPES)), "example")


def render_starter(source_type: str) -> str:
    """What `vipexsync init --source TYPE` writes."""
    if source_type not in SOURCE_TYPES:
        raise UsageError(
            f"unknown source type {source_type!r}; use one of: {', '.join(SOURCE_TYPES)}"
        )
    return _render(source_type, "starter")


def write_starter(path: Path, source_type: str, *, force: bool = False) -> Path:
    """Write the starter to ``path`` (mode 0644 less the umask: the service must read it).

    An existing file is kept unless ``force``; every failure is a UsageError
    that says what to do.
    """
    text = render_starter(source_type)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o666)
    except FileExistsError:
        raise UsageError(
            f"{path} already exists; pass --force to overwrite it, or name another file: "
            f"vipexsync init --source {source_type} PATH"
        ) from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory; name the file to write") from None
    except FileNotFoundError:
        raise UsageError(f"cannot write {path}: the folder {path.parent} does not exist") from None
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


if __name__ == "__main__":  # `make example`
    sys.stdout.write(render_example())
