"""vCard source: contacts exported as ``.vcf`` (vCard 2.1, 3.0 and 4.0).

Config keys (``[jobs.source]`` with ``type = "vcard"``):

``path``
    A ``.vcf`` file, or a folder whose ``*.vcf`` files (any case, not in
    subfolders) are read in name order.
``key`` (default ``"UID"``)
    The property (matched case-insensitively against the field names below)
    that holds the stable record id. A card without it gets a digest of its
    FN, N, ORG and the digits of its numbers (``digest:...``): stable across
    re-exports, but it changes when the contact's name or numbers change, and
    cards that agree in all of those share it (the later ones get ``~2``,
    ``~3``... in file order). The report counts the cards of each key rule.
``encoding`` (default ``"utf-8"``)
    How values that declare no ``CHARSET`` and are not valid UTF-8 are decoded
    (an Outlook export without charsets: ``"cp1250"``); valid UTF-8 is always
    read as UTF-8, so a folder may mix both. UTF-16 files are recognised.

Fields of each card, for the mapping's templates:

* ``tel_voice`` every voice number (TEL without FAX, PAGER, MODEM or BBS
  type), one per line: the default phone field, each line its own entry.
* ``tel1``, ``tel2``, ... every TEL in order; ``tel_work``, ``tel_cell``,
  ``tel_home``, ``tel_fax`` the first TEL of that TYPE (a fax or pager number
  never counts as work/home/cell). ``tel:`` URIs are reduced to the number.
* ``fn``; ``n`` (N in Hungarian order: prefix, family, given, additional,
  suffix), ``last_name``, ``first_name``, ``name_prefix``, ``name_suffix``.
* ``org`` (first ORG component), ``org_full`` (all components joined " / "),
  ``title``, ``email`` (first EMAIL), ``note``, ``categories`` (", "-joined),
  ``adr`` (first ADR, components joined ", "), ``uid``.
* any other text property under its lower-case name (``x-crm-id``...).

Parsing is :func:`vipexsync.sources.vcard.parse_vcards`: a value that cannot
be decoded costs that value (or the card, if the mapping uses it), never the
file. A file that cannot be read, holds no card, or ends inside a card stops
the read, naming the file and line; in a folder, that file alone is skipped
and reported (``unreadable_file``), the others are synced, and the run deletes
nothing (exit 3): nothing is deleted on a partial read.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from vipexsync.config import VcardSourceConfig
from vipexsync.errors import SourceError
from vipexsync.sources.base import SourceRecord
from vipexsync.sources.vcard import ParsedCard, VcardSyntaxError, parse_vcards, unescape

__all__ = ["VcardSource", "card_record", "unescape"]


def card_record(card: ParsedCard, origin: str, key: str | None = None) -> SourceRecord:
    """The source record of one parsed card; ``origin`` names its file or URL."""
    fn = card.fn
    where = f"{origin} card {card.index} (line {card.line}" + (f", {fn!r})" if fn else ")")
    return SourceRecord(
        key=card.key if key is None else key,
        fields=card.fields,
        locator=where,
        key_rule=card.key_rule,
        damaged=tuple(card.damaged.items()),
        notes=card.notes,
        numbers=tuple((t.label, t.value) for t in card.tels),
    )


class _FileError(SourceError):
    """One file failed; ``detail`` says why without the source's description."""

    def __init__(self, message: str, detail: str) -> None:
        super().__init__(message)
        self.detail = detail


class VcardSource:
    """Streams the cards of a .vcf file or a folder of them."""

    def __init__(self, cfg: VcardSourceConfig) -> None:
        self._cfg = cfg
        self.description = f"vcard {'folder' if Path(cfg.path).is_dir() else 'file'} {cfg.path}"

    def files(self) -> list[tuple[Path, str]]:
        """The files read, in reading order, each with its label."""
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
        seen: dict[str, int] = {}  # digest keys handed out, for ~2, ~3...
        folder = Path(self._cfg.path).is_dir()
        for path, label in self.files():
            if not folder:
                yield from self._records(self._read_file(path, label), label, seen)
                continue
            try:
                cards = list(self._read_file(path, label))
            except SourceError as exc:
                # One bad file of a folder never stops the others; the run then
                # deletes nothing (the file's contacts may be among the "missing").
                detail = exc.detail if isinstance(exc, _FileError) else str(exc)
                yield SourceRecord(key="", fields={}, locator=label, unreadable=detail)
                continue
            yield from self._records(iter(cards), label, seen)

    def _records(
        self, cards: Iterator[ParsedCard], label: str, seen: dict[str, int]
    ) -> Iterator[SourceRecord]:
        for card in cards:
            key = card.key
            if key.startswith("digest:"):
                count = seen.get(key, 0) + 1
                seen[key] = count
                if count > 1:
                    key = f"{key}~{count}"
            yield card_record(card, label, key)

    def _read_file(self, path: Path, label: str) -> Iterator[ParsedCard]:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise _FileError(
                f"{self.description}: cannot read {path} ({exc.strerror or exc}); "
                "check the source's `path` and the file's permissions",
                f"cannot read the file ({exc.strerror or exc})",
            ) from None
        try:
            yield from parse_vcards(
                data, origin=label, encoding=self._cfg.encoding, key=self._cfg.key
            )
        except VcardSyntaxError as exc:
            where = f"{label} line {exc.line}" if exc.line else label
            advice = (
                "check the source's `path`"
                if "not vCard" in exc.message
                else "export the file again; nothing is deleted until it reads completely"
            )
            raise _FileError(
                f"{self.description}: {where}: {exc.message}; {advice}",
                f"line {exc.line}: {exc.message}" if exc.line else exc.message,
            ) from None
