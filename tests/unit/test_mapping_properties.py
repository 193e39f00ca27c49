"""Properties of the mapping: it never crashes, and source order never matters."""

from __future__ import annotations

import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from vipexsync.config import MappingConfig
from vipexsync.mapping import MappingResult, compile_mapping, map_records
from vipexsync.sources.base import SourceRecord
from vipexsync.vipex.models import CustomField, CustomFieldOption

FIELDS = (
    CustomField(1, "Kód", "text"),
    CustomField(2, "Státusz", "menu", (CustomFieldOption(1, "Aktív"), CustomFieldOption(2, "VIP"))),
    CustomField(3, "Mellékek", "number_sequence"),
)
MAPPING = compile_mapping(
    MappingConfig(
        phone_fields=("phone", "mobile"),
        name="{last} {first}",
        comment="{company}",
        tags=("{segment}", "{group}"),
        custom_fields={"Kód": "{id}", "Státusz": "{status}", "Mellékek": "{ext}"},
    ),
    FIELDS,
    job="prop",
)
NAMES = ["phone", "mobile", "last", "first", "company", "segment", "group", "id", "status", "ext"]

# A few real numbers in several spellings, so duplicates happen often.
PHONES = [
    "06 1 999 6000",
    "+36 1 999 6000",
    "06-30/123-4567",
    "+36 30 123 4567 ext. 9",
    "00 44 20 7946 0958",
    "06-1-99",
    "",
    "mellék 12",
]


def run(records: list[SourceRecord]) -> MappingResult:
    return map_records(records, MAPPING, region="HU", ownership_tag="crm-sync")


def check_invariants(result: MappingResult, records: list[SourceRecord]) -> None:
    assert result.records == len(records)
    keys = {r.key for r in records}
    for number, desired in result.desired.items():
        entry = desired.entry
        assert entry.phonenumber == number
        assert number.isdigit()
        assert not number.startswith("0")
        assert entry.name
        assert entry.name == entry.name.strip()
        assert "crm-sync" in entry.tags
        assert all(tag and "," not in tag for tag in entry.tags)
        assert set(entry.custom_fields) <= {1, 2, 3}
        assert entry.custom_fields.get(2, "") in ("", "Aktív", "VIP")
        assert desired.record_key in keys
        for text in (entry.name, entry.comment, *entry.tags, *entry.custom_fields.values()):
            assert not any(unicodedata.category(c) == "Cc" for c in text)
            assert text == " ".join(text.split())
    for problem in (*result.problems, *result.notes):
        assert problem.record_key
        assert problem.field
        assert problem.reason
        assert problem.code in {
            "missing_key",
            "duplicate_key",
            "no_phone",
            "empty_name",
            "invalid_phone",
            "duplicate_number",
            "comma_in_tag",
            "bad_custom_field",
            "extension_dropped",
        }
    # Every record with a key either yields an entry or is explained by a problem.
    explained = {p.record_key for p in (*result.problems, *result.notes)}
    producing = {d.record_key for d in result.desired.values()}
    for record in records:
        assert (record.key if record.key.strip() else record.locator) in explained | producing


arbitrary_fields = st.dictionaries(
    st.sampled_from(NAMES), st.one_of(st.text(max_size=30), st.sampled_from(PHONES)), max_size=10
)


@st.composite
def arbitrary_records(draw: st.DrawFn) -> list[SourceRecord]:
    fields = draw(st.lists(arbitrary_fields, max_size=12))
    keys = draw(
        st.lists(
            st.one_of(st.sampled_from(["", "1", "2", "10", "a", "B"]), st.text(max_size=4)),
            min_size=len(fields),
            max_size=len(fields),
        )
    )
    return [
        SourceRecord(key=k, fields=f, locator=f"row {i}")
        for i, (k, f) in enumerate(zip(keys, fields, strict=True))
    ]


@settings(max_examples=300, deadline=None)
@given(records=arbitrary_records())
def test_arbitrary_text_never_crashes(records: list[SourceRecord]) -> None:
    check_invariants(run(records), records)


@st.composite
def realistic_records(draw: st.DrawFn) -> list[SourceRecord]:
    count = draw(st.integers(min_value=0, max_value=15))
    records = []
    for i in range(count):
        key = draw(st.sampled_from(["", "1", "2", "3", "10", "07", "7", "a", "B", "x9"]))
        fields = {
            "phone": draw(st.sampled_from(PHONES)),
            "mobile": draw(st.sampled_from(PHONES)),
            "last": draw(st.sampled_from(["", "Kovács", "Nagy  Éva"])),
            "first": draw(st.sampled_from(["", "Péter"])),
            "segment": draw(st.sampled_from(["", "vip", "a,b"])),
            "status": draw(st.sampled_from(["", "aktív", "VIP ", "nincs"])),
            "ext": draw(st.sampled_from(["", "1, 2", "x"])),
            "id": key,
        }
        records.append(SourceRecord(key=key, fields=fields, locator=f"row {i}"))
    return records


@settings(max_examples=300, deadline=None)
@given(data=st.data(), records=realistic_records())
def test_source_order_never_changes_the_result(
    data: st.DataObject, records: list[SourceRecord]
) -> None:
    shuffled = data.draw(st.permutations(records))
    first, second = run(records), run(list(shuffled))
    assert dict(first.desired) == dict(second.desired)
    assert list(first.desired) == list(second.desired)
    assert first.problems == second.problems
    assert first.notes == second.notes
    assert first.records == second.records
    check_invariants(first, records)
