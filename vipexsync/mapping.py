"""CRM records → desired phonebook entries, with a reason for every rejection.

Pure code: templates, phone number normalisation (:mod:`vipexsync.phone`) and
custom-field validation. Nothing here does I/O.

Two kinds of findings come out of :func:`map_records`:

- ``MappingResult.problems``: everything the CRM asked for that will *not*
  reach VIPeX. ``fatal=True`` ones drop a whole record (``missing_key``,
  ``duplicate_key``, ``no_phone``, ``empty_name``, ``unreadable_record``: a
  row the source could not read whole) or one of its numbers
  (``invalid_phone``, ``duplicate_number``; ``phonenumber`` names the number
  when it is known); ``fatal=False`` ones drop one value and the entry still
  syncs (``comma_in_tag``, ``bad_custom_field``). All are counted in
  ``vipexsync_rejected_records`` by their ``code``.
- ``MappingResult.notes``: informational, nothing the phonebook could hold was
  lost (``extension_dropped``: VIPeX numbers cannot carry an extension).

Duplicate numbers: the record with the lowest key wins. Keys made only of
ASCII digits compare as integers and sort before all other keys, which compare
as strings; a total order, so the winner never depends on the source's order.
A key that appears in more than one record rejects all of them
(``duplicate_key``): which of them the CRM means is unknowable.
"""

from __future__ import annotations

import gc
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Final

from vipexsync.config import MappingConfig, tag_in_normal_form
from vipexsync.domain import DesiredEntry, Entry, RecordProblem
from vipexsync.errors import ConfigError
from vipexsync.phone import (
    EXTENSION_DROPPED,
    INVALID_PHONE,
    NormalizedPhone,
    PhoneError,
    PhoneNormalizer,
    check_region,
    is_phone_list,
    normalize_phone,
    split_phone_list,
)
from vipexsync.sources.base import SourceRecord
from vipexsync.template import (
    Template,
    TemplateSyntaxError,
    clean_text,
    parse_template,
    render_template,
)
from vipexsync.vipex.models import CustomField

__all__ = [
    "BAD_CUSTOM_FIELD",
    "COMMA_IN_TAG",
    "DUPLICATE_KEY",
    "DUPLICATE_NUMBER",
    "EMPTY_NAME",
    "EXTENSION_DROPPED",
    "INVALID_PHONE",
    "MISSING_KEY",
    "NO_PHONE",
    "NUMBER_NOT_SYNCED",
    "SOURCE_REPAIRED",
    "UNDECODABLE_VALUE",
    "UNREADABLE_PART",
    "UNREADABLE_RECORD",
    "VALUE_REPLACED",
    "CompiledCustomField",
    "CompiledMapping",
    "MappingResult",
    "NormalizedPhone",
    "PhoneError",
    "Template",
    "TemplateSyntaxError",
    "clean_text",
    "compile_mapping",
    "key_order",
    "map_records",
    "normalize_phone",
    "parse_template",
    "render_template",
]

MISSING_KEY: Final = "missing_key"
DUPLICATE_KEY: Final = "duplicate_key"
NO_PHONE: Final = "no_phone"
EMPTY_NAME: Final = "empty_name"
DUPLICATE_NUMBER: Final = "duplicate_number"
COMMA_IN_TAG: Final = "comma_in_tag"
BAD_CUSTOM_FIELD: Final = "bad_custom_field"
UNREADABLE_RECORD: Final = "unreadable_record"
UNDECODABLE_VALUE: Final = "undecodable_value"
VALUE_REPLACED: Final = "value_replaced"
SOURCE_REPAIRED: Final = "source_repaired"
NUMBER_NOT_SYNCED: Final = "number_not_synced"
UNREADABLE_PART: Final = "unreadable_file"


# --------------------------------------------------------------------- compiling


_NUMBER_SEQUENCE: Final = re.compile(r"^[0-9]+(?: ?, ?[0-9]+)*$")


@dataclass(frozen=True, slots=True)
class CompiledCustomField:
    """One mapped custom field: its VIPeX definition and its template.

    A menu value is matched against the options' labels in two steps: the
    exact label (case and all; VIPeX's surrounding spaces aside) wins, then a
    case-insensitive match. Either way the label is sent exactly as VIPeX
    spells it, spaces included, since VIPeX accepts nothing else. A value
    that matches no option, or only several options that differ in case,
    drops this field (reported), never the whole entry.
    """

    field: CustomField
    template: Template
    menu: Mapping[str, str | None]  # exact label (spaces collapsed) -> VIPeX's label
    menu_folded: Mapping[str, str | None]  # case-folded label -> VIPeX's label
    labels: str = ""  # the menu's labels, quoted, for messages

    def validate(self, value: str) -> str | None:
        """The value to send, or None if it is not acceptable for the field."""
        if not value:
            return ""
        kind = self.field.field_type
        if kind == "menu":
            exact = _label_key(value)
            if exact in self.menu:
                return self.menu[exact]
            return self.menu_folded.get(_fold(value))
        if kind == "number_sequence":
            if _NUMBER_SEQUENCE.match(value):
                return value.replace(" ", "")
            return None
        return value

    def explain(self, value: str) -> str:
        """Why ``value`` was refused, listing what would be accepted."""
        name = self.field.field_name
        if self.field.field_type == "menu":
            labels = self.labels
            if self.menu_folded.get(_fold(value), "") is None:
                return (
                    f"custom field {name!r} is a menu and {value!r} matches several of its "
                    f"options that differ only in case ({labels}); write one exactly; the "
                    "field is left out of this entry"
                )
            return (
                f"custom field {name!r} is a menu and {value!r} is not one of its options "
                f"({labels or 'it has none'}); the field is left out of this entry"
            )
        return (
            f"custom field {name!r} takes digit groups separated by commas, like "
            f"'123,456', and {value!r} is not that; the field is left out of this entry"
        )


def _label_key(value: str) -> str:
    return " ".join(unicodedata.normalize("NFC", value).split())


def _menu_index(labels: Iterable[str], key: Callable[[str], str]) -> dict[str, str | None]:
    """``key(label)`` -> the label as VIPeX spells it; None where two labels share a key."""
    index: dict[str, str | None] = {}
    for label in labels:
        k = key(label)
        index[k] = label if k not in index or index[k] == label else None
    return index


def _fold(value: str) -> str:
    return " ".join(unicodedata.normalize("NFC", value).casefold().split())


@dataclass(frozen=True, slots=True)
class CompiledMapping:
    """A job's mapping with templates parsed and custom fields resolved to ids."""

    phone_fields: tuple[str, ...]
    name: Template
    comment: Template
    tags: tuple[Template, ...]
    custom_fields: tuple[CompiledCustomField, ...]

    @property
    def used_fields(self) -> frozenset[str]:
        """Every source field a phone field or template reads."""
        used = set(self.phone_fields)
        for template in (self.name, self.comment, *self.tags):
            used.update(template.fields)
        for custom in self.custom_fields:
            used.update(custom.template.fields)
        return frozenset(used)

    @property
    def custom_field_ids(self) -> frozenset[int]:
        """The ids of the custom fields this mapping manages."""
        return frozenset(c.field.field_id for c in self.custom_fields)


def compile_mapping(
    cfg: MappingConfig, custom_fields: Sequence[CustomField], *, job: str
) -> CompiledMapping:
    """Parse every template and resolve custom field names to their VIPeX fields.

    Raises :class:`ConfigError` listing every problem: malformed templates,
    no phone fields, and custom field names VIPeX does not have (with the
    names it does have).
    """
    problems: list[str] = []

    def template(key: str, source: str) -> Template:
        try:
            return parse_template(source)
        except TemplateSyntaxError as exc:
            problems.append(f"{key}: {exc}")
            return Template(source=source, parts=("",))

    phone_fields = tuple(f for f in cfg.phone_fields if f.strip())
    if not phone_fields:
        problems.append(
            "jobs.mapping.phone_fields: name at least one source field that holds a "
            'phone number, like ["phone", "mobile"]'
        )
    name = template("jobs.mapping.name", cfg.name)
    if not name.fields and not clean_text(name.source):
        problems.append(
            'jobs.mapping.name: the name template is empty; use fields like "{last_name} '
            '{first_name}"'
        )
    comment = template("jobs.mapping.comment", cfg.comment)
    tags = tuple(template(f"jobs.mapping.tags[{i}]", t) for i, t in enumerate(cfg.tags))

    by_name: dict[str, list[CustomField]] = {}
    for cf in custom_fields:
        by_name.setdefault(unicodedata.normalize("NFC", cf.field_name), []).append(cf)
    available = ", ".join(
        f"{cf.field_name!r} ({cf.field_type})"
        for cf in sorted(custom_fields, key=lambda c: c.field_name)
    )
    compiled: list[CompiledCustomField] = []
    seen_ids: set[int] = set()
    for cf_name, source in cfg.custom_fields.items():
        key = f'jobs.mapping.custom_fields."{cf_name}"'
        tpl = template(key, source)
        matches = by_name.get(unicodedata.normalize("NFC", cf_name), [])
        if not matches:
            near = [c.field_name for c in custom_fields if _fold(c.field_name) == _fold(cf_name)]
            hint = f" (did you mean {near[0]!r}? names are case-sensitive)" if near else ""
            existing = (
                f"the fields that exist are: {available}"
                if available
                else "this phonebook has no custom fields"
            )
            problems.append(
                f"{key}: VIPeX has no phonebook custom field {cf_name!r}{hint}; {existing}"
            )
            continue
        if len(matches) > 1:
            ids = ", ".join(str(c.field_id) for c in matches)
            problems.append(
                f"{key}: VIPeX has {len(matches)} custom fields named {cf_name!r} (ids {ids}); "
                "rename all but one in VIPeX"
            )
            continue
        cf = matches[0]
        if cf.field_id in seen_ids:
            problems.append(f"{key}: custom field {cf_name!r} is mapped twice")
            continue
        seen_ids.add(cf.field_id)
        option_labels = [o.option_label for o in cf.options]
        labels = ", ".join(repr(label) for label in option_labels)
        compiled.append(
            CompiledCustomField(
                field=cf,
                template=tpl,
                menu=_menu_index(option_labels, _label_key),
                menu_folded=_menu_index(option_labels, _fold),
                labels=labels,
            )
        )

    if problems:
        raise ConfigError(f"job {job!r}: the mapping is not valid", tuple(problems))
    return CompiledMapping(
        phone_fields=phone_fields,
        name=name,
        comment=comment,
        tags=tags,
        custom_fields=tuple(compiled),
    )


# ---------------------------------------------------------------------- mapping


@dataclass(frozen=True, slots=True)
class MappingResult:
    """The desired entries of one source read, and what was rejected on the way."""

    desired: Mapping[str, DesiredEntry]  # keyed by phone number, in number order
    problems: tuple[RecordProblem, ...]
    records: int  # source records seen
    notes: tuple[RecordProblem, ...] = ()
    key_rules: Mapping[str, int] = field(default_factory=dict)  # rule ("" = configured) -> records
    source_complete: bool = True  # False: a part of the source could not be read
    # Valid numbers of records present in this read but rejected as a whole
    # (empty name, repeated or missing key, unreadable or undecodable record):
    # an entry at such a number whose record the mirror does not know (a lost
    # database) is kept, as the CRM still lists someone there.
    rejected_numbers: frozenset[str] = frozenset()

    @property
    def rejected_keys(self) -> frozenset[str]:
        """The records present in this read but rejected, fully or in part.

        The numbers last written for them are kept, not deleted as "no longer
        in CRM" (DESIGN invariant 5). A record with no phone number at all
        (``no_phone``) says so plainly and is not among them; a record without
        a key cannot be named.
        """
        unnamed = (MISSING_KEY, NO_PHONE, UNREADABLE_PART)
        return frozenset(
            p.record_key
            for p in self.problems
            if p.fatal and p.code not in unnamed and p.record_key
        )

    def rejected_by_code(self) -> dict[str, int]:
        """How many problems of each code: the ``vipexsync_rejected_records`` gauge."""
        return dict(Counter(p.code for p in self.problems))


def key_order(key: str) -> tuple[int, int, str]:
    """Sort key for record keys: all-digit keys numerically first, then strings."""
    if key.isascii() and key.isdigit():
        return (0, int(key), key)
    return (1, 0, key)


# (number, phone field, raw value, the entry): a plain tuple, as it is made 200k times.
_Candidate = tuple[str, str, str, DesiredEntry]


def map_records(
    records: Iterable[SourceRecord],
    mapping: CompiledMapping,
    *,
    region: str,
    ownership_tag: str,
) -> MappingResult:
    """Map every record; a bad record or field is reported, never raised."""
    if not check_region(region):
        raise ConfigError(
            f"jobs.default_region: {region!r} is not a known region; use a two-letter "
            "country code such as 'HU' or 'DE'"
        )
    owner = ownership_tag
    if "," in owner:
        raise ConfigError(
            f"jobs.ownership_tag: {ownership_tag!r} contains a comma, which VIPeX uses to "
            "join tags; choose a tag without commas"
        )
    if not tag_in_normal_form(owner):
        # Compared raw with the tags VIPeX lists, it must be written as VIPeX keeps it.
        raise ConfigError(
            f"jobs.ownership_tag: {ownership_tag!r} is not in normal form (trimmed, single "
            f"spaces, printable); write {clean_text(ownership_tag)!r}"
        )
    phones = PhoneNormalizer(region)
    problems: list[RecordProblem] = []
    notes: list[RecordProblem] = []
    candidates: list[_Candidate] = []

    # Mapping 100k records allocates ~a million small objects; the cyclic GC
    # would rescan the whole source over and over, for nothing: none of this
    # forms cycles. It is switched back on before returning.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        # Records are mapped as they stream in, so the whole source is never
        # held at once (at 100k records that was ~80 MB at the peak). A key
        # seen again skips the record; once the read is over, everything its
        # first record produced is dropped, as if none of them was mapped.
        count = 0
        used = mapping.used_fields
        missing: list[RecordProblem] = []
        first_locator: dict[str, str] = {}
        repeated: dict[str, list[str]] = {}
        shared = _Shared()
        key_rules: Counter[str] = Counter()
        complete = True
        claimed: set[str] = set()  # numbers of records rejected as a whole
        for record in records:
            if record.unreadable:
                complete = False
                missing.append(
                    RecordProblem(
                        record_key=record.locator,
                        field="",
                        code=UNREADABLE_PART,
                        reason=f"{record.locator}: {record.unreadable}; the rest of the "
                        "source is synced, but nothing is deleted until it reads",
                        locator=record.locator,
                    )
                )
                continue
            count += 1
            key_rules[record.key_rule] += 1
            key = record.key
            if not key.strip():
                claimed.update(_record_numbers(record, mapping, phones))
                missing.append(
                    RecordProblem(
                        record_key=record.locator,
                        field="key",
                        code=MISSING_KEY,
                        reason=record.problem
                        or f"the record at {record.locator} has no key; it is skipped "
                        "until the CRM gives it one",
                        locator=record.locator,
                        display_name=mapping.name.render(record.fields),
                    )
                )
            elif key in first_locator:
                repeated.setdefault(key, [first_locator[key]]).append(record.locator)
                claimed.update(_record_numbers(record, mapping, phones))
            elif record.problem:
                # Present but unreadable: rejected, and its entries are kept.
                first_locator[key] = record.locator
                claimed.update(_record_numbers(record, mapping, phones))
                problems.append(
                    RecordProblem(
                        record_key=key,
                        field="record",
                        code=UNREADABLE_RECORD,
                        reason=f"record {key!r}: {record.problem}",
                        locator=record.locator,
                    )
                )
            else:
                first_locator[key] = record.locator
                before = (len(problems), len(notes))
                if (record.damaged or record.notes) and not _source_findings(
                    record, used, problems, notes
                ):
                    _locate(record, mapping, problems, notes, before)
                    claimed.update(_record_numbers(record, mapping, phones))
                    continue
                _map_one(
                    record, mapping, phones, owner, candidates, problems, notes, shared, claimed
                )
                if record.numbers:
                    _unsynced_numbers(record, mapping, problems, notes, before[0])
                if len(problems) > before[0] or len(notes) > before[1]:
                    _locate(record, mapping, problems, notes, before)
        del shared

        if repeated:
            claimed.update(c[0] for c in candidates if c[3].record_key in repeated)
            candidates = [c for c in candidates if c[3].record_key not in repeated]
            problems = [p for p in problems if p.record_key not in repeated]
            notes = [p for p in notes if p.record_key not in repeated]
        problems.extend(missing)
        for key, locators in repeated.items():
            where = ", ".join(sorted(locators))
            for locator in locators:
                problems.append(
                    RecordProblem(
                        record_key=key,
                        field="key",
                        code=DUPLICATE_KEY,
                        reason=f"key {key!r} is used by {len(locators)} records ({where}); "
                        "all of them are skipped until the CRM has it once",
                        value=locator,
                        locator=locator,
                    )
                )
        desired = _resolve_duplicates(candidates, problems, first_locator)
        del first_locator
        problems.sort(key=_problem_order)
        notes.sort(key=_problem_order)
    finally:
        if gc_was_enabled:
            gc.enable()
    return MappingResult(
        desired=desired,
        problems=tuple(problems),
        records=count,
        notes=tuple(notes),
        key_rules=dict(key_rules),
        source_complete=complete,
        rejected_numbers=frozenset(claimed - desired.keys()),
    )


class _Shared:
    """One object per distinct tag set and comment among the entries of one read.

    Most entries carry the same few tag sets and many share a company
    (comment); sharing them saves ~20 MB per 100k entries.
    """

    __slots__ = ("_tags", "_texts")

    def __init__(self) -> None:
        self._tags: dict[frozenset[str], frozenset[str]] = {}
        self._texts: dict[str, str] = {}

    def tags(self, tags: frozenset[str]) -> frozenset[str]:
        return self._tags.setdefault(tags, tags)

    def text(self, text: str) -> str:
        return self._texts.setdefault(text, text)


def _map_one(
    record: SourceRecord,
    mapping: CompiledMapping,
    phones: PhoneNormalizer,
    owner: str,
    candidates: list[_Candidate],
    problems: list[RecordProblem],
    notes: list[RecordProblem],
    shared: _Shared,
    claimed: set[str],
) -> None:
    """Turn one record into candidate entries, one per distinct valid number.

    A record rejected as a whole for its name adds its valid numbers to ``claimed``.
    """
    key = record.key
    fields = record.fields
    raw_phones = _raw_phones(record, mapping)
    if not raw_phones:
        names = ", ".join(repr(f) for f in mapping.phone_fields)
        problems.append(
            RecordProblem(
                record_key=key,
                field=mapping.phone_fields[0],
                code=NO_PHONE,
                reason=f"record {key!r} has no phone number (fields {names} are all empty)",
            )
        )
        return
    name = mapping.name.render(fields)
    if not name:
        used = ", ".join(repr(f) for f in mapping.name.fields) or "none"
        problems.append(
            RecordProblem(
                record_key=key,
                field="name",
                code=EMPTY_NAME,
                reason=f"record {key!r} has an empty name: the template "
                f"{mapping.name.source!r} renders empty (its fields {used} are empty)",
            )
        )
        claimed.update(_valid_numbers(raw_phones, phones))
        return

    numbers: dict[str, tuple[str, str]] = {}  # number -> (field, raw)
    for field_name, value in raw_phones:
        results = _phone_results(value, phones)
        for raw, result in results:
            _add_number(key, field_name, raw, result, numbers, problems, notes)
    if not numbers:
        return
    _finish_entries(record, mapping, owner, candidates, problems, shared, numbers, name)


def _raw_phones(record: SourceRecord, mapping: CompiledMapping) -> list[tuple[str, str]]:
    """(phone field, value) for each of the mapping's phone fields the record fills."""
    fields = record.fields
    return [
        (phone_field, value)
        for phone_field in mapping.phone_fields
        if (value := fields.get(phone_field)) and value.strip()
    ]


def _valid_numbers(raw_phones: list[tuple[str, str]], phones: PhoneNormalizer) -> list[str]:
    """The valid numbers among a rejected record's phone values (its invalid ones aside)."""
    return [
        result.number
        for _, value in raw_phones
        for _, result in _phone_results(value, phones)
        if not isinstance(result, PhoneError)
    ]


def _record_numbers(
    record: SourceRecord, mapping: CompiledMapping, phones: PhoneNormalizer
) -> list[str]:
    """The valid numbers in a rejected record's phone fields."""
    return _valid_numbers(_raw_phones(record, mapping), phones)


def _phone_results(
    value: str, phones: PhoneNormalizer
) -> list[tuple[str, NormalizedPhone | PhoneError]]:
    """Each number in one phone field's value, normalised (most values hold one)."""
    if not is_phone_list(value):
        result = phones.normalize(value)
        if not isinstance(result, PhoneError):
            return [(value, result)]

    def is_number(text: str) -> bool:
        return not isinstance(phones.normalize(text), PhoneError)

    # A value of separators alone (";", " ::: ") splits into nothing: it is
    # then judged whole, so its error names it and the record is not lost.
    pieces = split_phone_list(value, is_number) or [value]
    return [(raw, phones.normalize(raw)) for raw in pieces]


def _add_number(
    key: str,
    field_name: str,
    raw: str,
    result: NormalizedPhone | PhoneError,
    numbers: dict[str, tuple[str, str]],
    problems: list[RecordProblem],
    notes: list[RecordProblem],
) -> None:
    """Record one normalised number of a record, or the error that rejects it."""
    if isinstance(result, PhoneError):
        problems.append(
            RecordProblem(
                record_key=key,
                field=field_name,
                code=result.code,
                reason=f"record {key!r}, field {field_name!r}: {result.reason}",
                value=raw,
            )
        )
        return
    if result.note is not None:
        notes.append(
            RecordProblem(
                record_key=key,
                field=field_name,
                code=EXTENSION_DROPPED,
                reason=f"record {key!r}, field {field_name!r}: {result.note}",
                value=raw,
                fatal=False,
                phonenumber=result.number,
            )
        )
    numbers.setdefault(result.number, (field_name, raw))


def _finish_entries(
    record: SourceRecord,
    mapping: CompiledMapping,
    owner: str,
    candidates: list[_Candidate],
    problems: list[RecordProblem],
    shared: _Shared,
    numbers: dict[str, tuple[str, str]],
    name: str,
) -> None:
    """The record's entries: one per distinct number, sharing tags and comment."""
    key = record.key
    fields = record.fields
    tags: set[str] = set()
    for i, tpl in enumerate(mapping.tags):
        tag = tpl.render(fields)
        if not tag:
            continue
        if "," in tag:
            problems.append(
                RecordProblem(
                    record_key=key,
                    field=f"tags[{i}]",
                    code=COMMA_IN_TAG,
                    reason=f"record {key!r}: tag {tag!r} (from {tpl.source!r}) contains a "
                    "comma, which VIPeX uses to join tags; the tag is left out",
                    value=tag,
                    fatal=False,
                )
            )
            continue
        tags.add(tag)
    if owner:
        tags.add(owner)

    custom: dict[int, str] = {}
    for cf in mapping.custom_fields:
        value = cf.template.render(fields)
        accepted = cf.validate(value)
        if accepted is None:
            problems.append(
                RecordProblem(
                    record_key=key,
                    field=cf.field.field_name,
                    code=BAD_CUSTOM_FIELD,
                    reason=f"record {key!r}: {cf.explain(value)}",
                    value=value,
                    fatal=False,
                )
            )
            continue
        # A CRM id mapped into a custom field (a customer code) is common: share the string.
        custom[cf.field.field_id] = key if accepted == key else accepted

    frozen_tags = shared.tags(frozenset(tags))
    comment = shared.text(mapping.comment.render(fields))
    for number, (field_name, raw) in numbers.items():
        entry = Entry(
            phonenumber=number,
            name=name,
            tags=frozen_tags,
            comment=comment,
            custom_fields=custom,
        )
        candidates.append((number, field_name, raw, DesiredEntry(entry, key)))


def _resolve_duplicates(
    candidates: list[_Candidate], problems: list[RecordProblem], locators: Mapping[str, str]
) -> dict[str, DesiredEntry]:
    """One entry per number: the lowest record key wins, the others are rejected."""
    winners: dict[str, _Candidate] = {}
    losers: list[_Candidate] = []
    for cand in candidates:
        current = winners.get(cand[0])
        if current is None:
            winners[cand[0]] = cand
        elif key_order(cand[3].record_key) < key_order(current[3].record_key):
            winners[cand[0]] = cand
            losers.append(current)
        else:
            losers.append(cand)
    for number, field_name, raw, desired in losers:
        win = winners[number][3].record_key
        key = desired.record_key
        problems.append(
            RecordProblem(
                record_key=key,
                field=field_name,
                code=DUPLICATE_NUMBER,
                reason=f"record {key!r}, field {field_name!r}: number {number} also "
                f"belongs to record {win!r}, which keeps it because its key sorts first",
                value=raw,
                phonenumber=number,
                locator=locators.get(key, ""),
                display_name=desired.entry.name,
            )
        )
    return {number: winners[number][3] for number in sorted(winners)}


def _source_findings(
    record: SourceRecord,
    used: frozenset[str],
    problems: list[RecordProblem],
    notes: list[RecordProblem],
) -> bool:
    """Report what the source repaired; False if the record must be rejected.

    A value whose bytes could not be decoded rejects the record when the
    mapping uses that field (or it is the key); otherwise it is a note.
    """
    key = record.key
    keep = True
    for field_name, why in record.damaged:
        if field_name in used or field_name == "key":
            keep = False
            problems.append(
                RecordProblem(
                    record_key=key,
                    field=field_name,
                    code=UNDECODABLE_VALUE,
                    reason=f"record {key!r}, field {field_name!r}: {why}; the record is "
                    "skipped because the mapping uses this field",
                    value=record.fields.get(field_name, ""),
                )
            )
        else:
            notes.append(
                RecordProblem(
                    record_key=key,
                    field=field_name,
                    code=VALUE_REPLACED,
                    reason=f"record {key!r}, field {field_name!r}: {why} (not mapped, "
                    "so the record still syncs)",
                    value=record.fields.get(field_name, ""),
                    fatal=False,
                )
            )
    for note in record.notes:
        notes.append(
            RecordProblem(
                record_key=key,
                field="",
                code=SOURCE_REPAIRED,
                reason=f"record {key!r}: {note}",
                fatal=False,
            )
        )
    return keep


def _unsynced_numbers(
    record: SourceRecord,
    mapping: CompiledMapping,
    problems: list[RecordProblem],
    notes: list[RecordProblem],
    first_problem: int,
) -> None:
    """Note every number the record carries that no phone field syncs."""
    if any(p.fatal and p.code in (NO_PHONE, EMPTY_NAME) for p in problems[first_problem:]):
        return  # the record is rejected as a whole; its numbers with it
    fields = record.fields
    mapped: set[str] = set()
    for phone_field in mapping.phone_fields:
        mapped.update(v.strip() for v in (fields.get(phone_field) or "").splitlines())
    key = record.key
    for label, value in record.numbers:
        if value.strip() in mapped:
            continue
        names = ", ".join(mapping.phone_fields)
        notes.append(
            RecordProblem(
                record_key=key,
                field=label,
                code=NUMBER_NOT_SYNCED,
                reason=f"record {key!r}: {label} {value!r} is not synced: no phone field "
                f"({names}) holds it (fax, pager and modem numbers are left out by default)",
                value=value,
                fatal=False,
            )
        )


def _locate(
    record: SourceRecord,
    mapping: CompiledMapping,
    problems: list[RecordProblem],
    notes: list[RecordProblem],
    before: tuple[int, int],
) -> None:
    """Give the findings made for ``record`` its location and display name."""
    name = mapping.name.render(record.fields)
    for found, start in ((problems, before[0]), (notes, before[1])):
        for i in range(start, len(found)):
            found[i] = replace(found[i], locator=record.locator, display_name=name)


def _problem_order(p: RecordProblem) -> tuple[object, ...]:
    return (key_order(p.record_key), p.field, p.code, p.phonenumber or "", p.value, p.reason)
