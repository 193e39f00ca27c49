"""The shape every CRM source adapter shares, and the dispatch on ``type``.

A source streams :class:`SourceRecord` values. It either reads the whole
source or raises :class:`~vipexsync.errors.SourceError`: a partial list would
look like deleted CRM records, and the run must then delete nothing. A
problem with one record that is not a failure of the source (a row without a
key value) is yielded with ``key == ""`` so the mapping can reject it with a
reason.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from vipexsync.config import (
    CarddavSourceConfig,
    CsvSourceConfig,
    HttpSourceConfig,
    SourceConfig,
    SqlSourceConfig,
    VcardSourceConfig,
)


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One CRM record as plain strings.

    ``key`` is the CRM's stable id ("" when the record has none); ``fields``
    holds every value as a str ("" for missing/NULL) under the name the
    source uses; ``locator`` says where it came from, for messages.
    ``problem`` (not "") says why the record could not be read whole: the
    mapping rejects it, and the entries last written for its key are kept.
    """

    key: str
    fields: Mapping[str, str]
    locator: str
    problem: str = ""
    #: How the key was made, for the report: "" means the configured key
    #: field; otherwise the fallback rule (a digest when the export has no id).
    key_rule: str = ""
    #: Fields whose value had undecodable bytes replaced: (field name, why).
    #: The mapping rejects the record only if it uses one of them.
    damaged: tuple[tuple[str, str], ...] = ()
    #: What the source repaired or left out while reading the record.
    notes: tuple[str, ...] = ()
    #: Every phone number the record carries as (label, value as written),
    #: when the source knows them (vCard TEL); the mapping notes the ones it
    #: does not sync, so no number is dropped silently.
    numbers: tuple[tuple[str, str], ...] = ()
    #: Not a record: a part of the source (one file of a folder) that could not
    #: be read, and why. The others are still synced, but nothing is deleted.
    unreadable: str = ""


class Source(Protocol):
    """A readable CRM source; ``description`` names it without secrets."""

    @property
    def description(self) -> str: ...

    def read(self) -> Iterator[SourceRecord]:
        """Stream every record; raise SourceError on any failure or truncation."""
        ...


def clean_value(value: str) -> str:
    """Normalise one value: NUL bytes removed, surrounding whitespace stripped."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    return value.strip()


def open_source(cfg: SourceConfig, *, full: bool = False) -> Source:
    """Build the adapter for a source configuration (dispatch on its type).

    ``full`` asks for a read that trusts nothing kept from earlier reads in
    this process (a full resync); only the carddav source keeps anything.
    """
    # Imported here so that importing the record type stays cheap and acyclic.
    if isinstance(cfg, CsvSourceConfig):
        from vipexsync.sources.csv_source import CsvSource

        return CsvSource(cfg)
    if isinstance(cfg, SqlSourceConfig):
        from vipexsync.sources.sql_source import SqlSource

        return SqlSource(cfg)
    if isinstance(cfg, HttpSourceConfig):
        from vipexsync.sources.http_source import HttpSource

        return HttpSource(cfg)
    if isinstance(cfg, VcardSourceConfig):
        from vipexsync.sources.vcard_source import VcardSource

        return VcardSource(cfg)
    if isinstance(cfg, CarddavSourceConfig):
        from vipexsync.sources.carddav_source import CarddavSource

        return CarddavSource(cfg, full=full)
    # Unreachable for a well-typed config; kept for configs built by hand.
    raise TypeError(f"unknown source configuration {type(cfg).__name__}")  # pragma: no cover
