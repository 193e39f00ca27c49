"""Phone number normalisation into VIPeX's form: E.164 digits without ``+``.

Numbers come from CRM fields typed by people: ``06-30/123-4567``,
``+36 (1) 999 6000 mellék 12``, ``00 44 20 7946 0958``. ``phonenumbers``
decides what is a real number; this module adds what a phonebook sync needs
around it:

- an extension suffix (``ext. 12``, ``x12``, ``#12``, ``m. 12``, ``mellék 12``,
  ``12 mellék``) is cut off and reported as a note, because a VIPeX phonebook
  number cannot hold one; a ``/`` is *not* an extension marker, since
  Hungarians write ``06-30/123-4567``;
- letters are accepted only when the value reads as a vanity number
  (``+1 800 FLOWERS``) that turns into a valid number;
- a number must be both *possible* (right length) and *valid* (an assigned
  range) for its country, and a rejection says which test failed.

Parsing with ``phonenumbers.parse`` costs ~20 µs, too slow for 100k records, so
plain digit strings take a fast path that repeats the exact steps ``parse``
takes for them, using the library's own metadata, and falls back to ``parse``
whenever a step would need anything subtler (carrier codes, prefix transform
rules, leading zeros, ambiguous country codes). A property test checks that
both paths always agree.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

import phonenumbers
from phonenumbers import NumberParseException, PhoneMetadata, PhoneNumber, ValidationResult

INVALID_PHONE: Final = "invalid_phone"
EXTENSION_DROPPED: Final = "extension_dropped"

_MAX_INPUT: Final = 250  # phonenumbers refuses longer strings outright

# Dashes, minus signs and the like that people paste from word processors.
_DASHES: Final = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63"), "-")

# An extension at the end: a marker, then the digits ("ext. 12", "x12",
# "#12", "m. 12", "mellék: 12", "(ext 12)"), or the Hungarian "12 mellék".
_EXT_MARKERS: Final = r"(?:extension|extn|ext|x|\#|mellék|mell|m)"
_EXT_BEFORE: Final = re.compile(
    rf"^(?P<main>.*?)[\s,;/-]*\(?\s*(?<![A-Za-z]){_EXT_MARKERS}\.?\s*[:=.]?\s*"
    r"(?P<ext>[0-9]{1,7})\s*\)?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_EXT_AFTER: Final = re.compile(
    r"^(?P<main>.*?[0-9)].*?)[\s,;/-]*\(?\s*(?P<ext>[0-9]{1,7})\s*-?\s*"
    r"(?:mellék|mell\.)\s*\)?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_RFC3966_EXT: Final = re.compile(r"^(?P<main>.*?);ext=(?P<ext>[0-9]{1,7})$", re.IGNORECASE)
_TEL_PREFIX: Final = re.compile(r"^tel:\s*", re.IGNORECASE)

_SIMPLE: Final = re.compile(r"^[0-9+\s().\-/]+$")
_ALLOWED: Final = re.compile(r"^[0-9A-Za-z+\s().\-/]*$")
_SEPARATORS: Final = re.compile(r"[\s().\-/]+")
_PLAIN: Final = re.compile(r"^\+?[0-9]+$")
# Vanity numbers: digits first, then letters mixed with digits ("1-800-FLOWERS").
_VANITY: Final = re.compile(r"^\+?[0-9\s().\-/]*[0-9][0-9\s().\-/]*[A-Za-z][A-Za-z0-9\s.\-]*$")
_LETTERS: Final = re.compile(r"[A-Za-z]+")


# Several numbers in one value: Google's " ::: " and line breaks always
# separate numbers; ",", ";" and "/" do only when the whole value is not one
# number ("06-30/123-4567" is one Hungarian number).
_HARD_SEPARATORS: Final = re.compile(r"\s*:::\s*|[\r\n]+")
_SOFT_SEPARATORS: Final = re.compile(r"\s*[,;]\s*")
_SLASH: Final = re.compile(r"\s*/\s*")
_MIN_NUMBER_DIGITS: Final = 6  # fewer digits after a number: its extension


class PhoneError(ValueError):
    """A value that cannot become a phonebook number; ``reason`` says why."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class NormalizedPhone:
    """A number in VIPeX's form, and a note when something was dropped."""

    number: str
    note: str | None = None


def normalize_phone(raw: str, region: str) -> NormalizedPhone:
    """Turn one CRM phone value into VIPeX's form, or raise :class:`PhoneError`."""
    result = _normalize(raw, region)
    if isinstance(result, PhoneError):
        raise result
    return result


def check_region(region: str) -> bool:
    """True if ``phonenumbers`` knows the two-letter region (``HU``, ``DE``...)."""
    return region in phonenumbers.SUPPORTED_REGIONS


class PhoneNormalizer:
    """Normalises numbers for one region, remembering results for one run.

    The cache maps the raw value to its result, which depends only on the raw
    value and the region, so it is always correct; it is dropped with the
    normaliser at the end of the run.
    """

    def __init__(self, region: str) -> None:
        if not check_region(region):
            raise ValueError(f"unknown phone region {region!r}")
        self.region = region
        self._cache: dict[str, NormalizedPhone | PhoneError] = {}

    def normalize(self, raw: str) -> NormalizedPhone | PhoneError:
        """The result for ``raw``: a number, or the error that rejects it."""
        cached = self._cache.get(raw)
        if cached is None:
            cached = _normalize(raw, self.region)
            self._cache[raw] = cached
        return cached


def is_phone_list(raw: str) -> bool:
    """True if ``raw`` holds numbers separated by " ::: " or line breaks."""
    return ":::" in raw or "\n" in raw or "\r" in raw


def split_phone_list(raw: str, is_number: Callable[[str], bool]) -> list[str]:
    """The numbers in one value, each as written (an extension kept with its number).

    " ::: " and line breaks always separate; then a piece that ``is_number``
    refuses is split on ",", ";" and, failing that, "/". A piece with fewer
    than six digits after a number is that number's extension ("+36 1 234
    5678/12" is one number with extension 12), written back as "ext. 12" so
    the normaliser drops and notes it. Pieces that split no further are
    returned as they are, so their error names them.
    """
    pieces: list[str] = []
    for chunk in _HARD_SEPARATORS.split(raw):
        chunk = chunk.strip()
        if not chunk:
            continue
        if is_number(chunk):
            pieces.append(chunk)
            continue
        split = _attach_extensions([p for p in _SOFT_SEPARATORS.split(chunk) if p.strip()])
        finer: list[str] = []
        for piece in split:
            if is_number(piece):
                finer.append(piece)
                continue
            by_slash = _attach_extensions([p for p in _SLASH.split(piece) if p.strip()])
            if by_slash != [piece] and all(is_number(p) for p in by_slash):
                finer.extend(by_slash)
            else:
                finer.append(piece)
        pieces.extend(finer)
    return pieces


def _attach_extensions(pieces: list[str]) -> list[str]:
    out: list[str] = []
    for piece in pieces:
        digits = sum(c.isdigit() for c in piece)
        if out and 0 < digits < _MIN_NUMBER_DIGITS and not piece.lstrip().startswith("+"):
            out[-1] = f"{out[-1]} ext. {''.join(c for c in piece if c.isdigit())}"
        else:
            out.append(piece.strip())
    return out


def _fail(raw: str, why: str) -> PhoneError:
    return PhoneError(INVALID_PHONE, f"phone {raw!r} {why}")


def _normalize(raw: str, region: str) -> NormalizedPhone | PhoneError:
    if len(raw) > _MAX_INPUT:
        return _fail(raw[:40] + "...", f"is too long ({len(raw)} characters)")
    text = raw if raw.isascii() else unicodedata.normalize("NFKC", raw).translate(_DASHES)
    if _SIMPLE.match(text):
        # The common case, digits and punctuation only: try the fast path first.
        cleaned = _SEPARATORS.sub("", text)
        if _PLAIN.match(cleaned):
            fast = _fast_parse(cleaned, region)
            if fast is not None:
                return NormalizedPhone(number=fast)
    text = " ".join(text.split())
    ext: str | None = None
    if _SIMPLE.match(text):
        main = text  # the common case: nothing but digits and punctuation
    else:
        text = _TEL_PREFIX.sub("", text)
        if not text:
            return _fail(raw, "is empty")
        main, ext = _split_extension(text)
        if ext is not None and not any(c.isdigit() for c in main):
            return _fail(raw, f"is only an extension ({ext}), with no number before it")
        if not _ALLOWED.match(main):
            bad = next(c for c in main if not _ALLOWED.match(c))
            return _fail(raw, f"contains {bad!r}, which does not belong in a phone number")
    if "+" in main.lstrip("( ")[1:]:
        return _fail(raw, "has a '+' inside the number; only a leading '+' is allowed")
    if not any(c.isdigit() for c in main):
        return _fail(raw, "contains no digits")

    letters = _LETTERS.findall(main)
    if letters:
        parsed = _parse_vanity(raw, main, region, letters)
    else:
        cleaned = _SEPARATORS.sub("", main)
        if not _PLAIN.match(cleaned):
            return _fail(raw, "does not look like a phone number")
        fast = _fast_parse(cleaned, region)
        if fast is not None:
            return NormalizedPhone(number=fast, note=_ext_note(raw, ext, fast))
        parsed = _parse_slow(raw, cleaned, region)
    if isinstance(parsed, PhoneError):
        return parsed

    if parsed.extension:
        ext = parsed.extension
        parsed = PhoneNumber(
            country_code=parsed.country_code, national_number=parsed.national_number
        )
    number = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)[1:]
    return NormalizedPhone(number=number, note=_ext_note(raw, ext, number))


def _ext_note(raw: str, ext: str | None, number: str) -> str | None:
    if ext is None:
        return None
    return (
        f"extension {ext} of phone {raw!r} dropped: a VIPeX phonebook number "
        f"cannot hold an extension, {number} is synced"
    )


def _split_extension(text: str) -> tuple[str, str | None]:
    """Cut a trailing extension off ``text``: (the rest, the extension or None)."""
    for pattern in (_RFC3966_EXT, _EXT_BEFORE, _EXT_AFTER):
        m = pattern.match(text)
        if m:
            return m.group("main").strip(), m.group("ext")
    return text, None


def _parse_vanity(raw: str, main: str, region: str, letters: list[str]) -> PhoneNumber | PhoneError:
    words = ", ".join(repr(w) for w in letters)
    if not _VANITY.match(main) or sum(map(len, letters)) < 3:
        return _fail(raw, f"contains letters ({words}) and is not a vanity number")
    parsed = _parse_slow(raw, main, region)
    if isinstance(parsed, PhoneError):
        return _fail(raw, f"contains letters ({words}) and is not a valid vanity number")
    return parsed


def _where(number: PhoneNumber) -> str:
    region = phonenumbers.region_code_for_number(number)
    if region and region != "ZZ":
        return f"region {region}"
    return f"country code +{number.country_code}"


_PARSE_REASONS: Final = {
    NumberParseException.INVALID_COUNTRY_CODE: "has an unknown country code",
    NumberParseException.NOT_A_NUMBER: "does not look like a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "is too short after the international prefix",
    NumberParseException.TOO_SHORT_NSN: "is too short",
    NumberParseException.TOO_LONG: "is too long",
}


def _parse_slow(raw: str, text: str, region: str) -> PhoneNumber | PhoneError:
    """Parse with ``phonenumbers.parse`` and check possible, then valid."""
    try:
        parsed = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        why = _PARSE_REASONS.get(exc.error_type, "cannot be parsed")
        return _fail(raw, f"{why} for region {region}")
    possible = phonenumbers.is_possible_number_with_reason(parsed)
    where = _where(parsed)
    if possible == ValidationResult.TOO_SHORT:
        return _fail(raw, f"is too short for {where}")
    if possible == ValidationResult.TOO_LONG:
        return _fail(raw, f"is too long for {where}")
    if possible == ValidationResult.INVALID_COUNTRY_CODE:
        return _fail(raw, "has an unknown country code")
    if possible == ValidationResult.IS_POSSIBLE_LOCAL_ONLY:
        return _fail(raw, f"is a local number without its area code ({where})")
    if possible != ValidationResult.IS_POSSIBLE:
        return _fail(raw, f"has a length no number in {where} has")
    if not phonenumbers.is_valid_number(parsed):
        return _fail(
            raw,
            f"has a possible length but is not a valid number for {where} "
            "(no assigned number range starts like this)",
        )
    return parsed


@dataclass(frozen=True, slots=True)
class _RegionRules:
    """The parts of a region's metadata that ``parse`` consults for plain digits."""

    country_code: int
    country_code_digits: str
    idd: re.Pattern[str] | None
    national_prefix: re.Pattern[str] | None
    simple: bool  # no prefix transform rule


_RULES: dict[str, _RegionRules | None] = {}
_CC_RULES: dict[int, _RegionRules | None] = {}


def _rules_for(metadata: PhoneMetadata | None) -> _RegionRules | None:
    if metadata is None or metadata.country_code is None:
        return None
    npfp = metadata.national_prefix_for_parsing
    return _RegionRules(
        country_code=metadata.country_code,
        country_code_digits=str(metadata.country_code),
        idd=re.compile(metadata.international_prefix) if metadata.international_prefix else None,
        national_prefix=re.compile(npfp) if npfp else None,
        simple=not metadata.national_prefix_transform_rule,
    )


def _region_rules(region: str) -> _RegionRules | None:
    if region not in _RULES:
        _RULES[region] = _rules_for(PhoneMetadata.metadata_for_region(region, None))
    return _RULES[region]


def _cc_rules(country_code: int) -> _RegionRules | None:
    if country_code not in _CC_RULES:
        main_region = phonenumbers.region_code_for_country_code(country_code)
        meta = PhoneMetadata.metadata_for_region_or_calling_code(country_code, main_region)
        _CC_RULES[country_code] = _rules_for(meta)
    return _CC_RULES[country_code]


def _fast_parse(cleaned: str, region: str) -> str | None:
    """What ``parse`` + validation give for a plain digit string, or None to fall back.

    Returns the E.164 digits of a valid number; anything unusual, and every
    invalid number, goes to the slow path, which explains the rejection.
    """
    rules = _region_rules(region)
    if rules is None:
        return None
    digits: str | None = None
    if cleaned.startswith("+"):
        digits = cleaned[1:]
    elif rules.idd is not None:
        m = rules.idd.match(cleaned)
        if m:
            after = cleaned[m.end() :]
            if not after or after[0] == "0":
                return None
            digits = after
    if digits is not None:
        # International: the country code, then the national significant number.
        if not digits or digits[0] == "0":
            return None
        for size in (1, 2, 3):
            cc = int(digits[:size]) if len(digits) > size else 0
            if cc in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
                break
        else:
            return None
        nsn = digits[size:]
        cc_rules = _cc_rules(cc)
        if cc_rules is None:
            return None
        if cc_rules.national_prefix is not None and cc_rules.national_prefix.match(nsn):
            return None
        country_code = cc
    else:
        # National: maybe a trunk prefix ("06"), then the number.
        if cleaned.startswith(rules.country_code_digits):
            return None  # parse may read these digits as a country code
        nsn = cleaned
        if rules.national_prefix is not None:
            m = rules.national_prefix.match(cleaned)
            if m:
                if not rules.simple or m.lastindex is not None:
                    return None
                nsn = cleaned[m.end() :]
        country_code = rules.country_code
    if len(nsn) < 2 or len(nsn) > 17 or nsn[0] == "0":
        return None
    if not _is_valid(country_code, nsn):
        return None
    return f"{country_code}{nsn}"


@dataclass(frozen=True, slots=True)
class _Validator:
    """``is_valid_number`` for one single-region country code, precompiled.

    A number is valid when it matches the general description and at least
    one number type (fixed line, mobile, toll free, ...), each checked for
    length and pattern, as ``phonenumbers`` does; the type patterns are joined
    into one regex per length.
    """

    general_lengths: frozenset[int]
    general: re.Pattern[str]
    by_length: Mapping[int, re.Pattern[str]]

    def valid(self, nsn: str) -> bool:
        size = len(nsn)
        if self.general_lengths and size not in self.general_lengths:
            return False
        if not self.general.fullmatch(nsn):
            return False
        combined = self.by_length.get(size)
        return combined is not None and combined.fullmatch(nsn) is not None


_TYPE_DESCS: Final = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
    "mobile",
)
_VALIDATORS: dict[int, _Validator | None] = {}


def _build_validator(country_code: int) -> _Validator | None:
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code, ())
    if len(regions) != 1 or regions[0] == "001":
        return None  # several regions share the code: let phonenumbers pick
    meta = PhoneMetadata.metadata_for_region(regions[0], None)
    if meta is None or meta.general_desc is None:
        return None
    general = meta.general_desc
    if not general.national_number_pattern:
        return None
    lengths: dict[int, list[str]] = {}
    for name in _TYPE_DESCS:
        desc = getattr(meta, name, None)
        if desc is None or not desc.national_number_pattern:
            continue
        sizes = desc.possible_length or tuple(range(1, 18))
        for size in sizes:
            lengths.setdefault(size, []).append(f"(?:{desc.national_number_pattern})")
    return _Validator(
        general_lengths=frozenset(general.possible_length or ()),
        general=re.compile(general.national_number_pattern),
        by_length={size: re.compile("|".join(p)) for size, p in lengths.items()},
    )


def _is_valid(country_code: int, nsn: str) -> bool:
    """Same answer as ``phonenumbers.is_valid_number`` for a number without leading zero."""
    if country_code not in _VALIDATORS:
        _VALIDATORS[country_code] = _build_validator(country_code)
    validator = _VALIDATORS[country_code]
    if validator is None:
        number = PhoneNumber(country_code=country_code, national_number=int(nsn))
        return bool(phonenumbers.is_valid_number(number))
    return validator.valid(nsn)
