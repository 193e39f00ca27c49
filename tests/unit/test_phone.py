"""Phone number normalisation: real-world formats, rejections, and the fast path."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vipexsync.phone import (
    INVALID_PHONE,
    PhoneError,
    PhoneNormalizer,
    _fast_parse,
    _is_valid,
    normalize_phone,
)

# (raw value, region, expected VIPeX number, expected extension in the note or None)
VALID = [
    # Budapest landline, every way Hungarians write it
    ("06-1-999-6000", "HU", "3619996000", None),
    ("06 1 999 6000", "HU", "3619996000", None),
    ("06 (1) 999-6000", "HU", "3619996000", None),
    ("(06 1) 999 6000", "HU", "3619996000", None),
    ("06-1/999-6000", "HU", "3619996000", None),
    ("+36 (1) 999 6000", "HU", "3619996000", None),
    ("+36-1-999-6000", "HU", "3619996000", None),
    ("+361 999 6000", "HU", "3619996000", None),
    ("(+36) 1 999 6000", "HU", "3619996000", None),
    ("0036 1 999 6000", "HU", "3619996000", None),
    ("36 1 999 6000", "HU", "3619996000", None),
    ("3619996000", "HU", "3619996000", None),
    ("+3619996000", "HU", "3619996000", None),
    ("tel:+36-1-999-6000", "HU", "3619996000", None),
    # Decision: a Budapest number without the 06 trunk prefix is still Budapest.
    ("1/999-6000", "HU", "3619996000", None),
    ("06.1.999.6000", "HU", "3619996000", None),
    ("06\u20131\u2013999\u20136000", "HU", "3619996000", None),  # en dashes
    ("\uff10\uff16 \uff11 \uff19\uff19\uff19 \uff16\uff10\uff10\uff10", "HU", "3619996000", None),
    ("06\u00a01\u00a0999\u00a06000", "HU", "3619996000", None),  # no-break spaces
    ("  06 1 999 6000  ", "HU", "3619996000", None),
    # mobiles
    ("+36 30 123 4567", "HU", "36301234567", None),
    ("06-30/123-4567", "HU", "36301234567", None),
    ("06 20 999 9999", "HU", "36209999999", None),
    ("06 70 123 4567", "HU", "36701234567", None),
    ("+36 70 1234567", "HU", "36701234567", None),
    # county landlines, toll-free
    ("06 22 123 456", "HU", "3622123456", None),
    ("06-21-200-1234", "HU", "36212001234", None),
    ("06 80 123 456", "HU", "3680123456", None),
    # international
    ("+49 30 1234567", "HU", "49301234567", None),
    ("0049 30 1234567", "HU", "49301234567", None),
    ("00 44 20 7946 0958", "HU", "442079460958", None),
    ("+44 (0) 20 7946 0958", "HU", "442079460958", None),
    ("+43 1 53115 0", "HU", "431531150", None),
    ("+33 1 42 68 53 00", "HU", "33142685300", None),
    ("+39 06 6982 1234", "HU", "390669821234", None),  # Italy keeps its leading 0
    ("+1 (212) 555-0123", "HU", "12125550123", None),
    ("+44 7911 123456", "HU", "447911123456", None),
    ("+7 495 123-45-67", "HU", "74951234567", None),
    # other default regions
    ("030 1234567", "DE", "49301234567", None),
    ("(212) 555-0123", "US", "12125550123", None),
    ("020 7946 0958", "GB", "442079460958", None),
    # vanity
    ("+1 800 FLOWERS", "HU", "18003569377", None),
    ("1-800-FLOWERS", "US", "18003569377", None),
    # extensions: dropped with a note
    ("+36 1 999 6000 ext. 123", "HU", "3619996000", "123"),
    ("06 1 999 6000 m. 12", "HU", "3619996000", "12"),
    ("06 1 999 6000 mellék 12", "HU", "3619996000", "12"),
    ("06 1 999 6000 mell. 42", "HU", "3619996000", "42"),
    ("06 1 999 6000 (mellék: 123)", "HU", "3619996000", "123"),
    ("06 1 999 6000 12 mellék", "HU", "3619996000", "12"),
    ("06 30 123 4567 x12", "HU", "36301234567", "12"),
    ("06 1 999 6000 #123", "HU", "3619996000", "123"),
    ("+36 1 999 6000;ext=12", "HU", "3619996000", "12"),
    ("+1 (212) 555-0123 x 45", "HU", "12125550123", "45"),
    ("+1 (212) 555-0123 extension 45", "HU", "12125550123", "45"),
]

# (raw value, region, words the reason must contain)
INVALID = [
    ("06-1-99", "HU", ["'06-1-99'", "too short", "region HU"]),
    ("999-6000", "HU", ["local number without its area code"]),
    ("06-1-999-6000/123", "HU", ["too long"]),  # "/" is not an extension marker
    ("+36 1 999 60000", "HU", ["possible length", "not a valid number"]),
    ("+36 30 123 456", "HU", ["possible length", "not a valid number"]),  # a digit short
    ("ext. 12", "HU", ["only an extension"]),
    ("mellék 12", "HU", ["only an extension"]),
    ("m. 12", "HU", ["only an extension"]),
    ("06 30 123 4567 mobil", "HU", ["letters", "'mobil'"]),
    ("06 1 999 6000 (otthon)", "HU", ["letters", "'otthon'"]),
    ("1-800-FLOWERS", "HU", ["letters", "not a valid vanity number"]),
    ("call me", "HU", ["no digits"]),
    (" - ", "HU", ["no digits"]),
    ("()", "HU", ["no digits"]),
    ("06 1 999 6000, 06 30 123 4567", "HU", ["','"]),
    ("06 1 999 6000; 06 30 123 4567", "HU", ["';'"]),
    ("06 1 999+6000", "HU", ["'+' inside"]),
    ("+999 123 456 789", "HU", ["unknown country code"]),
    ("112", "HU", ["too short"]),
    ("1" * 300, "HU", ["too long"]),
    ("06 1 999 6000 \u260e", "HU", ["'\u260e'"]),
]


@pytest.mark.parametrize(("raw", "region", "number", "ext"), VALID)
def test_normalises_real_world_formats(raw: str, region: str, number: str, ext: str | None) -> None:
    result = normalize_phone(raw, region)
    assert result.number == number
    if ext is None:
        assert result.note is None
    else:
        assert result.note is not None
        assert f"extension {ext} " in result.note
        assert number in result.note


@pytest.mark.parametrize(("raw", "region", "words"), INVALID)
def test_rejects_with_a_specific_reason(raw: str, region: str, words: list[str]) -> None:
    with pytest.raises(PhoneError) as info:
        normalize_phone(raw, region)
    assert info.value.code == INVALID_PHONE
    for word in words:
        assert word in info.value.reason


def test_the_table_is_large_enough() -> None:
    assert len(VALID) + len(INVALID) >= 30


def test_normalizer_caches_and_agrees_with_the_function() -> None:
    normalizer = PhoneNormalizer("HU")
    first = normalizer.normalize("06 1 999 6000")
    assert first == normalize_phone("06 1 999 6000", "HU")
    assert normalizer.normalize("06 1 999 6000") is first
    assert isinstance(normalizer.normalize("06-1-99"), PhoneError)


def test_normalizer_refuses_an_unknown_region() -> None:
    with pytest.raises(ValueError, match="XX"):
        PhoneNormalizer("XX")


def _reference(cleaned: str, region: str) -> str | None:
    """What phonenumbers itself says: the E.164 digits of a valid number, or None."""
    try:
        parsed = phonenumbers.parse(cleaned, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)[1:]


PREFIXES = ["", "+", "00", "0", "06", "36", "+36", "0036", "011", "8", "1", "+1", "+44", "+39"]


@settings(max_examples=1500, deadline=None)
@given(
    prefix=st.sampled_from(PREFIXES),
    digits=st.text(alphabet="0123456789", min_size=1, max_size=13),
    region=st.sampled_from(["HU", "DE", "US", "GB", "IT", "RU", "BR", "AR", "FR"]),
)
def test_fast_path_agrees_with_phonenumbers(prefix: str, digits: str, region: str) -> None:
    cleaned = prefix + digits
    fast = _fast_parse(cleaned, region)
    if fast is not None:
        assert fast == _reference(cleaned, region)
    # And the whole normaliser: accepted exactly when phonenumbers says valid.
    expected = _reference(cleaned, region)
    try:
        got: str | None = normalize_phone(cleaned, region).number
    except PhoneError:
        got = None
    assert got == expected


def _example_numbers() -> list[phonenumbers.PhoneNumber]:
    found = []
    kinds = [
        phonenumbers.PhoneNumberType.FIXED_LINE,
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.TOLL_FREE,
        phonenumbers.PhoneNumberType.PREMIUM_RATE,
        phonenumbers.PhoneNumberType.VOIP,
    ]
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in kinds:
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None:
                found.append(example)
    return found


def test_fast_validity_matches_phonenumbers_on_every_example_number() -> None:
    checked = 0
    for number in _example_numbers():
        nsn = phonenumbers.national_significant_number(number)
        cc = number.country_code
        assert cc is not None
        if nsn.startswith("0"):
            continue  # never reaches the fast validator
        assert _is_valid(cc, nsn) == phonenumbers.is_valid_number(number)
        # One digit more or less usually breaks the number; both must agree.
        for variant in (nsn[:-1], nsn + "5"):
            if len(variant) < 2:
                continue
            other = phonenumbers.PhoneNumber(
                country_code=number.country_code, national_number=int(variant)
            )
            expected = phonenumbers.is_valid_number(other)
            assert _is_valid(cc, variant) == expected, (number, variant)
        checked += 1
    assert checked > 500


def test_every_example_number_normalises_from_international_form() -> None:
    for number in _example_numbers():
        text = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        expected = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]
        assert normalize_phone(text, "HU").number == expected, text


@settings(max_examples=300, deadline=None)
@given(raw=st.text(max_size=60))
def test_arbitrary_text_never_crashes(raw: str) -> None:
    result = PhoneNormalizer("HU").normalize(raw)
    if isinstance(result, PhoneError):
        assert result.code == INVALID_PHONE
        assert result.reason.startswith("phone ")
    else:
        assert result.number.isdigit()
        assert not result.number.startswith("0")
