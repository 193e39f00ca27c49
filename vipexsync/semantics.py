"""What VIPeX does with what it is sent: the write semantics, as a frozen value.

The vendor document does not say whether a parameter left out of
``set_phonebook_entry`` is kept or cleared, nor whether names and comments are
trimmed, truncated or normalised. ``vipexsync probe`` learns it on a reserved
test number (see :mod:`vipexsync.probe`), or the operator states the omission
rule (``[vipex] write_semantics``). The result is one :class:`WriteSemantics`
handed to the planner and the writer:

- ``omitted is CLEAR``: every update first reads the entry and re-sends the
  custom fields the job does not manage, so a hand-set field survives;
- a normal form (:func:`normal_entry`): the planner compares the CRM's values
  in the form VIPeX will store them, so an entry VIPeX trimmed, truncated or
  normalised is not rewritten on every full resync.

Everything here is pure.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Literal

from vipexsync.domain import DesiredEntry, Entry

StatedSemantics = Literal["probe", "keep_omitted", "clear_omitted"]
STATED_CHOICES: tuple[StatedSemantics, ...] = ("probe", "keep_omitted", "clear_omitted")


class Omission(StrEnum):
    """What ``set_phonebook_entry`` does with a field it was not sent."""

    KEEP = "keep"
    CLEAR = "clear"
    UNKNOWN = "unknown"  # not probed, not stated: behave as KEEP, and ``check`` warns


@dataclass(frozen=True, slots=True)
class WriteSemantics:
    """How VIPeX stores a write.

    ``trims``: leading and trailing whitespace of names, comments, tags and
    custom field values is removed; ``nfc``: text is stored in Unicode NFC;
    ``max_name_length``: longer names are cut to this many characters.
    """

    omitted: Omission = Omission.UNKNOWN
    trims: bool = False
    nfc: bool = False
    max_name_length: int | None = None

    @property
    def reads_before_update(self) -> bool:
        """Whether an update must first read the entry to keep its unmanaged fields."""
        return self.omitted is Omission.CLEAR

    @property
    def rewrites_values(self) -> bool:
        """Whether VIPeX may store a value other than the one sent."""
        return self.trims or self.nfc or self.max_name_length is not None

    def describe(self) -> str:
        """One line for ``status``, ``check`` and the log."""
        parts = [f"omitted fields: {self.omitted.value}"]
        parts.append("trims" if self.trims else "no trimming")
        parts.append("NFC" if self.nfc else "no normalisation")
        if self.max_name_length is None:
            parts.append("names not truncated")
        else:
            parts.append(f"names cut at {self.max_name_length}")
        return ", ".join(parts)


UNVERIFIED = WriteSemantics()
"""Neither probed nor stated: writes behave as before the probe existed."""


@dataclass(frozen=True, slots=True)
class ProbeFindings:
    """One probe's result for a subscription, as the mirror keeps it."""

    vipex_id: str
    semantics: WriteSemantics
    probed_at: datetime
    phonenumber: str
    not_found_answer: str  # what VIPeX answered for a number it does not hold
    steps: tuple[str, ...] = ()  # each step and VIPeX's answer, for the operator


def effective_semantics(stated: StatedSemantics, findings: ProbeFindings | None) -> WriteSemantics:
    """The semantics a run follows.

    A stated omission rule wins over the probe's; the value rules (trimming,
    NFC, truncation) come only from a probe, since an operator cannot know them.
    Without either, the omission rule is UNKNOWN and writes behave as before.
    """
    learned = findings.semantics if findings is not None else UNVERIFIED
    if stated == "keep_omitted":
        return WriteSemantics(Omission.KEEP, learned.trims, learned.nfc, learned.max_name_length)
    if stated == "clear_omitted":
        return WriteSemantics(Omission.CLEAR, learned.trims, learned.nfc, learned.max_name_length)
    return learned


def normal_text(text: str, semantics: WriteSemantics, limit: int | None = None) -> str:
    """``text`` as VIPeX would store it: NFC, then trimmed, then cut to ``limit``."""
    if semantics.nfc and not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    if semantics.trims:
        text = text.strip()
    if limit is not None and len(text) > limit:
        text = text[:limit]
        if semantics.trims:
            text = text.rstrip()
    return text


def normal_entry(entry: Entry, semantics: WriteSemantics) -> Entry:
    """``entry`` in the form VIPeX would store it; the same object when nothing changes."""
    if not semantics.rewrites_values:
        return entry
    name = normal_text(entry.name, semantics, semantics.max_name_length)
    comment = normal_text(entry.comment, semantics)
    tags = frozenset(t for t in (normal_text(tag, semantics) for tag in entry.tags) if t)
    fields = {fid: normal_text(value, semantics) for fid, value in entry.custom_fields.items()}
    if (
        name == entry.name
        and comment == entry.comment
        and tags == entry.tags
        and fields == entry.custom_fields
    ):
        return entry
    return Entry(entry.phonenumber, name, tags, comment, fields)


def normal_desired(
    desired: Mapping[str, DesiredEntry], semantics: WriteSemantics
) -> Mapping[str, DesiredEntry]:
    """The desired entries in VIPeX's stored form (``desired`` itself when nothing changes)."""
    if not semantics.rewrites_values:
        return desired
    result: dict[str, DesiredEntry] = {}
    changed = False
    for number, want in desired.items():
        entry = normal_entry(want.entry, semantics)
        if entry is not want.entry:
            want = DesiredEntry(entry, want.record_key)
            changed = True
        result[number] = want
    return result if changed else desired


def semantics_report(stated: StatedSemantics, findings: ProbeFindings | None) -> dict[str, object]:
    """What ``status`` and ``check`` show: the semantics a run follows, and where from."""
    followed = effective_semantics(stated, findings)
    if stated != "probe":
        origin = f"stated ([vipex] write_semantics = {stated!r})"
    elif findings is not None:
        origin = "probed"
    else:
        origin = "unverified"
    return {
        "origin": origin,
        "verified": followed.omitted is not Omission.UNKNOWN,
        "summary": followed.describe(),
        "omitted": followed.omitted.value,
        "trims": followed.trims,
        "nfc": followed.nfc,
        "max_name_length": followed.max_name_length,
        "probed_at": findings.probed_at.isoformat(timespec="seconds") if findings else None,
        "probe_number": findings.phonenumber if findings else None,
        "not_found_answer": findings.not_found_answer if findings else None,
    }


UNVERIFIED_WARNING = (
    "UNVERIFIED. Whether VIPeX keeps or clears a field a write leaves out is unknown; if "
    "it clears them, every update wipes the custom fields the mapping does not manage. "
    "Run `vipexsync probe` once, or state [vipex] write_semantics"
)
