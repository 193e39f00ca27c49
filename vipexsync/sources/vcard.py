"""vCard parsing, pure: bytes of one or more cards in, one :class:`ParsedCard` per card out.

Used by the vCard file source and the CardDAV source alike. It reads what
real exporters write, not only what the RFCs say:

- the file's encoding: UTF-8 (a byte-order mark tolerated), UTF-16 with or
  without a byte-order mark, or the configured ``encoding`` for values that
  declare no ``CHARSET``; ``CHARSET=`` (Windows-1250/1252, ISO-8859-2,
  UTF-8...) is honoured per property, on raw 8-bit values and on
  QUOTED-PRINTABLE ones (with their ``=`` soft line breaks);
- line ends ``CRLF``, ``LF``, ``CR`` and iPhone's ``CR CR LF``; folded lines;
  blank lines inside a card;
- a line inside a card that is not a property (a note whose line breaks the
  exporter did not escape) continues the property before it, noted;
- ``BEGIN:VCARD`` inside an open card ends that card (noted); lines outside
  any card are skipped (noted on the next card).

One bad value never costs more than that value: a value that cannot be
decoded is kept with U+FFFD in place of the bad bytes, and the card lists it
in ``damaged`` so the mapping rejects the card only if it maps that field.
Only a structure that says the data is incomplete (no card at all, the last
card without ``END:VCARD``) raises :class:`VcardSyntaxError`.

Keys: the ``key`` property (default ``UID``, any case). A card without it gets
a digest of its identity (FN, N, ORG and the digits of every TEL, in order):
``digest:`` and 16 hex digits. It stays the same across re-exports and
re-orderings, and changes when the contact's name or numbers change.
"""

from __future__ import annotations

import codecs
import hashlib
import quopri
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final

#: Every TYPE that makes a TEL "not a voice number" (never synced by default).
NOT_VOICE: Final = frozenset({"fax", "pager", "modem", "bbs"})
#: The key rule named in reports for cards that carry no key property.
DIGEST_RULE: Final = "digest of FN, N, ORG and numbers (card has no {key})"

_BREAK: Final = re.compile(rb"\r*\n|\r")
_PROPERTY_START: Final = re.compile(rb"^[ \t]*(?:[A-Za-z0-9-]+\.)?[A-Za-z0-9-]+[ \t]*[;:]")
_ENCODING_WORDS: Final = {"QUOTED-PRINTABLE", "QP", "BASE64", "B", "8BIT", "7BIT"}
_BINARY_PROPERTIES: Final = {"PHOTO", "LOGO", "SOUND", "KEY"}
_STRUCTURE: Final = {"BEGIN", "END", "VERSION"}
_CELL_TYPES: Final = {"cell", "mobile", "iphone"}


class VcardSyntaxError(ValueError):
    """The data is not vCard, or ends inside a card; ``line`` is 1-based (0 = none)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


@dataclass(frozen=True, slots=True)
class Tel:
    """One TEL of a card: its value as written and how the card labels it."""

    value: str
    types: frozenset[str]
    voice: bool

    @property
    def label(self) -> str:
        return "TEL" + (f";TYPE={','.join(sorted(self.types)).upper()}" if self.types else "")


@dataclass(frozen=True, slots=True)
class ParsedCard:
    """One card: its fields for the mapping's templates, and what was odd about it.

    ``index`` counts cards from 1 in the data; ``line`` is where BEGIN:VCARD
    stands. ``damaged`` maps a field name to why its value holds U+FFFD
    instead of bytes that could not be decoded. ``notes`` are the other
    repairs made while reading (a continued NOTE, skipped stray lines).
    """

    index: int
    line: int
    key: str
    key_rule: str  # "" for the configured key, else the fallback rule
    fields: Mapping[str, str]
    tels: tuple[Tel, ...] = ()
    damaged: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def fn(self) -> str:
        return self.fields.get("fn", "")


@dataclass(slots=True)
class _Property:
    name: str
    params: dict[str, list[str]]
    value: bytes
    line: int

    def types(self) -> set[str]:
        return {t.lower() for t in self.params.get("TYPE", [])}


@dataclass(slots=True)
class _Card:
    line: int
    properties: list[_Property] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ text helpers


def unescape(text: str) -> str:
    r"""Undo vCard text escapes: \n \N (newline), \, \; \\ (the character)."""
    if "\\" not in text:
        return text
    out: list[str] = []
    chars = iter(text)
    for char in chars:
        if char == "\\":
            following = next(chars, "")
            out.append("\n" if following in ("n", "N") else following)
        else:
            out.append(char)
    return "".join(out)


def _split_unquoted(text: bytes, sep: int) -> list[bytes]:
    """Split on the byte ``sep`` outside double quotes."""
    if b'"' not in text:
        return text.split(bytes([sep]))
    parts: list[bytes] = []
    start = 0
    quoted = False
    for i, char in enumerate(text):
        if char == 0x22:
            quoted = not quoted
        elif char == sep and not quoted:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
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


def _clean(value: str) -> str:
    return value.replace("\x00", "").strip()


# ------------------------------------------------------------------ file encoding


def utf16_codec(data: bytes) -> str | None:
    """``utf-16`` (BOM), ``utf-16-le``/``-be`` (no BOM, NUL pattern), or None."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    head = data[:400]
    if len(head) >= 4:
        even = head[0::2].count(0)
        odd = head[1::2].count(0)
        half = len(head) // 4
        if odd > half and even == 0:
            return "utf-16-le"
        if even > half and odd == 0:
            return "utf-16-be"
    return None


#: Encodings preferred when charset-normalizer finds several about as likely:
#: Hungarian text in cp1250 reads as well in cp1257 to a detector, but an
#: export from a Hungarian Windows is cp1250.
_PREFERRED: Final = ("utf_8", "utf_16", "cp1250", "iso8859_2", "cp1252", "latin_1")
_TOLERANCE: Final = 0.15  # how much more "chaos" a preferred candidate may show


def guess_encoding(data: bytes) -> str | None:
    """The encoding charset-normalizer finds most likely for ``data``, or None."""
    from charset_normalizer import from_bytes

    matches = list(from_bytes(data[:200_000]))
    if b"\x00" not in data:  # short 8-bit text can look like UTF-16 to a detector
        matches = [m for m in matches if not m.encoding.startswith(("utf_16", "utf_32"))]
    if not matches:
        return None
    best = min(m.chaos for m in matches)
    for preferred in _PREFERRED:
        for match in matches:
            if match.chaos <= best + _TOLERANCE and preferred in match.could_be_from_charset:
                return preferred
    return str(matches[0].encoding)


def physical_lines(data: bytes) -> list[bytes]:
    """The data's lines, any of CRLF, LF, CR or CR CR LF ending one."""
    return _BREAK.split(data)


def logical_lines(data: bytes) -> Iterator[tuple[int, bytes, str | None]]:
    """Unfold lines: (first physical line number, content line, a repair note or None).

    A line starting with a space or tab continues the line before it; so does
    any line after a quoted-printable value that ends in ``=`` (a soft line
    break). Blank lines are skipped. A line that does not start like a
    property continues the line before it, with a newline, and the note says
    so (a NOTE whose line breaks were not escaped).
    """
    current: bytes | None = None
    start = 0
    note: str | None = None
    for number, line in enumerate(physical_lines(data), start=1):
        if not line.strip():
            continue
        if current is not None:
            if current.endswith(b"=") and _is_quoted_printable(current):
                current = current[:-1] + line
                continue
            if line[:1] in (b" ", b"\t"):
                current += line[1:]
                continue
            if not _PROPERTY_START.match(line) and not _is_structure(current):
                current += b"\\n" + line
                note = note or (
                    f"line {number} is not a property; read as more of the value at line {start}"
                )
                continue
            yield start, current, note
        current, start, note = line, number, None
    if current is not None:
        yield start, current, note


def _is_quoted_printable(line: bytes) -> bool:
    head = _split_unquoted(line, 0x3A)[0].upper()
    return b"QUOTED-PRINTABLE" in head or b"ENCODING=QP" in head


def _is_structure(line: bytes) -> bool:
    return line.strip().upper() in (b"BEGIN:VCARD", b"END:VCARD")


# ------------------------------------------------------------------ parsing


def parse_vcards(
    data: bytes,
    *,
    origin: str,
    encoding: str = "utf-8",
    key: str = "UID",
    decoded: bool = False,
) -> Iterator[ParsedCard]:
    """Parse every card in ``data``; raise :class:`VcardSyntaxError` if it is no
    vCard or ends inside a card (so nothing read from it can be trusted whole).

    ``encoding`` decodes values that declare no CHARSET and are not valid
    UTF-8 (valid UTF-8 is always read as UTF-8); UTF-16 data is
    recognised by itself and its CHARSET parameters are ignored (the text is
    already decoded). ``origin`` names the data in notes (a file, a URL).
    ``decoded`` says that a transport already decoded the text and ``data``
    is its UTF-8 (a CardDAV server's address-data): there too a CHARSET
    applies only to the bytes a QUOTED-PRINTABLE value encodes.
    """
    codec = utf16_codec(data)
    if codec is not None:
        try:
            data = data.decode(codec).lstrip("\ufeff").encode("utf-8")
        except UnicodeDecodeError as exc:
            raise VcardSyntaxError(
                0, f"{origin} looks like UTF-16 but does not decode as {codec} ({exc.reason})"
            ) from None
        encoding, honour_charset = "utf-8", False
    else:
        if data.startswith(codecs.BOM_UTF8):
            data = data[len(codecs.BOM_UTF8) :]
        honour_charset = not decoded
        if decoded:
            encoding = "utf-8"
    decoder = _Decoder(data, encoding, honour_charset)
    for index, card in enumerate(_cards(data), start=1):
        yield _build(card, index, decoder, key)


def _cards(data: bytes) -> Iterator[_Card]:
    card: _Card | None = None
    stray: list[int] = []
    seen_any = False
    for number, line, note in logical_lines(data):
        upper = line.strip().upper()
        if upper == b"BEGIN:VCARD":
            if card is not None:
                card.notes.append(
                    f"has no END:VCARD; it was ended by the BEGIN:VCARD at line {number}"
                )
                yield card
            card = _Card(line=number)
            seen_any = True
            if stray:
                card.notes.append(_stray_note(stray))
                stray = []
        elif upper == b"END:VCARD":
            if card is None:
                stray.append(number)
                continue
            yield card
            card = None
        elif card is None:
            stray.append(number)
        else:
            prop = _parse_property(line, number)
            if prop is None:
                card.notes.append(f"line {number} is not NAME:VALUE and was skipped")
                continue
            if note:
                card.notes.append(note)
            card.properties.append(prop)
    if card is not None:
        raise VcardSyntaxError(
            card.line,
            "the card that starts here has no END:VCARD (the data is cut short?)",
        )
    if not seen_any:
        raise VcardSyntaxError(
            stray[0] if stray else 0, "no BEGIN:VCARD found, so this is not vCard data"
        )


def _stray_note(lines: list[int]) -> str:
    shown = ", ".join(str(n) for n in lines[:5]) + (", ..." if len(lines) > 5 else "")
    return f"line(s) {shown} before this card stand outside any card and were skipped"


def _parse_property(line: bytes, number: int) -> _Property | None:
    """Split ``[group.]NAME;PARAMS:VALUE``; None if the line has no colon."""
    pieces = _split_unquoted(line, 0x3A)
    if len(pieces) < 2:
        return None
    head = pieces[0].decode("latin-1")
    value = line[len(pieces[0]) + 1 :]
    name_and_params = head.split(";") if '"' not in head else _split_head(head)
    name = name_and_params[0].rsplit(".", 1)[-1].strip().upper()
    params: dict[str, list[str]] = {}
    for raw in name_and_params[1:]:
        pname, eq, pvalue = raw.partition("=")
        if not eq:  # 2.1 style: a bare TYPE or ENCODING word
            pname, pvalue = (
                ("ENCODING", raw) if raw.strip().upper() in _ENCODING_WORDS else ("TYPE", raw)
            )
        values = [v.strip().strip('"').strip() for v in pvalue.split(",")]
        params.setdefault(pname.strip().upper(), []).extend(v for v in values if v)
    return _Property(name=name, params=params, value=value, line=number)


def _split_head(head: str) -> list[str]:
    return [p.decode("latin-1") for p in _split_unquoted(head.encode("latin-1"), 0x3B)]


class _Decoder:
    """Turns property values into text, remembering the file for advice."""

    def __init__(self, data: bytes, encoding: str, honour_charset: bool) -> None:
        self.data = data
        self.encoding = encoding
        self.honour_charset = honour_charset
        self._guess: str | bool | None = False

    def likely(self) -> str | None:
        """The likely encoding of the lines that do not decode (not of the whole
        file: an export that is UTF-8 but for a few values is judged by those)."""
        if self._guess is False:
            bad = []
            for line in physical_lines(self.data):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError:
                    bad.append(line)
            self._guess = guess_encoding(b"\n".join(bad)) if bad else None
        return self._guess if isinstance(self._guess, str) else None

    def text(self, prop: _Property) -> tuple[str, str | None]:
        """(the value still vCard-escaped, why it was damaged or None)."""
        raw = prop.value
        encodings = {e.upper() for e in prop.params.get("ENCODING", [])}
        quoted = bool(encodings & {"QUOTED-PRINTABLE", "QP"})
        if quoted:
            raw = quopri.decodestring(raw)
        # Decoded text (UTF-16, CardDAV) keeps a CHARSET that no longer fits its
        # raw values (Radicale serves "FN;CHARSET=windows-1250:" in UTF-8); the
        # bytes a quoted-printable value encodes are still in that CHARSET.
        honour = self.honour_charset or quoted
        charset = (prop.params.get("CHARSET") or [""])[0] if honour else ""
        codec = self.encoding
        unknown = ""
        if charset:
            try:
                codec = codecs.lookup(charset).name
            except LookupError:
                unknown = f"unknown CHARSET {charset!r}, read as {self.encoding}; "
        if raw.isascii():
            return raw.decode("ascii"), None
        if not charset or unknown:
            # No declared charset: valid UTF-8 is UTF-8 (8-bit text almost never
            # is), so a folder mixing UTF-8 and cp1250 exports reads right.
            try:
                return raw.decode("utf-8"), None
            except UnicodeDecodeError:
                pass
        try:
            return raw.decode(codec), None
        except UnicodeDecodeError as exc:
            where = f"{prop.name} at line {prop.line}"
            declared = f"its CHARSET={charset}" if charset and not unknown else codec
            likely = self.likely()
            advice = "; export the contacts again as UTF-8"
            if likely and not charset and codecs.lookup(likely).name != codecs.lookup(codec).name:
                advice = (
                    f"; the data looks like {likely}: set the source's `encoding` key to "
                    f"{likely!r} or export as UTF-8"
                )
            return raw.decode(codec, errors="replace"), (
                f"{unknown}{where} is not valid {declared} ({exc.reason}); "
                f"undecodable bytes replaced{advice}"
            )


def _build(card: _Card, index: int, decoder: _Decoder, key: str) -> ParsedCard:
    fields: dict[str, str] = {}
    damaged: dict[str, str] = {}
    tels: list[Tel] = []

    def put(name: str, value: str) -> None:
        if name not in fields:
            fields[name] = _clean(value)

    for prop in card.properties:
        name = prop.name
        if name in _STRUCTURE or name in _BINARY_PROPERTIES or not name:
            continue
        encoding = {e.upper() for e in prop.params.get("ENCODING", [])}
        if encoding & {"B", "BASE64"}:
            continue
        raw, why = decoder.text(prop)
        targets: list[str] = []
        if name == "TEL":
            number = _clean(unescape(raw))
            if number.lower().startswith("tel:"):
                number = number[4:].strip()
            if not number:
                continue
            types = frozenset(prop.types())
            voice = not (types & NOT_VOICE)
            tels.append(Tel(value=number, types=types, voice=voice))
            tel_name = f"tel{len(tels)}"
            fields[tel_name] = number
            targets.append(tel_name)
            if voice:
                targets.append("tel_voice")
                for type_name, wanted in (("work", {"work"}), ("home", {"home"})):
                    if types & wanted:
                        targets.append(f"tel_{type_name}")
                        put(f"tel_{type_name}", number)
                if types & _CELL_TYPES:
                    targets.append("tel_cell")
                    put("tel_cell", number)
            elif "fax" in types:
                targets.append("tel_fax")
                put("tel_fax", number)
        elif name == "N":
            if "n" in fields:
                continue
            parts = [
                _clean(" ".join(unescape(x).replace(",", " ").split()))
                for x in _split_escaped(raw, ";")
            ] + [""] * 5
            family, given, additional, prefix, suffix = parts[:5]
            put("n", " ".join(p for p in (prefix, family, given, additional, suffix) if p))
            put("last_name", family)
            put("first_name", given)
            put("name_prefix", prefix)
            put("name_suffix", suffix)
            targets += ["n", "last_name", "first_name", "name_prefix", "name_suffix"]
        elif name == "ORG":
            if "org" in fields:
                continue
            units = [_clean(unescape(x)) for x in _split_escaped(raw, ";")]
            put("org", units[0])
            put("org_full", " / ".join(u for u in units if u))
            targets += ["org", "org_full"]
        elif name == "ADR":
            parts = [_clean(unescape(x)) for x in _split_escaped(raw, ";")]
            put("adr", ", ".join(p for p in parts if p))
            targets.append("adr")
        elif name == "CATEGORIES":
            found = [_clean(unescape(x)) for x in _split_escaped(raw, ",")]
            joined = ", ".join(c for c in found if c)
            if joined:
                previous = fields.get("categories", "")
                fields["categories"] = f"{previous}, {joined}" if previous else joined
            targets.append("categories")
        else:
            put(name.lower(), unescape(raw))
            targets.append(name.lower())
        if why is not None:
            for target in targets:
                damaged.setdefault(target, why)
    voice_numbers = [t.value for t in tels if t.voice]
    if voice_numbers:
        fields["tel_voice"] = "\n".join(voice_numbers)
    card_key, rule = _key(fields, tels, key)
    if card_key and key.lower() in damaged:
        damaged.setdefault("key", damaged[key.lower()])
    return ParsedCard(
        index=index,
        line=card.line,
        key=card_key,
        key_rule=rule,
        fields=fields,
        tels=tuple(tels),
        damaged=damaged,
        notes=tuple(card.notes),
    )


def _key(fields: Mapping[str, str], tels: list[Tel], key: str) -> tuple[str, str]:
    wanted = key.lower()
    value = next((v for k, v in fields.items() if k.lower() == wanted and v), "")
    if value:
        return value, ""  # the configured key
    identity = [fields.get("fn", ""), fields.get("n", ""), fields.get("org", "")]
    identity += ["".join(c for c in t.value if c.isdigit()) for t in tels]
    if not any(identity):
        return "", DIGEST_RULE.format(key=key.upper())
    digest = hashlib.sha256("\x1f".join(identity).encode("utf-8")).hexdigest()[:16]
    return f"digest:{digest}", DIGEST_RULE.format(key=key.upper())
