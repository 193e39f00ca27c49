"""One declaration per configuration key, and the checker that reads a table with them.

A key is declared once, as a field of the frozen dataclass it fills, with
:func:`setting` (see vipexsync/config.py): its type (``kind``), default,
range or choices, required-ness, secret-ness, a one-line doc, and the value
the example file shows. From those declarations come the validation
(:func:`read_settings`, plus each section's own cross-key checks), the
defaults (the dataclass's own), and the generated example file and
``vipexsync init`` starter (vipexsync/config_render.py).

Problems are collected, never raised here: each getter records one and goes
on with the default, so an operator sees every problem at once.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Literal, TypeVar, dataclass_transform

# Whether a source key enters the mapping fingerprint: "always"; "unless-default"
# (a key added later, so that a file that leaves it out keeps its fingerprint);
# "never" (how to fetch, not what: secrets, timeouts, TLS).
Fingerprint = Literal["always", "unless-default", "never"]
Kind = Literal[
    "string", "integer", "number", "boolean", "choice", "strings", "path", "secret", "table"
]

_META = "vipexsync.setting"


@dataclass(frozen=True, slots=True)
class Secret:
    """A string that never shows itself in a repr, str or log line."""

    value: str = dataclasses.field(repr=False)

    def __repr__(self) -> str:
        return "Secret('********')"

    def __str__(self) -> str:
        return "********"


class _Required:
    """The default of a key that has none: the operator must set it."""

    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclass(frozen=True, slots=True)
class Key:
    """Everything known about one configuration key (``name`` is its TOML name)."""

    name: str
    kind: Kind
    doc: str  # one line: what the key is
    default: Any = REQUIRED
    notes: tuple[str, ...] = ()  # more prose for the example file, line by line
    example: Any = REQUIRED  # the value the example file shows (default: the default)
    shown: bool = True  # set (not commented out) in the example file
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    positive: bool = False
    check: Callable[[Any], str | None] | None = None  # a value's problem, or None
    convert: Callable[[Any], Any] | None = None  # applied to a value that passed
    custom: bool = False  # its section's own code reads it (read_settings skips it)
    default_doc: str = ""  # how the docs state the default when it is not a literal
    fingerprint: Fingerprint = "always"

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    @property
    def shown_value(self) -> Any:
        return self.default if self.example is REQUIRED else self.example

    @property
    def secret(self) -> bool:
        """Read from NAME_file, or inline NAME only in a file no one else can read."""
        return self.kind == "secret"

    @property
    def toml_names(self) -> tuple[str, ...]:
        """The TOML keys it occupies: a secret takes NAME and NAME_file."""
        return (self.name, f"{self.name}_file") if self.secret else (self.name,)


def setting(
    doc: str,
    *,
    kind: Kind,
    default: Any = REQUIRED,
    notes: Iterable[str] = (),
    example: Any = REQUIRED,
    shown: bool = True,
    choices: Iterable[str] = (),
    minimum: float | None = None,
    maximum: float | None = None,
    positive: bool = False,
    check: Callable[[Any], str | None] | None = None,
    convert: Callable[[Any], Any] | None = None,
    custom: bool = False,
    default_doc: str = "",
    fingerprint: Fingerprint = "always",
) -> Any:
    """A dataclass field that is also the declaration of its configuration key.

    The key's TOML name is the field's name; the field's default is the
    key's default (a required key gives the field none).
    """
    key = Key(
        name="",  # filled in by keys_of(), which knows the field's name
        kind=kind,
        doc=doc,
        default=default,
        notes=tuple(notes),
        example=example,
        shown=shown,
        choices=tuple(choices),
        minimum=minimum,
        maximum=maximum,
        positive=positive,
        check=check,
        convert=convert,
        custom=custom,
        default_doc=default_doc,
        fingerprint=fingerprint,
    )
    metadata = {_META: key}
    if default is REQUIRED:
        return dataclasses.field(metadata=metadata)
    if isinstance(default, dict):
        return dataclasses.field(default_factory=dict, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


_C = TypeVar("_C")


@dataclass_transform(frozen_default=True, field_specifiers=(setting, dataclasses.field))
def config_class(cls: type[_C]) -> type[_C]:
    """A frozen, slotted dataclass whose setting() fields declare configuration keys.

    (Through dataclass_transform a type checker knows that a setting() without
    ``default`` is a required field.)
    """
    return dataclass(frozen=True, slots=True)(cls)


def keys_of(cls: type[Any]) -> tuple[Key, ...]:
    """The declared keys of a config dataclass, in declaration order."""
    found: list[Key] = []
    for spec in dataclasses.fields(cls):
        key = spec.metadata.get(_META)
        if isinstance(key, Key):
            found.append(dataclasses.replace(key, name=spec.name))
    return tuple(found)


def key_of(cls: type[Any], name: str) -> Key:
    for key in keys_of(cls):
        if key.name == name:
            return key
    raise KeyError(name)


def toml_names(cls: type[Any], *extra: str) -> tuple[str, ...]:
    """Every TOML key a table of ``cls`` may hold (``extra``: keys with no field)."""
    return (*extra, *(name for key in keys_of(cls) for name in key.toml_names))


# --------------------------------------------------------------------------
# Reading one table
# --------------------------------------------------------------------------


def toml_type(value: object) -> str:
    """How TOML would call the type of a value, for messages (never the value itself)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, datetime | date | time):
        return "a date/time"
    return type(value).__name__


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True, slots=True)
class SecretContext:
    """What reading a secret needs: where relative paths start, the environment, the file."""

    base_dir: Path
    environ: Mapping[str, str]
    file_mode: int | None  # the config file's permission bits; None: not from a file
    source: str


@dataclass(slots=True)
class Table:
    """One TOML table under check: typed getters that record a problem and go on.

    Each getter returns the default when the key is missing or wrong, so that
    checking continues and every problem is collected; the caller raises at
    the end if any were found.
    """

    data: Mapping[str, Any]
    path: str  # key path prefix: "", "vipex", "jobs[0].source"
    label: str  # how the operator sees it: "[vipex]", "[[jobs]] 'crm'"
    problems: list[str]

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def problem(self, name: str, message: str) -> None:
        self.problems.append(f"{self.key(name)}: {message}")

    def has(self, name: str) -> bool:
        return name in self.data

    def unknown_keys(self, valid: Iterable[str]) -> None:
        valid_keys = sorted(valid)
        for name in self.data:
            if name not in valid_keys:
                self.problem(
                    name,
                    f"unknown key {name!r} in {self.label}{did_you_mean(name, valid_keys)}; "
                    f"valid keys: {', '.join(valid_keys)}",
                )

    def missing(self, name: str) -> None:
        self.problem(name, f"required key {name!r} is missing from {self.label}")

    def string(self, name: str, default: str = "", *, required: bool = False) -> str:
        if name not in self.data:
            if required:
                self.missing(name)
            return default
        value = self.data[name]
        if not isinstance(value, str):
            self.problem(name, f"expected a string, got {toml_type(value)}")
            return default
        if required and not value.strip():
            self.problem(name, "must not be empty")
            return default
        return value

    def integer(
        self, name: str, default: int, *, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        if name not in self.data:
            return default
        value = self.data[name]
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(name, f"expected an integer, got {toml_type(value)}")
            return default
        if minimum is not None and value < minimum:
            self.problem(name, f"must be at least {minimum}, got {value}")
            return default
        if maximum is not None and value > maximum:
            self.problem(name, f"must be at most {maximum}, got {value}")
            return default
        return value

    def number(
        self,
        name: str,
        default: float,
        *,
        positive: bool = False,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> float:
        if name not in self.data:
            return default
        value = self.data[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(name, f"expected a number, got {toml_type(value)}")
            return default
        number = float(value)
        if number != number or number in (float("inf"), float("-inf")):
            self.problem(name, "must be a finite number")
            return default
        if positive and number <= 0:
            self.problem(name, f"must be greater than 0, got {value}")
            return default
        if minimum is not None and number < minimum:
            self.problem(name, f"must be at least {minimum:g}, got {value}")
            return default
        if maximum is not None and number > maximum:
            self.problem(name, f"must be at most {maximum:g}, got {value}")
            return default
        return number

    def boolean(self, name: str, default: bool) -> bool:
        if name not in self.data:
            return default
        value = self.data[name]
        if not isinstance(value, bool):
            hint = " (write true or false without quotes)" if isinstance(value, str) else ""
            self.problem(name, f"expected a boolean, got {toml_type(value)}{hint}")
            return default
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.string(name, default)
        if value not in choices:
            self.problem(
                name,
                f"{value!r} is not valid{did_you_mean(value, choices)}; "
                f"use one of: {', '.join(choices)}",
            )
            return default
        return value

    def string_list(self, name: str, *, required: bool = False) -> tuple[str, ...]:
        if name not in self.data:
            if required:
                self.missing(name)
            return ()
        value = self.data[name]
        if not isinstance(value, list):
            self.problem(name, f"expected an array of strings, got {toml_type(value)}")
            return ()
        items: list[str] = []
        for index, item in enumerate(value):
            if not isinstance(item, str):
                self.problem(f"{name}[{index}]", f"expected a string, got {toml_type(item)}")
            else:
                items.append(item)
        if required and not value:
            self.problem(name, "must list at least one entry")
        return tuple(items)

    def table(self, name: str, label: str, *, required: bool = False) -> Table | None:
        if name not in self.data:
            if required:
                self.problem(name, f"required table {label} is missing")
            return None
        value = self.data[name]
        if not isinstance(value, dict):
            self.problem(name, f"expected a table {label}, got {toml_type(value)}")
            return None
        return Table(value, self.key(name), label, self.problems)

    def path_value(self, name: str, base_dir: Path, *, required: bool = False) -> Path | None:
        """A file system path; a relative one is taken relative to the config file."""
        text = self.string(name, required=required)
        if not text:
            if name in self.data and not required:
                self.problem(name, "must not be empty (leave the key out instead)")
            return None
        return resolve_path(text, base_dir)


def resolve_path(text: str, base_dir: Path) -> Path:
    path = Path(text).expanduser()
    return path if path.is_absolute() else base_dir / path


# --------------------------------------------------------------------------
# Secrets
# --------------------------------------------------------------------------


def read_secret_file(path: Path) -> tuple[str | None, str | None]:
    """(secret, None) or (None, what went wrong); one trailing newline is dropped."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, f"secret file {path} does not exist"
    except IsADirectoryError:
        return None, f"secret file {path} is a directory, not a file"
    except PermissionError:
        return None, (
            f"cannot read secret file {path}: permission denied; make it readable by the "
            "user vipexsync runs as (mode 0600, owned by that user)"
        )
    except OSError as exc:
        return None, f"cannot read secret file {path}: {exc.strerror or exc}"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, f"secret file {path} is not valid UTF-8"
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text:
        return None, f"secret file {path} is empty"
    return text, None


def _inline_secret(table: Table, name: str, ctx: SecretContext) -> Secret | None:
    """An inline secret, refused when the file it sits in is readable by others."""
    value = table.data[name]
    if not isinstance(value, str):
        table.problem(name, f"expected a string, got {toml_type(value)}")
        return None
    if not value:
        table.problem(name, "must not be empty")
        return None
    if ctx.file_mode is not None and ctx.file_mode & 0o077:
        table.problem(
            name,
            f"an inline {name} is accepted only in a file that no group or other user can "
            f"read, and {ctx.source} has mode {ctx.file_mode:04o}; run `chmod 600 "
            f"{ctx.source}`, or move the secret to {name}_file",
        )
        return None
    return Secret(value)


def file_or_inline_secret(table: Table, name: str, ctx: SecretContext) -> Secret | None:
    """``name_file`` or inline ``name`` (not both); None when neither is set."""
    file_key = f"{name}_file"
    if table.has(name) and table.has(file_key):
        table.problem(name, f"set either {name} or {file_key} in {table.label}, not both")
        return None
    if table.has(name):
        return _inline_secret(table, name, ctx)
    if table.has(file_key):
        secret_path = table.path_value(file_key, ctx.base_dir)
        if secret_path is None:
            return None
        secret, error = read_secret_file(secret_path)
        if error is not None:
            table.problem(file_key, error)
            return None
        return Secret(secret or "")
    return None


# --------------------------------------------------------------------------
# Reading every declared key of a table
# --------------------------------------------------------------------------


def read_key(table: Table, key: Key, ctx: SecretContext) -> Any:
    """One key's value as its declaration says: type, range, check, conversion.

    A missing optional key yields its default; a problem is recorded and the
    default (or, after a failed check, the value as written) is returned.
    """
    before = len(table.problems)
    value = _read_typed(table, key, ctx)
    if table.has(key.name) and len(table.problems) == before:
        error = key.check(value) if key.check is not None else None
        if error:
            table.problem(key.name, error)
        elif key.convert is not None:
            value = key.convert(value)
    return value


def _read_typed(table: Table, key: Key, ctx: SecretContext) -> Any:
    name, default, required = key.name, key.default, key.required
    if key.kind == "string":
        return table.string(name, "" if required else default, required=required)
    if key.kind == "integer":
        return table.integer(
            name,
            default,
            minimum=None if key.minimum is None else int(key.minimum),
            maximum=None if key.maximum is None else int(key.maximum),
        )
    if key.kind == "number":
        return table.number(
            name, default, positive=key.positive, minimum=key.minimum, maximum=key.maximum
        )
    if key.kind == "boolean":
        return table.boolean(name, default)
    if key.kind == "choice":
        return table.choice(name, default, key.choices)
    if key.kind == "strings":
        return table.string_list(name, required=required)
    if key.kind == "path":
        return table.path_value(name, ctx.base_dir, required=required)
    if key.kind == "secret":
        return file_or_inline_secret(table, name, ctx)
    raise AssertionError(f"{key.kind} keys are read by their section's own code")


def read_settings(table: Table, cls: type[Any], ctx: SecretContext, **done: Any) -> dict[str, Any]:
    """Every declared key of ``cls`` not marked custom nor already in ``done``, read."""
    values = dict(done)
    for key in keys_of(cls):
        if key.custom or key.name in values:
            continue
        values[key.name] = read_key(table, key, ctx)
    return values
