"""Mapping CRM records to desired phonebook entries: templates, fields, problems."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from vipexsync.config import MappingConfig
from vipexsync.domain import Entry, RecordProblem
from vipexsync.errors import ConfigError, SourceError
from vipexsync.mapping import (
    CompiledMapping,
    MappingResult,
    TemplateSyntaxError,
    clean_text,
    compile_mapping,
    key_order,
    map_records,
    parse_template,
    render_template,
)
from vipexsync.sources.base import SourceRecord
from vipexsync.vipex.models import CustomField, CustomFieldOption

CODE = CustomField(1, "Ügyfélkód", "text")
STATUS = CustomField(
    2,
    "Státusz",
    "menu",
    (
        CustomFieldOption(1, "Aktív"),
        CustomFieldOption(2, "Inaktív"),
        CustomFieldOption(3, "VIP ügyfél"),
    ),
)
EXTENS = CustomField(3, "Mellékek", "number_sequence")
FIELDS = (CODE, STATUS, EXTENS)


def config(**changes: object) -> MappingConfig:
    base: dict[str, object] = {
        "phone_fields": ("phone", "mobile"),
        "name": "{last_name} {first_name}",
        "comment": "{company}",
        "tags": ("{segment}",),
        "custom_fields": {"Ügyfélkód": "{id}", "Státusz": "{status}", "Mellékek": "{ext}"},
    }
    base.update(changes)
    return MappingConfig(**base)  # type: ignore[arg-type]


def compiled(**changes: object) -> CompiledMapping:
    return compile_mapping(config(**changes), FIELDS, job="crm")


def rec(key: str, locator: str | None = None, **fields: str) -> SourceRecord:
    base = {"id": key, "last_name": "Kovács", "first_name": "Péter", "company": "ACME Kft."}
    base.update(fields)
    return SourceRecord(key=key, fields=base, locator=locator or f"crm.csv line {key or '?'}")


def run(
    *records: SourceRecord, mapping: CompiledMapping | None = None, tag: str = "crm-sync"
) -> MappingResult:
    return map_records(records, mapping or compiled(), region="HU", ownership_tag=tag)


def only(result: MappingResult, code: str) -> RecordProblem:
    found = [p for p in (*result.problems, *result.notes) if p.code == code]
    assert len(found) == 1, found
    return found[0]


# ------------------------------------------------------------------- templates


@pytest.mark.parametrize(
    ("template", "fields", "expected"),
    [
        (
            "{last_name} {first_name}",
            {"last_name": "Kovács", "first_name": "Péter"},
            "Kovács Péter",
        ),
        ("{last_name} {first_name}", {"first_name": "Péter"}, "Péter"),  # missing field
        ("{last_name} {first_name}", {"last_name": "", "first_name": "Péter"}, "Péter"),
        ("{a}  -  {b}", {"a": "x", "b": "y"}, "x - y"),
        (
            "{a}",
            {"a": "  many   spaces\tand\ttabs \n and lines  "},
            "many spaces and tabs and lines",
        ),
        ("{a}", {"a": "a\x00b\x07c\x1bd"}, "abcd"),  # control characters vanish
        ("{a}", {"a": "a\u00a0\u2003b"}, "a b"),  # unicode spaces collapse
        ("{{literal}} {a}", {"a": "x"}, "{literal} x"),
        ("}}{{{a}}}", {"a": "x"}, "}{x}"),
        ("Ügyfél: {név}", {"név": "Árvíztűrő Tükörfúrógép"}, "Ügyfél: Árvíztűrő Tükörfúrógép"),
        ("{first name}", {"first name": "Ann"}, "Ann"),  # CSV headers may have spaces
        ("CRM", {}, "CRM"),
        ("", {}, ""),
        ("{a}{b}", {}, ""),
        ("{a}", {"a": "{b}"}, "{b}"),  # values are never re-expanded
        ("{0}", {"0": "zero"}, "zero"),
        ("{fn|n|org}", {"fn": "", "n": " ", "org": "Acme Kft."}, "Acme Kft."),
        ("{fn|org}", {"fn": "Kiss Anna", "org": "Acme"}, "Kiss Anna"),
        ("{fn|org} ({org})", {"org": "Acme"}, "Acme (Acme)"),
        ("{fn|org}", {}, ""),
    ],
)
def test_render_template(template: str, fields: dict[str, str], expected: str) -> None:
    assert render_template(template, fields) == expected


@pytest.mark.parametrize(
    "template", ["{", "{a", "a}", "{}", "{ }", "{a{b}", "x } y", "{name:}", "{a|}", "{a!r}"]
)
def test_malformed_templates_are_refused(template: str) -> None:
    with pytest.raises(TemplateSyntaxError, match="template"):
        parse_template(template)


def test_template_lists_its_fields() -> None:
    assert parse_template("{a} {{x}} {b}").fields == ("a", "b")
    assert parse_template("{fn|org} {b}").fields == ("fn", "org", "b")


@pytest.mark.parametrize(
    "template",
    ["{name:}", "{name!r}", "{a[0]}", "{ a }", "{}", "{a|}", "{a", "a}", "{0}", "{a|b}", "x"],
)
def test_config_check_and_mapping_agree(template: str) -> None:
    """One grammar: what the config check accepts is exactly what the mapping parses."""
    from vipexsync.config import template_problem

    try:
        parse_template(template)
        parsed = True
    except TemplateSyntaxError:
        parsed = False
    assert (template_problem(template) is None) is parsed


def test_clean_text() -> None:
    assert clean_text(" a \r\n b\x00c ") == "a bc"


# ------------------------------------------------------------------- compiling


def test_compile_resolves_custom_fields_by_name() -> None:
    mapping = compiled()
    assert [c.field for c in mapping.custom_fields] == [CODE, STATUS, EXTENS]
    assert mapping.custom_field_ids == frozenset({1, 2, 3})


def test_unknown_custom_field_is_a_config_error_listing_existing_names() -> None:
    with pytest.raises(ConfigError) as info:
        compile_mapping(config(custom_fields={"Partnerkód": "{id}"}), FIELDS, job="crm")
    message = str(info.value)
    assert "job 'crm'" in message
    assert 'jobs.mapping.custom_fields."Partnerkód"' in message
    for name in ("Ügyfélkód", "Státusz", "Mellékek"):
        assert name in message


def test_unknown_custom_field_hints_at_a_case_mismatch() -> None:
    with pytest.raises(ConfigError, match="did you mean 'Státusz'"):
        compile_mapping(config(custom_fields={"státusz": "{s}"}), FIELDS, job="crm")


def test_unknown_custom_field_when_vipex_has_none() -> None:
    with pytest.raises(ConfigError, match="has no custom fields"):
        compile_mapping(config(custom_fields={"X": "{s}"}), (), job="crm")


def test_ambiguous_custom_field_name_is_a_config_error() -> None:
    twins = (CustomField(7, "Kód", "text"), CustomField(8, "Kód", "text"))
    with pytest.raises(ConfigError, match="ids 7, 8"):
        compile_mapping(config(custom_fields={"Kód": "{id}"}), twins, job="crm")


def test_compile_reports_every_problem_at_once() -> None:
    bad = config(
        phone_fields=(),
        name="{last_name",
        tags=("ok", "}"),
        custom_fields={"Nincs": "{x}", "Ügyfélkód": "{"},
    )
    with pytest.raises(ConfigError) as info:
        compile_mapping(bad, FIELDS, job="crm")
    keys = [p.split(":")[0] for p in info.value.problems]
    assert keys == [
        "jobs.mapping.phone_fields",
        "jobs.mapping.name",
        "jobs.mapping.tags[1]",
        'jobs.mapping.custom_fields."Nincs"',
        'jobs.mapping.custom_fields."Ügyfélkód"',
    ]


def test_a_constant_name_is_fine_but_an_empty_one_is_not() -> None:
    assert compiled(name="Ismeretlen").name.render({}) == "Ismeretlen"
    with pytest.raises(ConfigError, match=r"jobs\.mapping\.name"):
        compiled(name="  ")


# ----------------------------------------------------------- records → entries


def test_a_record_becomes_an_entry() -> None:
    result = run(rec("1", phone="06 1 999 6000", segment="vip", status="aktív", ext="12, 34"))
    assert result.records == 1
    assert result.problems == ()
    assert result.notes == ()
    assert list(result.desired) == ["3619996000"]
    desired = result.desired["3619996000"]
    assert desired.record_key == "1"
    assert desired.entry == Entry(
        phonenumber="3619996000",
        name="Kovács Péter",
        tags=frozenset({"vip", "crm-sync"}),
        comment="ACME Kft.",
        custom_fields={1: "1", 2: "Aktív", 3: "12,34"},
    )


def test_phone_fields_fan_out_with_the_same_content() -> None:
    result = run(rec("1", phone="06 1 999 6000", mobile="+36 30 123 4567"))
    assert sorted(result.desired) == ["3619996000", "36301234567"]
    a, b = (result.desired[n].entry for n in sorted(result.desired))
    assert (a.name, a.tags, a.comment, a.custom_fields) == (
        b.name,
        b.tags,
        b.comment,
        b.custom_fields,
    )
    assert result.problems == ()


def test_the_same_number_twice_in_one_record_is_one_entry() -> None:
    result = run(rec("1", phone="06 1 999 6000", mobile="+36 1 999 6000"))
    assert list(result.desired) == ["3619996000"]
    assert result.problems == ()


def test_missing_key_is_reported_by_locator() -> None:
    result = run(rec("", locator="crm.csv line 7", phone="06 1 999 6000"))
    assert result.desired == {}
    problem = only(result, "missing_key")
    assert problem.record_key == "crm.csv line 7"
    assert problem.field == "key"
    assert problem.fatal
    assert "crm.csv line 7" in problem.reason


def test_a_record_without_any_phone_is_rejected() -> None:
    result = run(rec("5", phone="", mobile="   "))
    problem = only(result, "no_phone")
    assert problem.record_key == "5"
    assert "'phone', 'mobile'" in problem.reason
    assert result.desired == {}


def test_an_empty_name_rejects_the_record() -> None:
    result = run(rec("5", last_name="", first_name=" \t", phone="06 1 999 6000"))
    problem = only(result, "empty_name")
    assert (problem.record_key, problem.field, problem.fatal) == ("5", "name", True)
    assert "'last_name', 'first_name'" in problem.reason
    assert result.desired == {}


def test_one_bad_phone_does_not_stop_the_good_one() -> None:
    result = run(rec("8", phone="06-1-99", mobile="06-30/123-4567"))
    assert list(result.desired) == ["36301234567"]
    problem = only(result, "invalid_phone")
    assert problem.record_key == "8"
    assert problem.field == "phone"
    assert problem.value == "06-1-99"
    assert problem.fatal
    assert problem.phonenumber is None
    assert "phone '06-1-99' is too short for region HU" in problem.reason
    assert "record '8'" in problem.reason


def test_a_dropped_extension_is_a_note_and_the_entry_syncs() -> None:
    result = run(rec("8", phone="+36 1 999 6000 ext. 123"))
    assert list(result.desired) == ["3619996000"]
    assert result.problems == ()
    note = only(result, "extension_dropped")
    assert (note.fatal, note.field, note.phonenumber) == (False, "phone", "3619996000")
    assert "extension 123" in note.reason


def test_tags_rendered_deduplicated_with_ownership_tag() -> None:
    mapping = compiled(tags=("{segment}", "{region}", "crm-sync", "{empty}", "fix"))
    result = run(rec("1", phone="06 1 999 6000", segment="vip", region="vip"), mapping=mapping)
    assert result.desired["3619996000"].entry.tags == frozenset({"vip", "crm-sync", "fix"})


def test_no_ownership_tag_when_it_is_empty() -> None:
    result = run(rec("1", phone="06 1 999 6000", segment="vip"), tag="")
    assert result.desired["3619996000"].entry.tags == frozenset({"vip"})


def test_a_tag_with_a_comma_is_dropped_and_the_entry_syncs() -> None:
    result = run(rec("1", phone="06 1 999 6000", segment="a, b"))
    assert result.desired["3619996000"].entry.tags == frozenset({"crm-sync"})
    problem = only(result, "comma_in_tag")
    assert (problem.fatal, problem.field, problem.value) == (False, "tags[0]", "a, b")


def test_an_ownership_tag_not_in_normal_form_is_a_config_error() -> None:
    """Issue 9 item 11: compared raw with VIPeX's tags, so never cleaned silently."""
    with pytest.raises(ConfigError, match=r"jobs\.ownership_tag: 'crm  sync'.*'crm sync'"):
        map_records([], compiled(), region="HU", ownership_tag="crm  sync")


def test_an_unreadable_record_is_rejected_and_its_key_reported() -> None:
    """Issue 9 items 2 and 5: a present-but-unreadable record protects its key."""
    short = SourceRecord("7", {"id": "7"}, "crm.csv line 3", problem="crm.csv line 3 is short")
    result = run(rec("1", phone="06 1 999 6000"), short)
    assert only(result, "unreadable_record").record_key == "7"
    assert result.rejected_keys == {"7"}


def test_rejected_keys_are_the_present_records_that_lost_an_entry() -> None:
    result = run(
        rec("1", phone="06 1 999 6000", last_name="", first_name=""),  # empty name
        rec("2", phone="nem szám"),  # no valid number
        rec("3", phone="06 1 999 6000"),  # valid: it gets the number record 1 could not
        rec("4", phone=""),  # no phone at all: the CRM says so plainly
        rec("5", phone="06 1 999 7000"),
        rec("5", phone="06 1 999 7001"),  # duplicate key
        rec("", phone="06 1 999 8000"),  # no key: cannot be named
    )
    assert result.rejected_keys == {"1", "2", "5"}


def test_rejected_numbers_are_the_valid_numbers_of_records_rejected_whole() -> None:
    """They keep an entry no mirror row attributes (a lost database) from deletion."""
    damaged = SourceRecord(
        "6", {"id": "6", "phone": "06 1 999 6600"}, "crm.csv line 8", problem="short row"
    )
    result = run(
        rec("1", phone="06 1 999 6000", last_name="", first_name=""),  # empty name
        rec("2", phone="nem szám"),  # no valid number: nothing to keep by number
        rec("3", phone="06 1 999 6000"),  # valid, and wants record 1's number itself
        rec("4", phone="06 1 999 6400", last_name="", first_name="", mobile="x"),
        rec("5", phone="06 1 999 7000"),
        rec("5", phone="06 1 999 7001"),  # duplicate key: both rows' numbers
        rec("", phone="06 1 999 8000"),  # no key
        rec("7", phone="06 1 999 9000"),  # valid
        damaged,
    )
    assert result.rejected_numbers == {
        "3619996400",
        "3619997000",
        "3619997001",
        "3619998000",
        "3619996600",
    }
    assert "3619996000" in result.desired  # a desired number is decided by its record


def test_an_ownership_tag_with_a_comma_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"jobs\.ownership_tag"):
        run(rec("1", phone="06 1 999 6000"), tag="crm,sync")


def test_an_unknown_region_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"jobs\.default_region"):
        map_records([], compiled(), region="XX", ownership_tag="")


@pytest.mark.parametrize(
    ("status", "sent"),
    [
        ("Aktív", "Aktív"),
        ("aktív", "Aktív"),
        ("  INAKTÍV  ", "Inaktív"),
        ("vip   ügyfél", "VIP ügyfél"),
        ("", ""),
    ],
)
def test_menu_values_match_labels_ignoring_case_and_spaces(status: str, sent: str) -> None:
    result = run(rec("1", phone="06 1 999 6000", status=status))
    assert result.desired["3619996000"].entry.custom_fields[2] == sent
    assert result.problems == ()


def test_an_unknown_menu_value_drops_the_field_and_lists_options() -> None:
    result = run(rec("1", phone="06 1 999 6000", status="Passzív"))
    entry = result.desired["3619996000"].entry
    assert 2 not in entry.custom_fields
    assert entry.custom_fields[1] == "1"
    problem = only(result, "bad_custom_field")
    assert (problem.field, problem.value, problem.fatal) == ("Státusz", "Passzív", False)
    assert "'Aktív', 'Inaktív', 'VIP ügyfél'" in problem.reason


def test_menu_prefers_the_exact_label_over_a_case_twin() -> None:
    field = CustomField(
        9, "Szint", "menu", (CustomFieldOption(1, "vip"), CustomFieldOption(2, "VIP"))
    )
    mapping = compile_mapping(config(custom_fields={"Szint": "{s}"}), (field,), job="crm")
    result = run(rec("1", phone="06 1 999 6000", s="vip"), mapping=mapping)
    assert result.desired["3619996000"].entry.custom_fields[9] == "vip"
    # Issue 9 item 10: also when the exact label is not the first of its case twins.
    result = run(rec("1", phone="06 1 999 6000", s="VIP"), mapping=mapping)
    assert result.desired["3619996000"].entry.custom_fields[9] == "VIP"


def test_menu_value_matching_only_case_twins_drops_the_field() -> None:
    field = CustomField(
        9, "Szint", "menu", (CustomFieldOption(1, "vip"), CustomFieldOption(2, "VIP"))
    )
    mapping = compile_mapping(config(custom_fields={"Szint": "{s}"}), (field,), job="crm")
    result = run(rec("1", phone="06 1 999 6000", s="Vip"), mapping=mapping)
    assert 9 not in result.desired["3619996000"].entry.custom_fields  # the entry still syncs
    problem = only(result, "bad_custom_field")
    assert "differ only in case" in problem.reason


@pytest.mark.parametrize("value", ["Kiemelt", "kiemelt", " Kiemelt"])
def test_menu_label_is_sent_as_vipex_spells_it(value: str) -> None:
    """Issue 9 item 10: VIPeX accepts only its own spelling, spaces included."""
    field = CustomField(9, "Típus", "menu", (CustomFieldOption(1, " Kiemelt "),))
    mapping = compile_mapping(config(custom_fields={"Típus": "{s}"}), (field,), job="crm")
    result = run(rec("1", phone="06 1 999 6000", s=value), mapping=mapping)
    assert result.desired["3619996000"].entry.custom_fields[9] == " Kiemelt "


@pytest.mark.parametrize(
    ("ext", "sent"),
    [
        ("123", "123"),
        ("123,456", "123,456"),
        ("123 , 456", "123,456"),
        ("1,2, 3", "1,2,3"),
        ("", ""),
    ],
)
def test_number_sequences_are_normalised(ext: str, sent: str) -> None:
    result = run(rec("1", phone="06 1 999 6000", ext=ext))
    assert result.desired["3619996000"].entry.custom_fields[3] == sent
    assert result.problems == ()


@pytest.mark.parametrize("ext", ["12;34", "12 34", "12,", ",12", "12a", "١٢٣", "-5", "1.5"])
def test_bad_number_sequences_drop_the_field(ext: str) -> None:
    result = run(rec("1", phone="06 1 999 6000", ext=ext))
    assert 3 not in result.desired["3619996000"].entry.custom_fields
    problem = only(result, "bad_custom_field")
    assert problem.field == "Mellékek"
    assert "'123,456'" in problem.reason


def test_text_fields_take_anything_and_empty_clears() -> None:
    mapping = compiled(custom_fields={"Ügyfélkód": "{code}"})
    result = run(
        rec("1", phone="06 1 999 6000", code="ÁÉ-12, «x»"),
        rec("2", phone="06 1 999 6001"),
        mapping=mapping,
    )
    assert result.desired["3619996000"].entry.custom_fields == {1: "ÁÉ-12, «x»"}
    assert result.desired["3619996001"].entry.custom_fields == {1: ""}


# ------------------------------------------------------------------ duplicates


@pytest.mark.parametrize(
    ("keys", "winner"),
    [
        (["10", "9"], "9"),  # digits compare as integers
        (["007", "8"], "007"),
        (["b", "a"], "a"),
        (["a", "B"], "B"),  # strings compare as strings
        (["x1", "99"], "99"),  # all-digit keys sort before other keys
        (["C-3", "C-10"], "C-10"),
    ],
)
def test_the_lowest_key_keeps_a_shared_number(keys: list[str], winner: str) -> None:
    records = [rec(k, phone="06 1 999 6000") for k in keys]
    for ordered in (records, records[::-1]):
        result = run(*ordered)
        assert result.desired["3619996000"].record_key == winner
        problem = only(result, "duplicate_number")
        assert problem.record_key != winner
        assert problem.phonenumber == "3619996000"
        assert problem.fatal
        assert repr(winner) in problem.reason


def test_every_loser_names_the_final_winner() -> None:
    result = run(*(rec(k, phone="06 1 999 6000") for k in ["3", "2", "1"]))
    losers = [p for p in result.problems if p.code == "duplicate_number"]
    assert [p.record_key for p in losers] == ["2", "3"]
    assert all("record '1'" in p.reason for p in losers)


def test_a_duplicate_loses_only_the_shared_number() -> None:
    result = run(
        rec("1", phone="06 1 999 6000"),
        rec("2", phone="06 1 999 6000", mobile="06 30 123 4567"),
    )
    assert result.desired["3619996000"].record_key == "1"
    assert result.desired["36301234567"].record_key == "2"
    assert only(result, "duplicate_number").field == "phone"


def test_a_key_used_twice_rejects_both_records() -> None:
    result = run(
        rec("1", locator="line 2", phone="06 1 999 6000"),
        rec("1", locator="line 9", phone="06 30 123 4567"),
        rec("2", phone="06 1 999 6001"),
    )
    assert list(result.desired) == ["3619996001"]
    problems = [p for p in result.problems if p.code == "duplicate_key"]
    assert [p.value for p in problems] == ["line 2", "line 9"]
    assert all("line 2, line 9" in p.reason for p in problems)


def test_key_order_is_total() -> None:
    keys = ["2", "10", "1a", "a", "B", "007", "7", ""]
    assert sorted(keys, key=key_order) == ["2", "007", "7", "10", "", "1a", "B", "a"]


# ---------------------------------------------------------------- the result


def test_counts_and_codes() -> None:
    result = run(
        rec("1", phone="06 1 999 6000"),
        rec("2", phone="06 1 999 6000"),
        rec("3", phone="bad"),
        rec("4", phone="06 1 999 6002", status="nope"),
        rec("", locator="line 99"),
    )
    assert result.records == 5
    assert result.rejected_by_code() == {
        "duplicate_number": 1,
        "invalid_phone": 1,
        "bad_custom_field": 1,
        "missing_key": 1,
    }
    assert list(result.desired) == sorted(result.desired)


def test_gc_is_switched_back_on_even_when_the_source_fails() -> None:
    def failing() -> Iterator[SourceRecord]:
        yield rec("1", phone="06 1 999 6000")
        raise SourceError("the CRM went away")

    assert gc.isenabled()
    with pytest.raises(SourceError):
        map_records(failing(), compiled(), region="HU", ownership_tag="")
    assert gc.isenabled()
