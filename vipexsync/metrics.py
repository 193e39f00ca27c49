"""Every Prometheus metric of vipexsync, defined once, and the HTTP endpoint.

Names, types and labels follow CONTRACT.md: dashboards and alert rules query
them, so they never change. Metrics are built against an injected registry so
tests read them back with ``registry.get_sample_value(...)``, and every label
set known in advance is initialised in ``__init__`` so that no series is
missing at the first scrape (an absent series breaks ``rate()`` and alerts).

Labels are only ever closed vocabularies (sync_job, mode, outcome, action,
view, reason code, API action): never phone numbers, names or anything a CRM
sends. The sync job's label is ``sync_job``, not ``job``: Prometheus owns
``job`` (the scrape job) and would rename ours to ``exported_job``.

No ``_created`` series: they double the counter series, no rule or dashboard
reads them, and the switch (``disable_created_metrics``) is process-wide in
prometheus_client, so building a ``Metrics`` turns them off for the process.

Success timestamp: ``vipexsync_last_success_timestamp_seconds`` moves only on
``outcome == "success"``. A guarded run applied everything but the withheld
deletions, so the phonebook is *not* what the CRM says; letting it count as a
success would hide a guard that trips on every run. Such a job raises
``VipexsyncGuardTripped`` at once and ``VipexsyncStaleSuccess`` later.
"""

from __future__ import annotations

import logging
import math
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.exposition import choose_encoder

import vipexsync
from vipexsync.errors import ConfigError

log = logging.getLogger(__name__)

MODES: Final = ("incremental", "full")
OUTCOMES: Final = ("success", "failure", "guarded", "skipped")
ACTIONS: Final = ("create", "update", "delete")
CHANGE_OUTCOMES: Final = ("applied", "failed")
VIEWS: Final = ("desired", "mirror", "remote")
API_ACTIONS: Final = (
    # phonebook
    "get_phonebook_list",
    "get_phonebook_entry",
    "set_phonebook_entry",
    "del_phonebook_entry",
    "get_phonebook_custom_field_list",
    # the rest of the API
    "dial_phonenumber",
    "outbound_ivr",
    "get_extens_current_calls",
    "get_record",
    "get_vipex_user",
    "get_vipex_user_list",
    "get_operator_status_list",
    "get_operator_status_history",
    "set_operator_status",
    "set_call_forward",
    "get_call_forward_list",
    "del_call_forward",
)
API_OUTCOMES: Final = ("ok", "api_error", "http_error", "transport_error")

# A phonebook call normally takes tens of milliseconds; the client's timeout is
# 15 s by default and a page of 200 rows on a slow PBX can take several seconds.
API_DURATION_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0)

_ACTION_ALIASES: Final = {"adopt": "update"}


def _check(kind: str, value: str, allowed: Sequence[str]) -> str:
    """Refuse a label value outside its vocabulary: a typo would make a new series."""
    value = str(value)
    if value not in allowed:
        raise ValueError(f"unknown metrics {kind} {value!r}; expected one of {', '.join(allowed)}")
    return value


def _metric_action(action: str) -> str:
    action = str(action)
    return _check("action", _ACTION_ALIASES.get(action, action), ACTIONS)


class Metrics:
    """The daemon's metrics; also the VIPeX client's ``ApiObserver``."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        jobs: Sequence[str] = (),
        version: str = vipexsync.__version__,
    ) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped upstream
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self._lock = threading.Lock()
        self._reasons_seen: dict[str, set[str]] = {}

        self.build_info = Gauge(
            "vipexsync_build_info",
            "Always 1; the version label says what runs.",
            ["version"],
            registry=r,
        )
        self.runs = Counter(
            "vipexsync_runs",
            "Runs per job, mode and outcome.",
            ["sync_job", "mode", "outcome"],
            registry=r,
        )
        self.last_run = Gauge(
            "vipexsync_last_run_timestamp_seconds",
            "Unix time the last run of this job and mode finished (0 = never).",
            ["sync_job", "mode"],
            registry=r,
        )
        self.last_success = Gauge(
            "vipexsync_last_success_timestamp_seconds",
            "Unix time the last successful run finished (0 = never); guarded runs do not count.",
            ["sync_job", "mode"],
            registry=r,
        )
        self.run_duration = Gauge(
            "vipexsync_run_duration_seconds",
            "Wall-clock duration of the last finished run.",
            ["sync_job", "mode"],
            registry=r,
        )
        self.in_progress = Gauge(
            "vipexsync_run_in_progress",
            "1 while a run of this job is going on.",
            ["sync_job"],
            registry=r,
        )
        self.progress_ratio = Gauge(
            "vipexsync_run_progress_ratio",
            "Share of the running run's listing and writes done (0-1).",
            ["sync_job"],
            registry=r,
        )
        self.changes = Counter(
            "vipexsync_changes",
            "Phonebook writes per action (adoptions count as updates) and outcome.",
            ["sync_job", "action", "outcome"],
            registry=r,
        )
        self.planned_changes = Gauge(
            "vipexsync_planned_changes",
            "Changes the last plan contained, per action.",
            ["sync_job", "action"],
            registry=r,
        )
        self.entries_gauge = Gauge(
            "vipexsync_entries",
            "Entries in each view of the phonebook at the last run.",
            ["sync_job", "view"],
            registry=r,
        )
        self.drift_gauge = Gauge(
            "vipexsync_drift_entries",
            "Owned entries found edited or deleted by hand at the last full resync.",
            ["sync_job"],
            registry=r,
        )
        self.rejected_gauge = Gauge(
            "vipexsync_rejected_records",
            "Source records rejected at the last run, per reason code.",
            ["sync_job", "reason"],
            registry=r,
        )
        self.guard_tripped = Gauge(
            "vipexsync_guard_tripped",
            "1 if a safety guard withheld deletions at the last run.",
            ["sync_job"],
            registry=r,
        )
        self.interval_gauge = Gauge(
            "vipexsync_job_interval_seconds",
            "Configured interval of the incremental runs (alerts compare against it).",
            ["sync_job"],
            registry=r,
        )
        self.api_requests = Counter(
            "vipexsync_api_requests",
            "VIPeX API HTTP attempts per action and outcome (each retry counts).",
            ["action", "outcome"],
            registry=r,
        )
        self.api_duration = Histogram(
            "vipexsync_api_request_duration_seconds",
            "Duration of VIPeX API HTTP attempts.",
            ["action"],
            buckets=API_DURATION_BUCKETS,
            registry=r,
        )
        self.api_retries = Counter(
            "vipexsync_api_retries",
            "VIPeX API attempts that were retried.",
            ["action"],
            registry=r,
        )

        self.build_info.labels(version=version).set(1)
        for action in API_ACTIONS:
            self._init_api_action(action)
        for job in jobs:
            self.add_job(job)

    def _init_api_action(self, action: str) -> None:
        for outcome in API_OUTCOMES:
            self.api_requests.labels(action=action, outcome=outcome)
        self.api_duration.labels(action=action)
        self.api_retries.labels(action=action)

    def add_job(self, job: str, *, interval_seconds: float | None = None) -> None:
        """Create every series of one job at zero, so it is visible before its first run."""
        for mode in MODES:
            for outcome in OUTCOMES:
                self.runs.labels(sync_job=job, mode=mode, outcome=outcome)
            self.last_run.labels(sync_job=job, mode=mode)
            self.last_success.labels(sync_job=job, mode=mode)
            self.run_duration.labels(sync_job=job, mode=mode)
        for action in ACTIONS:
            for outcome in CHANGE_OUTCOMES:
                self.changes.labels(sync_job=job, action=action, outcome=outcome)
            self.planned_changes.labels(sync_job=job, action=action)
        for view in VIEWS:
            self.entries_gauge.labels(sync_job=job, view=view)
        self.in_progress.labels(sync_job=job)
        self.progress_ratio.labels(sync_job=job)
        self.drift_gauge.labels(sync_job=job)
        self.guard_tripped.labels(sync_job=job)
        self.interval_gauge.labels(sync_job=job)
        if interval_seconds is not None:
            self.job_interval(job, interval_seconds)

    def job_interval(self, job: str, seconds: float) -> None:
        """Export the configured incremental interval (the staleness alert needs it)."""
        self.interval_gauge.labels(sync_job=job).set(seconds)

    # -- the VIPeX client's observer protocol ---------------------------------

    def request_finished(self, action: str, outcome: str, seconds: float) -> None:
        """One HTTP attempt of an API call ended (retries report again)."""
        outcome = _check("API outcome", outcome, API_OUTCOMES)
        self.api_requests.labels(action=action, outcome=outcome).inc()
        self.api_duration.labels(action=action).observe(max(0.0, seconds))

    def retried(self, action: str, attempt: int) -> None:
        """An attempt failed and the client is about to try again."""
        self.api_retries.labels(action=action).inc()

    # -- run lifecycle ---------------------------------------------------------

    def run_started(self, job: str) -> None:
        self.in_progress.labels(sync_job=job).set(1)
        self.progress_ratio.labels(sync_job=job).set(0)

    def progress(self, job: str, ratio: float) -> None:
        if math.isnan(ratio):
            ratio = 0.0
        self.progress_ratio.labels(sync_job=job).set(min(1.0, max(0.0, ratio)))

    def run_finished(
        self, job: str, mode: str, outcome: str, *, duration: float, finished_at: float
    ) -> None:
        """A run ended; only ``success`` moves the success timestamp (see module doc)."""
        mode = _check("mode", mode, MODES)
        outcome = _check("outcome", outcome, OUTCOMES)
        self.runs.labels(sync_job=job, mode=mode, outcome=outcome).inc()
        self.last_run.labels(sync_job=job, mode=mode).set(finished_at)
        self.run_duration.labels(sync_job=job, mode=mode).set(max(0.0, duration))
        if outcome == "success":
            self.last_success.labels(sync_job=job, mode=mode).set(finished_at)
            self.progress_ratio.labels(sync_job=job).set(1)
        self.in_progress.labels(sync_job=job).set(0)

    def run_skipped(self, job: str, mode: str) -> None:
        """Another process held the job; nothing ran here, so no timestamps move."""
        mode = _check("mode", mode, MODES)
        self.runs.labels(sync_job=job, mode=mode, outcome="skipped").inc()

    def change_applied(self, job: str, action: str, outcome: str) -> None:
        outcome = _check("change outcome", outcome, CHANGE_OUTCOMES)
        self.changes.labels(sync_job=job, action=_metric_action(action), outcome=outcome).inc()

    def planned(self, job: str, counts: Mapping[str, int]) -> None:
        """Set the planned changes of the last plan; actions not given are 0.

        ``noop`` (an entry already right) is not a change and is left out: the
        planner's ``Plan.counts()`` carries it, and refusing it crashed every run.
        """
        totals = dict.fromkeys(ACTIONS, 0)
        for action, count in counts.items():
            if action == "noop":
                continue
            totals[_metric_action(action)] += count
        for action, total in totals.items():
            self.planned_changes.labels(sync_job=job, action=action).set(total)

    def entries(self, job: str, view: str, count: int) -> None:
        view = _check("view", view, VIEWS)
        self.entries_gauge.labels(sync_job=job, view=view).set(count)

    def drift(self, job: str, count: int) -> None:
        self.drift_gauge.labels(sync_job=job).set(count)

    def rejected(self, job: str, by_reason: Mapping[str, int]) -> None:
        """Set the rejected records per reason; a reason that went away drops to 0."""
        with self._lock:
            seen = self._reasons_seen.setdefault(job, set())
            seen.update(by_reason)
            reasons = sorted(seen)
        for reason in reasons:
            self.rejected_gauge.labels(sync_job=job, reason=reason).set(by_reason.get(reason, 0))

    def guard(self, job: str, tripped: bool) -> None:
        self.guard_tripped.labels(sync_job=job).set(1 if tripped else 0)


# -- the HTTP endpoint ---------------------------------------------------------

Probe = Callable[[], tuple[bool, str]]


def parse_listen(listen: str) -> tuple[str, int]:
    """Split ``host:port`` or ``[v6]:port`` into its parts; a bad value is a config error."""
    host, sep, port_text = listen.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ConfigError(
            f"[metrics] listen = {listen!r} is not host:port "
            '(e.g. "127.0.0.1:9717" or "[::1]:9717"; "" turns the endpoint off)'
        )
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port_text)


class _Handler(BaseHTTPRequestHandler):
    """Serves /metrics, /healthz and /readyz; everything else is 404."""

    server: _Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._serve(with_body=True)

    def do_HEAD(self) -> None:
        self._serve(with_body=False)

    def _serve(self, *, with_body: bool) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
            self._reply(200, content_type, encoder(self.server.metrics.registry), with_body)
        elif path in ("/healthz", "/readyz"):
            probe = self.server.health if path == "/healthz" else self.server.ready
            try:
                ok, reason = probe()
            except Exception as exc:  # a broken probe must not kill the endpoint
                log.debug("%s probe raised", path, exc_info=True)
                ok, reason = False, f"probe failed: {type(exc).__name__}"
            text = "ok" if ok and not reason else reason or "unhealthy"
            body = (text + "\n").encode("utf-8")
            self._reply(200 if ok else 503, "text/plain; charset=utf-8", body, with_body)
        else:
            self._reply(404, "text/plain; charset=utf-8", b"not found\n", with_body)

    def _reply(self, status: int, content_type: str, body: bytes, with_body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("metrics endpoint: " + format, *args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        family: socket.AddressFamily,
        metrics: Metrics,
        health: Probe,
        ready: Probe,
    ) -> None:
        self.address_family = family
        self.metrics = metrics
        self.health = health
        self.ready = ready
        super().__init__(address, _Handler)


class MetricsServer:
    """A running endpoint; ``stop()`` closes it and joins its thread."""

    def __init__(self, server: _Server) -> None:
        self._server = server
        self._thread = threading.Thread(
            # A short poll keeps stop() quick; the cost is a few idle wake-ups a second.
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="vipexsync-metrics",
            daemon=True,
        )
        self._thread.start()

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = self.host
        if ":" in host:
            host = f"[{host}]"
        elif host in ("", "0.0.0.0"):  # noqa: S104 - naming the wildcard, not binding it
            host = "127.0.0.1"
        return f"http://{host}:{self.port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve(metrics: Metrics, listen: str, *, health: Probe, ready: Probe) -> MetricsServer:
    """Start the endpoint on ``listen`` (port 0 picks a free port) in a daemon thread."""
    host, port = parse_listen(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        server = _Server((host, port), family, metrics, health, ready)
    except OSError as exc:
        raise ConfigError(
            f"cannot serve metrics on [metrics] listen = {listen!r}: {exc.strerror or exc}. "
            'Pick a free port or address, or set listen = "" to turn the endpoint off.'
        ) from exc
    running = MetricsServer(server)
    log.info("metrics endpoint on %s/metrics", running.url)
    return running
