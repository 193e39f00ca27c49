"""Several numbers in one value: separators, and extensions that stay extensions."""

from __future__ import annotations

import pytest

from vipexsync.phone import PhoneError, PhoneNormalizer, split_phone_list

HU = PhoneNormalizer("HU")


def is_number(text: str) -> bool:
    return not isinstance(HU.normalize(text), PhoneError)


def numbers(raw: str) -> list[str]:
    out = []
    for piece in split_phone_list(raw, is_number):
        result = HU.normalize(piece)
        out.append(result.reason if isinstance(result, PhoneError) else result.number)
    return out


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+36 1 234 5678 ::: +36 30 123 4567", ["3612345678", "36301234567"]),
        ("+36 1 234 5678:::06 30 123 4567", ["3612345678", "36301234567"]),
        ("+36 1 234 5678\n+36 30 123 4567", ["3612345678", "36301234567"]),
        ("+36 1 234 5678\r\n\r\n06 20 555 0101", ["3612345678", "36205550101"]),
        ("+36 1 234 5678, +36 30 123 4567", ["3612345678", "36301234567"]),
        ("+36 1 234 5678; 06 30 123 4567", ["3612345678", "36301234567"]),
        ("+36 1 234 5678 / +36 30 123 4567", ["3612345678", "36301234567"]),
        ("06-30/123-4567, 06-1/234-5678", ["36301234567", "3612345678"]),
        ("06-30/123-4567", ["36301234567"]),  # one Hungarian number, slash and all
        ("+36 1 234 5678/12", ["3612345678"]),  # an extension, not a second number
        ("+36 1 234 5678, 12", ["3612345678"]),
        ("+36 1 234 5678/12 ::: 06 30 123 4567", ["3612345678", "36301234567"]),
    ],
)
def test_split(raw: str, expected: list[str]) -> None:
    assert numbers(raw) == expected


def test_an_extension_after_a_number_is_noted_as_dropped() -> None:
    [piece] = split_phone_list("+36 1 234 5678/12", is_number)
    result = HU.normalize(piece)
    assert not isinstance(result, PhoneError)
    assert result.note is not None
    assert "extension 12" in result.note


def test_a_bad_piece_is_returned_as_written_so_its_error_names_it() -> None:
    assert split_phone_list("+36 1 234 5678 ::: hello", is_number) == ["+36 1 234 5678", "hello"]
