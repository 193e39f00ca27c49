"""Metrics: every CONTRACT series exists from the start, and updates move the right samples."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

import vipexsync
from vipexsync.metrics import (
    ACTIONS,
    API_ACTIONS,
    API_OUTCOMES,
    MODES,
    OUTCOMES,
    VIEWS,
    Metrics,
)
from vipexsync.sync.model import Action, Mode

JOBS = ("crm", "erp")


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry(), jobs=JOBS, version="9.9.9")


def value(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


def test_seventeen_documented_api_actions() -> None:
    assert len(API_ACTIONS) == 17
    assert len(set(API_ACTIONS)) == 17


def test_every_contract_series_exists_at_start(metrics: Metrics) -> None:
    assert value(metrics, "vipexsync_build_info", version="9.9.9") == 1
    for job in JOBS:
        for mode in MODES:
            for outcome in OUTCOMES:
                assert (
                    value(metrics, "vipexsync_runs_total", sync_job=job, mode=mode, outcome=outcome)
                    == 0
                )
            for name in (
                "vipexsync_last_run_timestamp_seconds",
                "vipexsync_last_success_timestamp_seconds",
                "vipexsync_run_duration_seconds",
            ):
                assert value(metrics, name, sync_job=job, mode=mode) == 0, name
        for name in (
            "vipexsync_run_in_progress",
            "vipexsync_run_progress_ratio",
            "vipexsync_drift_entries",
            "vipexsync_guard_tripped",
            "vipexsync_job_interval_seconds",
        ):
            assert value(metrics, name, sync_job=job) == 0, name
        for action in ACTIONS:
            for outcome in ("applied", "failed"):
                assert (
                    value(
                        metrics,
                        "vipexsync_changes_total",
                        sync_job=job,
                        action=action,
                        outcome=outcome,
                    )
                    == 0
                )
            assert value(metrics, "vipexsync_planned_changes", sync_job=job, action=action) == 0
        for view in VIEWS:
            assert value(metrics, "vipexsync_entries", sync_job=job, view=view) == 0
    for action in API_ACTIONS:
        for outcome in API_OUTCOMES:
            assert (
                value(metrics, "vipexsync_api_requests_total", action=action, outcome=outcome) == 0
            )
        assert value(metrics, "vipexsync_api_request_duration_seconds_count", action=action) == 0
        assert value(metrics, "vipexsync_api_retries_total", action=action) == 0


def test_default_registry_and_version() -> None:
    m = Metrics()
    assert value(m, "vipexsync_build_info", version=vipexsync.__version__) == 1
    # A fresh registry each time: two instances never clash over names.
    Metrics()


def test_api_observer(metrics: Metrics) -> None:
    metrics.request_finished("set_phonebook_entry", "ok", 0.02)
    metrics.request_finished("set_phonebook_entry", "ok", 3.0)
    metrics.request_finished("get_phonebook_list", "transport_error", 15.0)
    metrics.retried("get_phonebook_list", 1)
    metrics.retried("get_phonebook_list", 2)
    assert (
        value(metrics, "vipexsync_api_requests_total", action="set_phonebook_entry", outcome="ok")
        == 2
    )
    assert (
        value(
            metrics,
            "vipexsync_api_requests_total",
            action="get_phonebook_list",
            outcome="transport_error",
        )
        == 1
    )
    name = "vipexsync_api_request_duration_seconds"
    assert value(metrics, f"{name}_count", action="set_phonebook_entry") == 2
    assert value(metrics, f"{name}_sum", action="set_phonebook_entry") == pytest.approx(3.02)
    assert value(metrics, f"{name}_bucket", action="set_phonebook_entry", le="0.025") == 1
    assert value(metrics, f"{name}_bucket", action="set_phonebook_entry", le="5.0") == 2
    assert value(metrics, f"{name}_bucket", action="get_phonebook_list", le="10.0") == 0
    assert value(metrics, f"{name}_bucket", action="get_phonebook_list", le="20.0") == 1
    assert value(metrics, "vipexsync_api_retries_total", action="get_phonebook_list") == 2
    assert value(metrics, "vipexsync_api_retries_total", action="set_phonebook_entry") == 0


def test_run_lifecycle_success(metrics: Metrics) -> None:
    metrics.run_started("crm")
    assert value(metrics, "vipexsync_run_in_progress", sync_job="crm") == 1
    metrics.progress("crm", 0.5)
    assert value(metrics, "vipexsync_run_progress_ratio", sync_job="crm") == 0.5
    metrics.progress("crm", 7)
    assert value(metrics, "vipexsync_run_progress_ratio", sync_job="crm") == 1
    metrics.progress("crm", -1)
    assert value(metrics, "vipexsync_run_progress_ratio", sync_job="crm") == 0
    metrics.progress("crm", float("nan"))
    assert value(metrics, "vipexsync_run_progress_ratio", sync_job="crm") == 0
    metrics.run_finished("crm", Mode.FULL, "success", duration=12.5, finished_at=1_700_000_000)
    labels = {"sync_job": "crm", "mode": "full"}
    assert value(metrics, "vipexsync_runs_total", outcome="success", **labels) == 1
    assert value(metrics, "vipexsync_last_run_timestamp_seconds", **labels) == 1_700_000_000
    assert value(metrics, "vipexsync_last_success_timestamp_seconds", **labels) == 1_700_000_000
    assert value(metrics, "vipexsync_run_duration_seconds", **labels) == 12.5
    assert value(metrics, "vipexsync_run_in_progress", sync_job="crm") == 0
    # The other job and mode are untouched.
    assert (
        value(
            metrics, "vipexsync_runs_total", sync_job="crm", mode="incremental", outcome="success"
        )
        == 0
    )
    assert value(metrics, "vipexsync_run_in_progress", sync_job="erp") == 0


@pytest.mark.parametrize("outcome", ["failure", "guarded"])
def test_only_success_moves_the_success_timestamp(metrics: Metrics, outcome: str) -> None:
    metrics.run_finished("crm", "incremental", "success", duration=1, finished_at=100)
    metrics.run_started("crm")
    metrics.run_finished("crm", "incremental", outcome, duration=2, finished_at=200)
    labels = {"sync_job": "crm", "mode": "incremental"}
    assert value(metrics, "vipexsync_last_success_timestamp_seconds", **labels) == 100
    assert value(metrics, "vipexsync_last_run_timestamp_seconds", **labels) == 200
    assert value(metrics, "vipexsync_runs_total", outcome=outcome, **labels) == 1
    assert value(metrics, "vipexsync_run_in_progress", sync_job="crm") == 0


def test_skipped_counts_only(metrics: Metrics) -> None:
    metrics.run_skipped("crm", "incremental")
    labels = {"sync_job": "crm", "mode": "incremental"}
    assert value(metrics, "vipexsync_runs_total", outcome="skipped", **labels) == 1
    assert value(metrics, "vipexsync_last_run_timestamp_seconds", **labels) == 0


def test_changes_fold_adopt_into_update(metrics: Metrics) -> None:
    metrics.change_applied("crm", Action.ADOPT, "applied")
    metrics.change_applied("crm", "update", "applied")
    metrics.change_applied("crm", Action.DELETE, "failed")
    labels = {"sync_job": "crm"}
    assert (
        value(metrics, "vipexsync_changes_total", action="update", outcome="applied", **labels) == 2
    )
    assert (
        value(metrics, "vipexsync_changes_total", action="delete", outcome="failed", **labels) == 1
    )
    assert (
        value(metrics, "vipexsync_changes_total", action="create", outcome="applied", **labels) == 0
    )
    adopt = {"action": "adopt", "outcome": "applied", **labels}
    assert value(metrics, "vipexsync_changes_total", **adopt) is None


def test_planned_sets_every_action(metrics: Metrics) -> None:
    metrics.planned("crm", {"create": 3, "adopt": 2, "update": 1, "delete": 4})
    assert value(metrics, "vipexsync_planned_changes", sync_job="crm", action="create") == 3
    assert value(metrics, "vipexsync_planned_changes", sync_job="crm", action="update") == 3
    assert value(metrics, "vipexsync_planned_changes", sync_job="crm", action="delete") == 4
    metrics.planned("crm", {"create": 1})
    assert value(metrics, "vipexsync_planned_changes", sync_job="crm", action="update") == 0
    assert value(metrics, "vipexsync_planned_changes", sync_job="crm", action="delete") == 0


def test_entries_drift_guard_interval(metrics: Metrics) -> None:
    metrics.entries("crm", "remote", 1234)
    metrics.drift("crm", 5)
    metrics.guard("crm", True)
    metrics.job_interval("crm", 300)
    assert value(metrics, "vipexsync_entries", sync_job="crm", view="remote") == 1234
    assert value(metrics, "vipexsync_entries", sync_job="crm", view="mirror") == 0
    assert value(metrics, "vipexsync_drift_entries", sync_job="crm") == 5
    assert value(metrics, "vipexsync_guard_tripped", sync_job="crm") == 1
    assert value(metrics, "vipexsync_job_interval_seconds", sync_job="crm") == 300
    metrics.guard("crm", False)
    assert value(metrics, "vipexsync_guard_tripped", sync_job="crm") == 0


def test_add_job_later_with_interval(metrics: Metrics) -> None:
    metrics.add_job("new", interval_seconds=60)
    assert value(metrics, "vipexsync_job_interval_seconds", sync_job="new") == 60
    assert (
        value(metrics, "vipexsync_runs_total", sync_job="new", mode="full", outcome="guarded") == 0
    )


def test_rejected_resets_reasons_gone(metrics: Metrics) -> None:
    metrics.rejected("crm", {"invalid_number": 3, "duplicate_number": 1})
    assert (
        value(metrics, "vipexsync_rejected_records", sync_job="crm", reason="invalid_number") == 3
    )
    metrics.rejected("crm", {"missing_key": 2})
    assert (
        value(metrics, "vipexsync_rejected_records", sync_job="crm", reason="invalid_number") == 0
    )
    assert (
        value(metrics, "vipexsync_rejected_records", sync_job="crm", reason="duplicate_number") == 0
    )
    assert value(metrics, "vipexsync_rejected_records", sync_job="crm", reason="missing_key") == 2
    # Per job: the other job never saw these reasons.
    assert (
        value(metrics, "vipexsync_rejected_records", sync_job="erp", reason="missing_key") is None
    )


@pytest.mark.parametrize(
    ("call", "args"),
    [
        ("run_finished", ("crm", "weekly", "success")),
        ("run_finished", ("crm", "full", "ok")),
        ("run_skipped", ("crm", "partial")),
        ("change_applied", ("crm", "noop", "applied")),
        ("change_applied", ("crm", "create", "success")),
        ("entries", ("crm", "local", 1)),
        ("request_finished", ("get_phonebook_list", "timeout", 1.0)),
    ],
)
def test_unknown_label_values_are_refused(
    metrics: Metrics, call: str, args: tuple[object, ...]
) -> None:
    kwargs: dict[str, float] = (
        {"duration": 1.0, "finished_at": 1.0} if call == "run_finished" else {}
    )
    with pytest.raises(ValueError, match="unknown metrics"):
        getattr(metrics, call)(*args, **kwargs)
