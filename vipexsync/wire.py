"""Wire-format helpers shared by the VIPeX client and the emulator.

Kept small and pure so both sides agree on the same few conventions of the
vendor API: local Budapest date-times written as ``YYYY-MM-DD HH:MM:SS``, the
all-zero "still open" end marker, the page-size cap and the envelope key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo

__all__ = [
    "API_VERSION",
    "BUDAPEST",
    "DATETIME_FORMAT",
    "ENVELOPE_KEY",
    "MAX_QUERYABLE_ROWS",
    "OPEN_END",
    "format_local",
    "parse_local",
    "parse_local_or_open",
]

BUDAPEST: Final = ZoneInfo("Europe/Budapest")
"""The PBX's time zone: every date-time on the wire is local time here."""

DATETIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S"
OPEN_END: Final = "0000-00-00 00:00:00"
"""What the API writes as the end of a period that has not ended yet."""

MAX_QUERYABLE_ROWS: Final = 200
"""The server caps ``limit`` of ``get_phonebook_list`` at this many rows."""

ENVELOPE_KEY: Final = "onvipex_result"
"""Every answer is wrapped in an object under this key."""

API_VERSION: Final = "1.0"


def format_local(moment: datetime) -> str:
    """Render ``moment`` as the API's local ``YYYY-MM-DD HH:MM:SS``.

    An aware datetime is converted to Budapest time first; a naive one is
    taken to already be Budapest local time.
    """
    if moment.tzinfo is not None:
        moment = moment.astimezone(BUDAPEST)
    return moment.strftime(DATETIME_FORMAT)


def parse_local(text: str) -> datetime:
    """Parse a wire date-time into an aware Budapest datetime.

    Raises ValueError for anything else, including :data:`OPEN_END`; callers
    that accept open ends use :func:`parse_local_or_open`.
    """
    if text == OPEN_END:
        raise ValueError(f"{OPEN_END!r} marks an open period, not a date-time")
    if len(text) != 19:
        raise ValueError(f"date-time {text!r} is not in the form YYYY-MM-DD HH:MM:SS")
    naive = datetime.strptime(text, DATETIME_FORMAT)
    return naive.replace(tzinfo=BUDAPEST)


def parse_local_or_open(text: str) -> datetime | None:
    """Like :func:`parse_local`, but :data:`OPEN_END` yields None (still open)."""
    if text == OPEN_END:
        return None
    return parse_local(text)
