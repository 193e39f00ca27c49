"""CSV file source: one record per row, the header row names the fields.

Config keys (``[jobs.source]`` with ``type = "csv"``):

``path``
    The CSV file; relative paths are relative to the config file.
``key``
    The header of the column that holds the CRM's stable record id, or a list
    of headers whose values together identify a record (a composite key, for
    exports without an id column: ``["First Name", "Last Name", "Company"]``);
    each must exist in the header row. Left out, a record's key is a digest of
    the whole row (``row:`` and 16 hex digits): stable across re-exports and
    re-ordering, but new whenever any cell of the row changes (its entries are
    then rewritten, not lost); identical rows get ``~2``, ``~3``... Never use
    a row-number column: it changes on every re-export (the source warns when
    every key equals its row number).
``encoding`` (default ``"utf-8"``)
    Text encoding; a UTF-8 byte-order mark is tolerated. A Hungarian Excel
    export ("CSV (pontosvesszővel tagolt)") needs ``encoding = "cp1250"``
    and ``delimiter = ";"``.
``delimiter`` (default ``","``)
    The one-character field separator (``";"`` for Excel in Hungarian locale,
    ``"\\t"`` for tab-separated exports).

A cell may hold several numbers (Google's `` ::: ``, line breaks, or ``,``,
``;``, ``/`` between full numbers): the mapping makes each its own entry.

A row with fewer fields than the header is that record's rejection, never
padding: it is yielded with its key (when the key's columns are there) and a
``problem``, so the mapping rejects it and the entries last written for it are
kept. But a file that ends without a line ending and holds a short row (most
often its last one) is a file caught mid-write: the read fails (SourceError
naming the file and the line) and the run deletes nothing. A row with more
non-empty fields than the header means the file is malformed and stops the
read. Blank rows are skipped. A row whose key cell is empty is yielded with
key "" (the mapping rejects it).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from vipexsync.config import CsvSourceConfig
from vipexsync.errors import SourceError
from vipexsync.sources.base import SourceRecord, clean_value
from vipexsync.sources.vcard import guess_encoding, utf16_codec

log = logging.getLogger("vipexsync.source")
ROW_DIGEST_RULE = "digest of the row (no key configured)"

#: Largest single field accepted; a bigger one (often a runaway quote) is an error.
FIELD_SIZE_LIMIT = 1024 * 1024


def _python_encoding(encoding: str) -> str:
    """The codec to open the file with: UTF-8 always tolerates a BOM."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        return encoding  # reported by the open() call, with the key named
    return "utf-8-sig" if name in ("utf-8", "utf-8-sig") else encoding


class CsvSource:
    """Streams the rows of a CSV file as records."""

    def __init__(self, cfg: CsvSourceConfig) -> None:
        self._cfg = cfg
        self.description = f"csv file {cfg.path}"

    def read(self) -> Iterator[SourceRecord]:
        cfg = self._cfg
        path = Path(cfg.path)
        name = path.name
        encoding = _python_encoding(cfg.encoding)
        csv.field_size_limit(FIELD_SIZE_LIMIT)
        try:
            handle = path.open(encoding=encoding, errors="strict", newline="")
        except LookupError:
            raise SourceError(
                f"{self.description}: unknown encoding {cfg.encoding!r} in the source's "
                '`encoding` key; use e.g. "utf-8" or "cp1250" (Hungarian Excel export)'
            ) from None
        except OSError as exc:
            raise SourceError(
                f"{self.description}: cannot open the file ({exc.strerror or exc}); "
                "check the source's `path` and the file's permissions"
            ) from None
        with handle:
            lines = _LastLine(handle)
            try:
                reader = csv.reader(lines, delimiter=cfg.delimiter, strict=True)
            except TypeError as exc:
                raise SourceError(
                    f"{self.description}: invalid delimiter {cfg.delimiter!r} ({exc}); "
                    "the source's `delimiter` key must be exactly one character"
                ) from None
            last_line = 0
            try:
                header = next(reader, None)
                if header is None:
                    raise SourceError(
                        f"{self.description}: the file is empty (no header row); "
                        "export the CRM again with column headers"
                    )
                columns = [clean_value(h).lstrip("\ufeff").strip() for h in header]
                self._check_header(columns)
                key_columns = cfg.key_columns
                rule = "" if key_columns else ROW_DIGEST_RULE  # "": the configured key
                digests: dict[str, int] = {}
                row_numbers = True
                rows = 0
                last_line = reader.line_num
                first_short = 0
                for row in reader:
                    line = last_line + 1
                    last_line = reader.line_num
                    if all(not cell.strip("\x00 \t\r\n") for cell in row):
                        continue  # a blank row (or ";;;;") is no record
                    rows += 1
                    if len(row) < len(columns):
                        first_short = first_short or line
                    record = self._record(row, columns, f"{name} line {line}", rule)
                    if not key_columns:
                        # A short row's digest names no record the CRM had: no key.
                        record = _with_digest(record, digests) if not record.problem else record
                    elif row_numbers and record.key not in (str(rows), str(line)):
                        row_numbers = False
                    yield record
                if first_short and not lines.ended_with_newline:
                    raise SourceError(
                        f"{self.description}: line {first_short} has fewer fields than the "
                        "header and the file does not end with a line ending, so it is being "
                        "written right now or was cut short; nothing is deleted until it "
                        "reads completely (the next run tries again)"
                    )
                if key_columns and row_numbers and rows > 1:
                    log.warning(
                        "%s: every key of column(s) %s equals its row number; such a key "
                        "changes on every re-export. Use the CRM's own id, a list of "
                        "columns, or leave `key` out for the row digest",
                        self.description,
                        ", ".join(key_columns),
                    )
            except UnicodeDecodeError as exc:
                line, likely = _decode_error_line(path, encoding)
                advice = (
                    f'the file looks like {likely}: set the source\'s `encoding` key to "{likely}"'
                    if likely
                    else "set the source's `encoding` key to the file's real encoding, "
                    'e.g. "cp1250" for a Hungarian Excel export'
                )
                raise SourceError(
                    f"{self.description}: line {line} is not valid {cfg.encoding} "
                    f"({exc.reason}); {advice}"
                ) from None
            except csv.Error as exc:
                raise SourceError(
                    f"{self.description}: malformed CSV at line {reader.line_num or last_line + 1}"
                    f" ({exc}); check the export (quoting, delimiter {cfg.delimiter!r})"
                ) from None
            except OSError as exc:
                raise SourceError(
                    f"{self.description}: reading failed after line {last_line} "
                    f"({exc.strerror or exc}); check the file and the disk"
                ) from None

    def _check_header(self, columns: list[str]) -> None:
        """The key columns must exist and no field name may appear twice."""
        named = [c for c in columns if c]
        for key in self._cfg.key_columns:
            if key not in named:
                raise SourceError(
                    f"{self.description}: the key column {key!r} is not in the header row; "
                    f"columns found: {', '.join(repr(c) for c in named) or '(none)'}. "
                    "Fix the source's `key` key or the export (or leave `key` out: the "
                    "key is then a digest of the row)"
                    + (
                        f" (is the delimiter {self._cfg.delimiter!r} right?)"
                        if len(named) <= 1
                        else ""
                    )
                )
        dupes = sorted({c for c in named if named.count(c) > 1})
        if dupes:
            raise SourceError(
                f"{self.description}: the header row names {', '.join(map(repr, dupes))} "
                "more than once, so its fields are ambiguous; rename the columns in the export"
            )

    def _record(self, row: list[str], columns: list[str], locator: str, rule: str) -> SourceRecord:
        if len(row) > len(columns) and any(cell.strip() for cell in row[len(columns) :]):
            raise SourceError(
                f"{self.description}: {locator} has {len(row)} fields but the header has "
                f"{len(columns)}; the file is malformed (an unquoted delimiter in a value?). "
                "Export it again; nothing is deleted until the source reads cleanly"
            )
        fields: dict[str, str] = {}
        for index, column in enumerate(columns):
            if column:
                fields[column] = clean_value(row[index]) if index < len(row) else ""
        key_columns = self._cfg.key_columns
        if len(key_columns) == 1:
            key = fields[key_columns[0]]
        else:
            parts = [fields[c] for c in key_columns]
            key = " | ".join(parts) if any(parts) else ""
        if len(row) < len(columns):
            # Read short: the record is rejected, not padded. Its key is kept only
            # if every key column was there, so the entries written for it are kept.
            present = {c for c in columns[: len(row)] if c}
            return SourceRecord(
                key=key if key_columns and present.issuperset(key_columns) else "",
                fields=fields,
                locator=locator,
                key_rule=rule,
                problem=f"{locator} has {len(row)} fields but the header has {len(columns)}; "
                "the record is skipped (its entries are kept) until the CRM export is fixed",
            )
        return SourceRecord(key=key, fields=fields, locator=locator, key_rule=rule)


class _LastLine:
    """The file's lines, remembering whether the last one had a line ending."""

    def __init__(self, handle: Iterator[str]) -> None:
        self._handle = handle
        self.ended_with_newline = True  # an empty file has no unfinished line

    def __iter__(self) -> Iterator[str]:
        for line in self._handle:
            self.ended_with_newline = line.endswith(("\n", "\r"))
            yield line


def _with_digest(record: SourceRecord, seen: dict[str, int]) -> SourceRecord:
    """The record keyed by a digest of its cells (``~2``... for repeated rows)."""
    canonical = "\x1f".join(f"{k}\x1e{v}" for k, v in sorted(record.fields.items()) if v)
    key = "row:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
    count = seen.get(key, 0) + 1
    seen[key] = count
    if count > 1:
        key = f"{key}~{count}"
    return replace(record, key=key)


def _decode_error_line(path: Path, encoding: str) -> tuple[int, str | None]:
    """The line of the first undecodable byte, and the encoding the file most
    likely has (the error path only re-reads the file)."""
    try:
        data = path.read_bytes()
        data.decode(encoding)
    except UnicodeDecodeError as exc:
        start = exc.start
        if encoding == "utf-8-sig" and data.startswith(codecs.BOM_UTF8):
            start += len(codecs.BOM_UTF8)  # the codec reports offsets past the BOM
        line = data[:start].decode(encoding, errors="replace").count("\n") + 1
        likely = utf16_codec(data) or guess_encoding(data)
        if likely and codecs.lookup(likely).name == codecs.lookup(encoding).name:
            likely = None
        return line, likely
    except OSError:
        return 0, None
    return 0, None
