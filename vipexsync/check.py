"""``vipexsync check``: validate everything a run needs, and change nothing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from vipexsync.config import Config, JobConfig
from vipexsync.errors import ConfigError, VipexSyncError
from vipexsync.mapping import compile_mapping, map_records
from vipexsync.mirror import findings
from vipexsync.mirror.database import (
    create_engine_for,
    current_revision,
    head_revision,
    make_session_factory,
)
from vipexsync.semantics import UNVERIFIED_WARNING, ProbeFindings, semantics_report
from vipexsync.sources import open_source
from vipexsync.sync.report import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from vipexsync.vipex.client import VipexClient


class _Checklist:
    def __init__(self) -> None:
        self.failed = False
        self.config_failed = False
        self.warnings = 0

    def warn(self, label: str, text: str) -> None:
        self.warnings += 1
        print(f"  WARN {label}: {text}")

    def step(self, label: str, action: Callable[[], str]) -> None:
        try:
            detail = action()
        except ConfigError as exc:
            self.failed = self.config_failed = True
            print(f"  FAIL {label}: {exc}")
        except VipexSyncError as exc:
            self.failed = True
            print(f"  FAIL {label}: {exc}")
        else:
            print(f"  ok   {label}: {detail}")


def _database(config: Config) -> str:
    engine = create_engine_for(config.database.url)
    try:
        current = current_revision(engine)  # raises MirrorError naming the URL, no password
    finally:
        engine.dispose()
    head = head_revision()
    if current == head:
        return f"reachable, schema at {head}"
    if current is None:
        return "reachable, empty (the first run creates the schema, or run `vipexsync db upgrade`)"
    return f"reachable, schema at {current}; head is {head} (run `vipexsync db upgrade`)"


def _probe_findings(config: Config) -> dict[str, ProbeFindings]:
    """Every subscription's recorded findings; none when the database lacks the table yet."""
    engine = create_engine_for(config.database.url)
    try:
        if current_revision(engine) != head_revision():
            return {}
        with make_session_factory(engine)() as session:
            found = {
                job.vipex_id: findings.load_findings(session, job.vipex_id) for job in config.jobs
            }
        return {vipex_id: f for vipex_id, f in found.items() if f is not None}
    except VipexSyncError:
        return {}  # the database step above already said what is wrong
    finally:
        engine.dispose()


def _semantics(
    config: Config, job: JobConfig, known: ProbeFindings | None, checks: _Checklist
) -> None:
    label = f"job {job.name}: write semantics"
    report = semantics_report(config.vipex.write_semantics, known)
    if report["verified"]:
        when = f" at {report['probed_at']}" if report["probed_at"] else ""
        print(f"  ok   {label}: {report['summary']} ({report['origin']}{when})")
    else:
        checks.warn(label, UNVERIFIED_WARNING)


def _job(client: VipexClient, job: JobConfig, checks: _Checklist) -> None:
    fields_holder: dict[str, object] = {}

    def vipex() -> str:
        fields = client.get_phonebook_custom_field_list(job.vipex_id)
        fields_holder["fields"] = fields
        return f"subscription {job.vipex_id} answers; {len(fields)} custom field(s)"

    checks.step(f"job {job.name}: VIPeX", vipex)
    if "fields" not in fields_holder:
        return
    fields = fields_holder["fields"]
    assert isinstance(fields, tuple)

    def mapping_and_source() -> str:
        compiled = compile_mapping(job.mapping, fields, job=job.name)
        source = open_source(job.source)
        result = map_records(
            source.read(), compiled, region=job.default_region, ownership_tag=job.ownership_tag
        )
        codes = Counter(p.code for p in result.problems)
        rejected = ", ".join(f"{code} {n}" for code, n in sorted(codes.items())) or "none"
        text = (
            f"{source.description}: {result.records} records -> {len(result.desired)} entries; "
            f"rejected: {rejected}"
        )
        if result.records < job.min_source_records:
            text += (
                f" (fewer than min_source_records = {job.min_source_records}: "
                "a run would delete nothing)"
            )
        return text

    checks.step(f"job {job.name}: mapping and source", mapping_and_source)


def run_check(config: Config) -> int:
    checks = _Checklist()
    print(f"Configuration {config.path or ''}: ok ({len(config.jobs)} job(s))")
    checks.step("database", lambda: _database(config))
    probed = _probe_findings(config)
    with VipexClient.from_config(config.vipex) as client:
        for job in config.jobs:
            _job(client, job, checks)
            _semantics(config, job, probed.get(job.vipex_id), checks)
    if checks.config_failed:
        return EXIT_USAGE
    return EXIT_FAILED if checks.failed else EXIT_OK
