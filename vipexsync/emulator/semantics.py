"""The emulator's switchable write semantics: the readings the vendor leaves open.

The vendor document does not say what ``set_phonebook_entry`` does with a
parameter it is not sent, nor whether names and comments are trimmed,
truncated or normalised. The emulator can play each world, so the daemon is
tested in all of them (``vipexsync emulator --omitted clear --max-name-length
64 --normalise nfc --trim``):

- ``omitted = "keep"`` (the default): a parameter or custom field not sent
  keeps its value; ``"clear"``: on an existing entry, a left-out ``name``,
  ``tags`` or ``comment`` becomes empty and every custom field missing from
  ``custom_field_options`` is cleared, as a service that replaces the whole
  entry would;
- ``normalise = "nfc"``: name, comment, tags and text custom fields are stored
  in Unicode NFC;
- ``trim``: leading and trailing whitespace of those is removed (tags are
  always stripped);
- ``max_name_length``: a longer name is cut to that many characters.

Order: normalise, trim, cut (and trim again after a cut). A :class:`Semantics`
is mutable on purpose: a test flips it while the server runs. ``DEFAULT`` is
what a new :class:`~vipexsync.emulator.state.EmulatorState` starts with.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, replace
from typing import Literal

__all__ = ["DEFAULT", "Semantics", "default_semantics"]

OmittedRule = Literal["keep", "clear"]
Normalisation = Literal["nfc", "none"]


@dataclass
class Semantics:
    omitted: OmittedRule = "keep"
    max_name_length: int | None = None
    normalise: Normalisation = "none"
    trim: bool = False

    def stored(self, text: str, limit: int | None = None) -> str:
        """``text`` as this service stores it."""
        if self.normalise == "nfc":
            text = unicodedata.normalize("NFC", text)
        if self.trim:
            text = text.strip()
        if limit is not None and len(text) > limit:
            text = text[:limit]
            if self.trim:
                text = text.rstrip()
        return text

    def stored_name(self, text: str) -> str:
        return self.stored(text, self.max_name_length)

    def describe(self) -> str:
        cut = "no limit" if self.max_name_length is None else str(self.max_name_length)
        return (
            f"omitted fields {self.omitted}, normalise {self.normalise}, "
            f"trim {'on' if self.trim else 'off'}, name length {cut}"
        )


DEFAULT = Semantics()


def default_semantics() -> Semantics:
    """A fresh copy of :data:`DEFAULT` (a test run may replace ``DEFAULT``)."""
    return replace(DEFAULT)
