"""vCard source: contacts exported as ``.vcf`` (vCard 2.1, 3.0 and 4.0).

Config keys (``[jobs.source]`` with ``type = "vcard"``):

``path``
    A ``.vcf`` file, or a folder whose ``*.vcf`` files (any case, not in
    subfolders) are read in name order.
``key`` (default ``"UID"``)
    The property (matched case-insensitively against the field names below)
    that holds the stable record id. A card without it gets key "" and is
    rejected by the mapping with a reason.

Fields of each card, for the mapping's templates:

* ``tel1``, ``tel2``, ... every TEL in order; ``tel_work``, ``tel_cell``,
  ``tel_home``, ``tel_fax`` the first TEL of that TYPE (a fax or pager number
  never counts as work/home/cell). ``tel:`` URIs are reduced to the number.
* ``fn``; ``n`` (N in Hungarian order: prefix, family, given, additional,
  suffix), ``last_name``, ``first_name``, ``name_prefix``, ``name_suffix``.
* ``org`` (first ORG component), ``org_full`` (all components joined " / "),
  ``title``, ``email`` (first EMAIL), ``note``, ``categories`` (", "-joined),
  ``adr`` (first ADR, components joined ", "), ``uid``.
* any other text property under its lower-case name (``x-crm-id``...).

Line folding, backslash escapes, QUOTED-PRINTABLE with CHARSET and the TYPE
parameter in its 2.1, 3.0 and 4.0 spellings are understood. Files must be
UTF-8 (a byte-order mark is tolerated); anything else, a file that is not a
vCard, or a card without END:VCARD stops the read with an error naming the
file and line.
"""

from __future__ import annotations

import quopri
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from vipexsync.config import VcardSourceConfig
from vipexsync.errors import SourceError
from vipexsync.sources.base import SourceRecord, clean_value

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_ENCODING_WORDS = {"QUOTED-PRINTABLE", "QP", "BASE64", "B", "8BIT", "7BIT"}
_BINARY_PROPERTIES = {"PHOTO", "LOGO", "SOUND", "KEY"}
_STRUCTURE = {"BEGIN", "END", "VERSION"}
_CELL_TYPES = {"cell", "mobile", "iphone"}
_NOT_VOICE = {"fax", "pager"}


@dataclass(slots=True)
class _Property:
    name: str
    params: dict[str, list[str]]
    value: str
    line: int

    def types(self) -> set[str]:
        return {t.lower() for t in self.params.get("TYPE", [])}


@dataclass(slots=True)
class _Card:
    line: int
    properties: list[_Property] = field(default_factory=list)


def _split_unquoted(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside double quotes."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
            current.append(char)
        elif char == sep and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _split_escaped(text: str, sep: str) -> list[str]:
    """Split on ``sep`` not preceded by a backslash escape; escapes kept."""
    parts: list[str] = []
    current: list[str] = []
    chars = iter(text)
    for char in chars:
        if char == "\\":
            current.append(char)
            current.append(next(chars, ""))
        elif char == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def unescape(text: str) -> str:
    r"""Undo vCard text escapes: \n \N (newline), \, \; \\ (the character)."""
    out: list[str] = []
    chars = iter(text)
    for char in chars:
        if char == "\\":
            following = next(chars, "")
            out.append("\n" if following in ("n", "N") else following)
        else:
            out.append(char)
    return "".join(out)


def _is_quoted_printable(head: str) -> bool:
    return "QUOTED-PRINTABLE" in head.upper() or "ENCODING=QP" in head.upper()


def logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Unfold physical lines into (first physical line number, content line)."""
    current: str | None = None
    start = 0
    for number, line in enumerate(_LINE_BREAK.split(text), start=1):
        if current is not None:
            head = _split_unquoted(current, ":")[0]
            if current.endswith("=") and _is_quoted_printable(head):
                current = current[:-1] + line  # a quoted-printable soft line break
                continue
            if line[:1] in (" ", "\t"):
                current += line[1:]  # a folded line
                continue
            yield start, current
            current = None
        if line.strip():
            current, start = line, number
    if current is not None:
        yield start, current


class VcardSource:
    """Streams the cards of a .vcf file or a folder of them."""

    def __init__(self, cfg: VcardSourceConfig) -> None:
        self._cfg = cfg
        self.description = f"vcard {'folder' if Path(cfg.path).is_dir() else 'file'} {cfg.path}"

    def _files(self) -> list[tuple[Path, str]]:
        path = Path(self._cfg.path)
        if path.is_dir():
            try:
                files = sorted(
                    p for p in path.iterdir() if p.suffix.lower() == ".vcf" and p.is_file()
                )
            except OSError as exc:
                raise SourceError(
                    f"{self.description}: cannot list the folder ({exc.strerror or exc}); "
                    "check the source's `path` and its permissions"
                ) from None
            if not files:
                raise SourceError(
                    f"{self.description}: the folder holds no .vcf files; check the source's "
                    "`path` (is the export mounted?)"
                )
            return [(p, f"{path.name}/{p.name}") for p in files]
        return [(path, path.name)]

    def read(self) -> Iterator[SourceRecord]:
        for path, label in self._files():
            yield from self._read_file(path, label)

    def _fail(self, label: str, line: int, detail: str, advice: str) -> SourceError:
        where = f"{label} line {line}" if line else label
        return SourceError(f"{self.description}: {where}: {detail}; {advice}")

    def _read_file(self, path: Path, label: str) -> Iterator[SourceRecord]:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SourceError(
                f"{self.description}: cannot read {path} ({exc.strerror or exc}); "
                "check the source's `path` and the file's permissions"
            ) from None
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            offset = exc.start + (3 if data.startswith(b"\xef\xbb\xbf") else 0)
            raise self._fail(
                label,
                data[:offset].count(b"\n") + 1,
                f"not valid UTF-8 ({exc.reason})",
                "export the contacts as UTF-8 vCard",
            ) from None
        cards = list(self._cards(text, label))
        if not cards:
            raise self._fail(
                label,
                0,
                "no BEGIN:VCARD found, so this is not a vCard file",
                "check the source's `path`",
            )
        for number, card in enumerate(cards, start=1):
            fields = self._fields(card, label)
            key_name = self._cfg.key.lower()
            key = next((v for k, v in fields.items() if k.lower() == key_name), "")
            yield SourceRecord(
                key=key, fields=fields, locator=f"{label} card {number} (line {card.line})"
            )

    def _cards(self, text: str, label: str) -> Iterator[_Card]:
        card: _Card | None = None
        for number, line in logical_lines(text):
            prop = self._parse(line, number, label)
            if prop.name == "BEGIN" and prop.value.strip().upper() == "VCARD":
                if card is not None:
                    raise self._fail(
                        label,
                        number,
                        f"BEGIN:VCARD inside the card that starts at line {card.line}",
                        "that card lacks END:VCARD; repair or export the file again",
                    )
                card = _Card(line=number)
            elif prop.name == "END" and prop.value.strip().upper() == "VCARD":
                if card is None:
                    raise self._fail(
                        label,
                        number,
                        "END:VCARD without BEGIN:VCARD",
                        "repair or export the file again",
                    )
                yield card
                card = None
            elif card is None:
                raise self._fail(
                    label,
                    number,
                    f"{prop.name} outside BEGIN:VCARD ... END:VCARD",
                    "this is not a well-formed vCard file; check the source's `path`",
                )
            else:
                card.properties.append(prop)
        if card is not None:
            raise self._fail(
                label,
                card.line,
                "the card that starts here has no END:VCARD (file cut short?)",
                "export the file again; nothing is deleted until it reads completely",
            )

    def _parse(self, line: str, number: int, label: str) -> _Property:
        """Split ``[group.]NAME;PARAMS:VALUE``."""
        pieces = _split_unquoted(line, ":")
        if len(pieces) < 2:
            raise self._fail(
                label,
                number,
                f"line {line[:40]!r} is not NAME:VALUE",
                "repair the file (a folded line must start with a space)",
            )
        head, value = pieces[0], ":".join(pieces[1:])
        name_and_params = _split_unquoted(head, ";")
        name = name_and_params[0].rsplit(".", 1)[-1].strip().upper()
        params: dict[str, list[str]] = {}
        for raw in name_and_params[1:]:
            pname, eq, pvalue = raw.partition("=")
            if not eq:  # 2.1 style: a bare TYPE or ENCODING word
                pname, pvalue = (
                    ("ENCODING", raw) if raw.strip().upper() in _ENCODING_WORDS else ("TYPE", raw)
                )
            values: list[str] = []
            for v in _split_unquoted(pvalue, ","):
                values.extend(x.strip() for x in v.strip().strip('"').split(","))
            params.setdefault(pname.strip().upper(), []).extend(x for x in values if x)
        return _Property(name=name, params=params, value=value, line=number)

    def _decode(self, prop: _Property, label: str) -> str:
        """The raw value after transfer decoding (quoted-printable), still escaped."""
        encoding = {e.upper() for e in prop.params.get("ENCODING", [])}
        if not encoding & {"QUOTED-PRINTABLE", "QP"}:
            return prop.value
        charset = (prop.params.get("CHARSET") or ["utf-8"])[0]
        raw = quopri.decodestring(prop.value.encode("utf-8"))
        try:
            return raw.decode(charset)
        except LookupError:
            raise self._fail(
                label,
                prop.line,
                f"unknown CHARSET {charset!r}",
                "export the contacts again as UTF-8 vCard",
            ) from None
        except UnicodeDecodeError:
            raise self._fail(
                label,
                prop.line,
                f"the quoted-printable {prop.name} value is not {charset}",
                "export the contacts again as UTF-8 vCard",
            ) from None

    def _fields(self, card: _Card, label: str) -> dict[str, str]:
        fields: dict[str, str] = {}
        tel_count = 0

        def put(name: str, value: str) -> None:
            if name not in fields:
                fields[name] = clean_value(value)

        for prop in card.properties:
            name = prop.name
            if name in _STRUCTURE or name in _BINARY_PROPERTIES:
                continue
            encoding = {e.upper() for e in prop.params.get("ENCODING", [])}
            if encoding & {"B", "BASE64"}:
                continue
            raw = self._decode(prop, label)
            if name == "TEL":
                number = clean_value(unescape(raw))
                if number.lower().startswith("tel:"):
                    number = number[4:].strip()
                if not number:
                    continue
                tel_count += 1
                fields[f"tel{tel_count}"] = number
                types = prop.types()
                if types & _NOT_VOICE:
                    if "fax" in types:
                        put("tel_fax", number)
                    continue
                if "work" in types:
                    put("tel_work", number)
                if "home" in types:
                    put("tel_home", number)
                if types & _CELL_TYPES:
                    put("tel_cell", number)
            elif name == "N":
                if "n" in fields:
                    continue
                parts = [
                    clean_value(" ".join(unescape(x).replace(",", " ").split()))
                    for x in _split_escaped(raw, ";")
                ] + [""] * 5
                family, given, additional, prefix, suffix = parts[:5]
                put("n", " ".join(p for p in (prefix, family, given, additional, suffix) if p))
                put("last_name", family)
                put("first_name", given)
                put("name_prefix", prefix)
                put("name_suffix", suffix)
            elif name == "ORG":
                if "org" in fields:
                    continue
                units = [clean_value(unescape(x)) for x in _split_escaped(raw, ";")]
                put("org", units[0])
                put("org_full", " / ".join(u for u in units if u))
            elif name == "ADR":
                parts = [clean_value(unescape(x)) for x in _split_escaped(raw, ";")]
                put("adr", ", ".join(p for p in parts if p))
            elif name == "CATEGORIES":
                found = [clean_value(unescape(x)) for x in _split_escaped(raw, ",")]
                joined = ", ".join(c for c in found if c)
                if joined:
                    previous = fields.get("categories", "")
                    fields["categories"] = f"{previous}, {joined}" if previous else joined
            else:
                put(name.lower(), unescape(raw))
        return fields
