"""The one template grammar: what ``check`` accepts is exactly what a run renders.

A template is literal text with placeholders:

- ``{field}`` is the source field's value; a missing or empty field renders
  as ``""``;
- ``{a|b|c}`` is the first of the fields that is not empty (after trimming),
  e.g. ``{fn|n|org}`` names a company-only contact by its organisation;
- ``{{`` and ``}}`` are literal braces.

A field name is any text without braces or ``|``: spaces inside a name and
dots are part of it (``{first name}``, ``{address.city}``). Refused, because
they look like Python format features that would silently render empty:
an empty placeholder, surrounding spaces (``{ name }``), ``!`` conversions,
``:`` format specs and ``[...]`` index access. After rendering, control
characters are dropped and runs of whitespace collapse to one space.

Config validation (:func:`template_problem`) and the mapping
(:func:`parse_template`) both use this module; nothing else parses templates.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

__all__ = [
    "Template",
    "TemplateSyntaxError",
    "clean_text",
    "parse_template",
    "render_template",
    "template_problem",
]

# Control characters that str.split() does not already treat as whitespace.
_CONTROL: Final = re.compile(r"[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f]")


def clean_text(value: str) -> str:
    """Drop control characters, collapse whitespace runs to one space, strip.

    Whitespace control characters (tab, newline) become spaces, so
    ``"a\\nb"`` is ``"a b"``, while ``"a\\x00b"`` is ``"ab"``.
    """
    if not value.isprintable():
        value = _CONTROL.sub("", value)
    return " ".join(value.split())


class TemplateSyntaxError(ValueError):
    """A template the grammar above refuses; the message says why and what to write."""


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed template: literal text and placeholders, alternating.

    ``parts[0]``, ``parts[2]``, ... are literals; ``parts[1]``, ``parts[3]``,
    ... are placeholders as written (``a|b``). ``choices`` holds each
    placeholder's field names. ``fmt`` is the same as a ``str.format`` string
    with positional placeholders, which renders fastest.
    """

    source: str
    parts: tuple[str, ...]
    fmt: str = ""
    choices: tuple[tuple[str, ...], ...] = ()

    @property
    def fields(self) -> tuple[str, ...]:
        """Every field name the template reads, in order."""
        return tuple(name for names in self.choices for name in names)

    @property
    def literal(self) -> str:
        """The template's literal text (what is not a placeholder)."""
        return "".join(self.parts[0::2])

    def render(self, fields: Mapping[str, str]) -> str:
        """Fill the placeholders; a missing or empty field renders as ``""``."""
        parts = self.parts
        get = fields.get
        if len(parts) == 3 and not parts[0] and not parts[2] and len(self.choices[0]) == 1:
            value = get(parts[1])
            return clean_text(value if isinstance(value, str) else str(value or ""))
        if len(parts) == 1:
            return clean_text(parts[0])
        values = []
        for names in self.choices:
            if len(names) == 1:
                values.append(get(names[0]) or "")
                continue
            chosen = ""
            for name in names:
                value = get(name)
                if value and clean_text(value):
                    chosen = value
                    break
            values.append(chosen)
        return clean_text(self.fmt.format(*values))


def _format_string(parts: tuple[str, ...]) -> str:
    out = []
    for i, part in enumerate(parts):
        if i % 2 == 0:
            out.append(part.replace("{", "{{").replace("}", "}}"))
        else:
            out.append(f"{{{i // 2}}}")
    return "".join(out)


def _name_problem(template: str, name: str) -> str | None:
    if not name.strip():
        return (
            f"template {template!r} has an empty placeholder; name a source field, "
            "like {name}, or give alternatives, like {fn|org}"
        )
    if name != name.strip():
        return f"template {template!r}: remove the spaces around {{{name.strip()}}}"
    if "!" in name:
        return (
            f"template {template!r}: {{{name}}} uses a conversion, which templates do "
            f"not support; write {{{name.split('!')[0]}}}"
        )
    if ":" in name:
        return (
            f"template {template!r}: {{{name}}} uses a format spec, which templates do "
            f"not support; write {{{name.split(':')[0]}}}"
        )
    if "[" in name or "]" in name:
        return (
            f"template {template!r}: {{{name}}} uses index access, which templates do "
            "not support; use the plain field name"
        )
    return None


@lru_cache(maxsize=1024)
def parse_template(template: str) -> Template:
    """Parse a template; raise :class:`TemplateSyntaxError` if the grammar refuses it."""
    parts: list[str] = []
    choices: list[tuple[str, ...]] = []
    literal: list[str] = []
    i, n = 0, len(template)
    while i < n:
        c = template[i]
        if c == "{":
            if template.startswith("{{", i):
                literal.append("{")
                i += 2
                continue
            end = template.find("}", i + 1)
            inner = template[i + 1 : end] if end >= 0 else template[i + 1 :]
            if "{" in inner and ":" in inner.split("{")[0]:
                raise TemplateSyntaxError(_name_problem(template, inner.split("{")[0]))
            if end < 0 or "{" in inner:
                raise TemplateSyntaxError(
                    f"template {template!r}: '{{' at position {i} is never closed, so it "
                    "does not parse (write '{{' for a literal brace)"
                )
            names = tuple(inner.split("|"))
            for name in names:
                problem = _name_problem(template, name)
                if problem:
                    raise TemplateSyntaxError(problem)
            parts.append("".join(literal))
            parts.append(inner)
            choices.append(names)
            literal = []
            i = end + 1
        elif c == "}":
            if template.startswith("}}", i):
                literal.append("}")
                i += 2
                continue
            raise TemplateSyntaxError(
                f"template {template!r}: '}}' at position {i} has no opening '{{', so it "
                "does not parse (write '}}' for a literal brace)"
            )
        else:
            literal.append(c)
            i += 1
    parts.append("".join(literal))
    frozen = tuple(parts)
    return Template(
        source=template, parts=frozen, fmt=_format_string(frozen), choices=tuple(choices)
    )


def render_template(template: str, fields: Mapping[str, str]) -> str:
    """Render ``template`` over ``fields``; raise :class:`TemplateSyntaxError` if malformed."""
    return parse_template(template).render(fields)


def template_problem(template: str) -> str | None:
    """Why the grammar refuses ``template``, or None if it is valid."""
    try:
        parse_template(template)
    except TemplateSyntaxError as exc:
        return str(exc)
    return None
