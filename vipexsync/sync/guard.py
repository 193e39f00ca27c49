"""The pure deletion guard: may this plan's deletions run?

Deleting on incomplete knowledge or deleting far more than usual is the one
mistake that loses users' data, so every trigger is checked and every one that
applies is reported, each as a sentence that tells the operator what to do.
``--force-delete`` lifts only the count and ratio limits: it is for a mass
deletion the operator meant, never for a broken read.
"""

from __future__ import annotations

from dataclasses import replace

from vipexsync.sync.model import Action, GuardContext, GuardVerdict, Mode, Plan

# Slack for float rounding in ratio × owned (0.57 × 100 is 56.99999999999999).
_RATIO_EPSILON = 1e-9


def _reasons(deletes: int, plan: Plan, ctx: GuardContext) -> list[str]:
    reasons: list[str] = []
    if not ctx.source_complete:
        reasons.append(
            "The CRM source read failed or was cut short, so nothing is deleted on "
            "incomplete knowledge; fix the source and the next run will catch up."
        )
    if ctx.source_records < ctx.min_source_records:
        reasons.append(
            f"The CRM source returned {ctx.source_records} records, fewer than "
            f"min_source_records = {ctx.min_source_records}, so nothing is deleted in case "
            "the source is empty or broken; check the source, or lower min_source_records "
            "if so few records are expected."
        )
    if not ctx.remote_complete:
        reasons.append(
            "The VIPeX phonebook listing was unstable or cut short, so nothing is deleted "
            "on incomplete knowledge; run `vipexsync sync --full-resync` again when the "
            "phonebook is not being edited."
        )
    if ctx.fingerprint_changed and ctx.mode is not Mode.FULL:
        reasons.append(
            f"The mapping or source filter changed since the last run, so the {deletes} "
            "deletions may come from the change rather than the CRM; review them with "
            "`vipexsync sync --full-resync --dry-run`, then run `vipexsync sync "
            "--full-resync` to confirm."
        )
    if not ctx.force_delete:
        if deletes > ctx.max_deletes:
            reasons.append(
                f"The plan deletes {deletes} entries, more than max_deletes = "
                f"{ctx.max_deletes}; if that is intended, run again with --force-delete "
                "or raise max_deletes."
            )
        allowed = ctx.max_delete_ratio * plan.owned
        if deletes > allowed + _RATIO_EPSILON:
            reasons.append(
                f"The plan deletes {deletes} of {plan.owned} owned entries, more than "
                f"max_delete_ratio = {ctx.max_delete_ratio:g} allows ({allowed:g}); if that "
                "is intended, run again with --force-delete or raise max_delete_ratio."
            )
    return reasons


def guard(plan: Plan, ctx: GuardContext) -> GuardVerdict:
    """Allow the plan's deletions, or withhold them all with every reason that applies."""
    deletes = plan.deletes
    if not deletes:
        return GuardVerdict(deletes_allowed=True)
    reasons = _reasons(len(deletes), plan, ctx)
    if not reasons:
        return GuardVerdict(deletes_allowed=True)
    return GuardVerdict(deletes_allowed=False, reasons=tuple(reasons), withheld=deletes)


def withhold_deletes(plan: Plan, verdict: GuardVerdict) -> Plan:
    """The plan without its deletions when the verdict refuses them, else the plan itself."""
    if verdict.deletes_allowed:
        return plan
    kept = tuple(c for c in plan.changes if c.action is not Action.DELETE)
    return replace(plan, changes=kept)
