"""Fault injection for the emulator: the HTTP-level trouble the vendor never documents.

A :class:`Faults` value is mutable on purpose: a test flips switches while the
server runs. The app asks :meth:`Faults.decide` once per routed request and
gets a :class:`FaultDecision` back; everything random comes from one
``random.Random`` seeded from ``seed`` (re-seeded whenever ``seed`` changes),
so a seeded run is repeatable.

Faults other than ``hang`` and ``latency`` are answered *instead of* running
the action, so a faulted request never changes state. A hang sleeps and then
runs the action normally: the client's timeout fires, yet the write may have
happened — exactly the case a careful client must survive.

Three switches model the service's own half-failures rather than the wire's:
``refuse_numbers`` answers ``result: 0`` to a write of one of those numbers
(VIPeX refusing one value) and changes nothing; ``max_queryable_rows`` makes
the service advertise and use smaller listing pages (so a small phonebook
spans several pages); ``listing_swap`` is a hand edit racing a scan: at the
first listing page past offset 0, the entry ``victim`` is deleted and a new
one ``added`` (sorting last) appears, so ``full_count`` stays the same while
one row slides onto a page already read.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field, fields

__all__ = ["FaultDecision", "Faults"]


@dataclass(frozen=True)
class FaultDecision:
    """What to do to one request before (or instead of) answering it."""

    latency: float = 0.0
    rate_limited: bool = False
    error_status: int | None = None  # 500 / 502 / 503
    hang: float = 0.0
    html: bool = False
    page_shift: int = 0


@dataclass
class Faults:
    latency_seconds: float = 0.0
    error_rate: float = 0.0
    rate_limit_every: int = 0
    retry_after_seconds: float = 1.0
    hang_rate: float = 0.0
    hang_seconds: float = 30.0
    html_rate: float = 0.0
    page_shift: int = 0
    seed: int | None = None
    actions: frozenset[str] | None = None
    refuse_numbers: frozenset[str] = frozenset()
    max_queryable_rows: int = 0  # 0: the documented 200
    listing_swap: tuple[str, str] | None = None  # (victim, added), fires once
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )
    _rng: random.Random = field(
        default_factory=random.Random, init=False, repr=False, compare=False
    )
    _rng_seed: int | None = field(default=None, init=False, repr=False, compare=False)
    _counter: int = field(default=0, init=False, repr=False, compare=False)

    def reset(self) -> None:
        """Switch every fault off (and restart the rate-limit count).

        The switches go back to their declared defaults, so a new switch cannot
        be forgotten here.
        """
        with self._lock:
            for switch in fields(self):
                if switch.init:
                    setattr(self, switch.name, switch.default)
            self._counter = 0

    def applies_to(self, action: str) -> bool:
        return self.actions is None or action in self.actions

    def refuses(self, action: str, phonenumber: object) -> bool:
        """Whether a phonebook write of ``phonenumber`` is answered ``result: 0``."""
        return (
            action in ("set_phonebook_entry", "del_phonebook_entry")
            and phonenumber in self.refuse_numbers
        )

    def take_listing_swap(self) -> tuple[str, str] | None:
        """The pending listing swap, once (the next call gets ``None``)."""
        with self._lock:
            swap, self.listing_swap = self.listing_swap, None
            return swap

    def _roll(self, rate: float) -> bool:
        return rate > 0 and self._rng.random() < rate

    def decide(self, action: str) -> FaultDecision:
        """Draw this request's faults (latency applies to every request)."""
        with self._lock:
            latency = max(0.0, self.latency_seconds)
            if not self.applies_to(action):
                return FaultDecision(latency=latency)
            if self.seed != self._rng_seed:
                self._rng = random.Random(self.seed)  # noqa: S311 - test faults, not crypto
                self._rng_seed = self.seed
            self._counter += 1
            if self.rate_limit_every > 0 and self._counter % self.rate_limit_every == 0:
                return FaultDecision(latency=latency, rate_limited=True)
            if self._roll(self.error_rate):
                status = self._rng.choice((500, 502, 503))
                return FaultDecision(latency=latency, error_status=status)
            if self._roll(self.html_rate):
                return FaultDecision(latency=latency, html=True)
            hang = max(0.0, self.hang_seconds) if self._roll(self.hang_rate) else 0.0
            return FaultDecision(latency=latency, hang=hang, page_shift=max(0, self.page_shift))
