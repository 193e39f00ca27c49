"""The probe's reading of VIPeX's answers: a pure function over recorded answers."""

from __future__ import annotations

import unicodedata
from dataclasses import replace

import pytest

from vipexsync.errors import UsageError
from vipexsync.probe import (
    CREATE_NAME,
    LONG_NAME,
    NON_NFC_NAME,
    PADDED_NAME,
    PROBE_COMMENT,
    PROBE_TAG,
    UPDATED_NAME,
    ProbeAnswers,
    check_probe_number,
    interpret,
)
from vipexsync.semantics import Omission, WriteSemantics
from vipexsync.vipex.models import CustomFieldValue, PhonebookEntry

NUMBER = "442079460999"
SENT = ((1, "opt1"), (19, "vipexsync probe"))
MISSING = "A telefonszám nem szerepel a telefonkönyvben: 442079460999"


def entry(
    name: str, comment: str = PROBE_COMMENT, fields: dict[int, str] | None = None
) -> PhonebookEntry:
    values = dict(SENT) if fields is None else fields
    return PhonebookEntry(
        NUMBER,
        name,
        (PROBE_TAG,),
        comment,
        tuple(CustomFieldValue(fid, value) for fid, value in sorted(values.items())),
    )


# What a service that keeps omitted fields and stores text as sent answers.
KEEPING = ProbeAnswers(
    sent_fields=SENT,
    left_out_field=1,
    created=entry(CREATE_NAME),
    omitted=entry(UPDATED_NAME),
    emptied=entry(CREATE_NAME, comment=""),
    padded=entry(PADDED_NAME),
    non_nfc=entry(NON_NFC_NAME),
    long=entry(LONG_NAME),
    not_found=MISSING,
)

# ... and one that replaces the whole entry, trims, normalises and cuts at 64.
CLEARING = replace(
    KEEPING,
    omitted=entry(UPDATED_NAME, comment="", fields={19: "vipexsync probe"}),
    padded=entry(PADDED_NAME.strip()),
    non_nfc=entry(unicodedata.normalize("NFC", NON_NFC_NAME)),
    long=entry(LONG_NAME[:64]),
)


def test_a_service_that_keeps_and_stores_as_sent() -> None:
    result = interpret(KEEPING)
    assert result.semantics == WriteSemantics(Omission.KEEP)
    assert f"a missing number is answered: {MISSING}" in result.notes


def test_a_service_that_clears_trims_normalises_and_cuts() -> None:
    result = interpret(CLEARING)
    assert result.semantics == WriteSemantics(Omission.CLEAR, True, True, 64)
    assert "names are cut at 64 characters" in result.notes


@pytest.mark.parametrize(
    ("omitted", "expected"),
    [
        # only the custom field is cleared: that alone would wipe unmanaged fields
        (entry(UPDATED_NAME, fields={19: "vipexsync probe"}), Omission.CLEAR),
        # only the comment is cleared
        (entry(UPDATED_NAME, comment=""), Omission.CLEAR),
    ],
)
def test_any_cleared_field_means_clear(omitted: PhonebookEntry, expected: Omission) -> None:
    assert interpret(replace(KEEPING, omitted=omitted)).semantics.omitted is expected


def test_without_custom_fields_the_comment_decides() -> None:
    bare = replace(
        KEEPING,
        sent_fields=(),
        left_out_field=None,
        created=entry(CREATE_NAME, fields={}),
        omitted=entry(UPDATED_NAME, comment="", fields={}),
    )
    result = interpret(bare)
    assert result.semantics.omitted is Omission.CLEAR
    assert any("no custom field" in note for note in result.notes)


def test_nothing_stored_as_sent_leaves_the_rule_unknown() -> None:
    odd = replace(
        KEEPING,
        sent_fields=(),
        left_out_field=None,
        created=entry(CREATE_NAME, comment="?", fields={}),
        omitted=entry(UPDATED_NAME, comment="?", fields={}),
    )
    assert interpret(odd).semantics.omitted is Omission.UNKNOWN


def test_refused_values_are_noted_not_guessed() -> None:
    refused = replace(KEEPING, padded="túl hosszú", long="Hibás paraméter: name")
    result = interpret(refused)
    assert result.semantics == WriteSemantics(Omission.KEEP)
    assert any("refused the padded name: túl hosszú" in note for note in result.notes)
    assert any("316-character name: Hibás paraméter" in note for note in result.notes)


def test_an_unrecognised_rewrite_is_not_taken_for_a_rule() -> None:
    weird = replace(KEEPING, padded=entry("VIPEXSYNC PROBE"), long=entry("something else"))
    result = interpret(weird)
    assert result.semantics == WriteSemantics(Omission.KEEP)
    assert sum("not understood" in note for note in result.notes) == 2


def test_an_empty_string_that_does_not_clear_is_reported() -> None:
    result = interpret(replace(KEEPING, emptied=entry(CREATE_NAME)))
    assert any('comment = "" did not clear it' in note for note in result.notes)


@pytest.mark.parametrize("number", ["442079460999", "+442079460999", "3619996000"])
def test_valid_probe_numbers(number: str) -> None:
    assert check_probe_number(number) == number.lstrip("+")


@pytest.mark.parametrize("number", ["447700900999", "123", "36-1-999-6000", "", "0036123"])
def test_invalid_probe_numbers_are_refused(number: str) -> None:
    with pytest.raises(UsageError, match="not a valid international number"):
        check_probe_number(number)
