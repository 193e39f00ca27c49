"""The write semantics as a value: the normal form, stated vs probed, and the planner using it."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vipexsync.domain import DesiredEntry, Entry, MirrorEntry
from vipexsync.emulator.semantics import Semantics
from vipexsync.semantics import (
    UNVERIFIED,
    Omission,
    ProbeFindings,
    WriteSemantics,
    effective_semantics,
    normal_desired,
    normal_entry,
    normal_text,
    semantics_report,
)
from vipexsync.sync.model import Action, Policy, RemoteView
from vipexsync.sync.plan import plan

EVERYTHING = WriteSemantics(Omission.CLEAR, trims=True, nfc=True, max_name_length=10)
NFD_NAME = unicodedata.normalize("NFD", "Józsa Éva")


def findings(semantics: WriteSemantics) -> ProbeFindings:
    return ProbeFindings("1643897", semantics, datetime(2026, 1, 1, tzinfo=UTC), "1", "missing")


def test_nothing_known_changes_nothing() -> None:
    entry = Entry("3612000001", "  x  ", frozenset({" a "}), " c ", {1: " v "})
    assert normal_entry(entry, UNVERIFIED) is entry
    desired = {"3612000001": DesiredEntry(entry, "1")}
    assert normal_desired(desired, UNVERIFIED) is desired


def test_normal_form_trims_normalises_and_cuts_in_the_emulators_order() -> None:
    assert normal_text(f"  {NFD_NAME}  ", EVERYTHING) == "Józsa Éva"
    assert normal_text("  abcdefgh   ijk", EVERYTHING, 10) == "abcdefgh"  # cut, then trimmed
    entry = Entry("3612000001", f" {NFD_NAME} Kft. ", frozenset({" vip ", "  "}), " c ", {2: " v"})
    normal = normal_entry(entry, EVERYTHING)
    assert normal == Entry("3612000001", "Józsa Éva", frozenset({"vip"}), "c", {2: "v"})
    assert normal_entry(normal, EVERYTHING) is normal  # idempotent, and shared when unchanged


@given(
    text=st.text(max_size=40),
    trim=st.booleans(),
    nfc=st.booleans(),
    limit=st.none() | st.integers(min_value=1, max_value=30),
)
def test_the_planners_normal_form_is_what_the_emulator_stores(
    text: str, trim: bool, nfc: bool, limit: int | None
) -> None:
    """The planner's prediction and the emulator's storing agree on any text."""
    ours = WriteSemantics(Omission.KEEP, trims=trim, nfc=nfc, max_name_length=limit)
    emulator = Semantics(max_name_length=limit, normalise="nfc" if nfc else "none", trim=trim)
    assert normal_text(text, ours, limit) == emulator.stored_name(text)


def test_stated_omission_wins_and_value_rules_still_come_from_the_probe() -> None:
    probed = findings(WriteSemantics(Omission.KEEP, trims=True, nfc=False, max_name_length=64))
    assert effective_semantics("probe", probed) == probed.semantics
    cleared = effective_semantics("clear_omitted", probed)
    assert cleared == WriteSemantics(Omission.CLEAR, True, False, 64)
    assert effective_semantics("keep_omitted", None) == WriteSemantics(Omission.KEEP)
    assert effective_semantics("probe", None) is UNVERIFIED
    assert not UNVERIFIED.reads_before_update
    assert cleared.reads_before_update


@pytest.mark.parametrize(
    ("stated", "probed", "origin", "verified"),
    [
        ("probe", None, "unverified", False),
        ("probe", WriteSemantics(Omission.CLEAR), "probed", True),
        ("keep_omitted", None, "stated ([vipex] write_semantics = 'keep_omitted')", True),
    ],
)
def test_the_report_says_where_the_semantics_come_from(
    stated: str, probed: WriteSemantics | None, origin: str, verified: bool
) -> None:
    report = semantics_report(stated, findings(probed) if probed else None)  # type: ignore[arg-type]
    assert report["origin"] == origin
    assert report["verified"] is verified


# -- the planner compares in VIPeX's stored form -------------------------------------


def _policy(semantics: WriteSemantics) -> Policy:
    return Policy(delete="owned", ownership_tag="crm-sync", semantics=semantics)


def test_a_value_vipex_normalised_is_not_rewritten_on_every_full_resync() -> None:
    raw = Entry("3612000001", "Kovács " + "x" * 20, frozenset({"crm-sync"}), NFD_NAME)
    stored = Entry("3612000001", ("Kovács " + "x" * 20)[:12], frozenset({"crm-sync"}), "Józsa Éva")
    desired = {raw.phonenumber: DesiredEntry(raw, "1")}
    mirror = {raw.phonenumber: MirrorEntry(raw.phonenumber, stored, owned=True, record_key="1")}
    remote = RemoteView({raw.phonenumber: stored}, complete=True)
    sem = WriteSemantics(Omission.KEEP, nfc=True, max_name_length=12)

    assert plan(desired, mirror, remote, _policy(sem)).changes == ()
    assert plan(desired, mirror, None, _policy(sem)).changes == ()
    # Without the finding, the same entry is "changed" on every run: perpetual drift.
    looping = plan(desired, mirror, remote, _policy(UNVERIFIED))
    assert [c.action for c in looping.changes] == [Action.UPDATE]


def test_a_create_writes_the_stored_form_so_the_mirror_matches_vipex() -> None:
    raw = Entry("3612000001", f"  {NFD_NAME}  ", frozenset({"crm-sync"}))
    sem = WriteSemantics(Omission.KEEP, trims=True, nfc=True)
    (change,) = plan({raw.phonenumber: DesiredEntry(raw, "1")}, {}, None, _policy(sem)).changes
    assert change.action is Action.CREATE
    assert change.after is not None
    assert change.after.name == "Józsa Éva"
