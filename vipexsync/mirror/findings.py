"""The probe's findings in the mirror database, one row per VIPeX subscription.

Kept apart from :mod:`vipexsync.mirror.store` (the sync's journal) because it
is read once per run and written only by ``vipexsync probe``. Every function
takes the caller's session, like the store's.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from vipexsync.errors import MirrorError
from vipexsync.mirror.models import WriteSemanticsRow
from vipexsync.semantics import Omission, ProbeFindings, WriteSemantics


def _failed(call: str, vipex_id: str, exc: SQLAlchemyError) -> MirrorError:
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return MirrorError(
        f"mirror database: {call} for subscription {vipex_id!r} failed: "
        f"{(detail[0] if detail else type(exc).__name__)[:300]}. "
        "Check that the database is reachable and writable"
    )


def save_findings(session: Session, findings: ProbeFindings) -> None:
    """Record a probe's findings, replacing the subscription's earlier ones."""
    semantics = findings.semantics
    try:
        session.execute(
            sa.delete(WriteSemanticsRow).where(WriteSemanticsRow.vipex_id == findings.vipex_id)
        )
        session.add(
            WriteSemanticsRow(
                vipex_id=findings.vipex_id,
                omitted=semantics.omitted.value,
                trims=semantics.trims,
                nfc=semantics.nfc,
                max_name_length=semantics.max_name_length,
                not_found_answer=findings.not_found_answer,
                phonenumber=findings.phonenumber,
                probed_at=findings.probed_at,
                steps=list(findings.steps),
            )
        )
        # The findings change how runs compare and write: every job's quiet
        # key (vipexsync/sync/quiet.py) stops holding.
        session.execute(sa.text("UPDATE job_state SET mirror_generation = mirror_generation + 1"))
        session.flush()
    except SQLAlchemyError as exc:
        raise _failed("recording the probe's findings", findings.vipex_id, exc) from exc


def load_findings(session: Session, vipex_id: str) -> ProbeFindings | None:
    """The subscription's last probe findings, or None if it was never probed."""
    try:
        row = session.get(WriteSemanticsRow, vipex_id)
    except SQLAlchemyError as exc:
        raise _failed("reading the probe's findings", vipex_id, exc) from exc
    if row is None:
        return None
    return ProbeFindings(
        vipex_id=row.vipex_id,
        semantics=WriteSemantics(
            omitted=Omission(row.omitted),
            trims=row.trims,
            nfc=row.nfc,
            max_name_length=row.max_name_length,
        ),
        probed_at=row.probed_at,
        phonenumber=row.phonenumber,
        not_found_answer=row.not_found_answer,
        steps=tuple(row.steps),
    )
