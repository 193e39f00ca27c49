"""The command line: parses, calls, maps outcomes to exit codes — nothing else.

Exit codes (../shared/CONTRACT.md): 0 the run completed; 1 the run failed;
2 usage or configuration error; 3 a safety guard withheld deletions;
4 the job is held by another process and was skipped; 130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from vipexsync import __version__
from vipexsync.errors import ConfigError, LockHeldError, UsageError, VipexSyncError
from vipexsync.sync.report import (
    EXIT_FAILED,
    EXIT_GUARDED,
    EXIT_INTERRUPTED,
    EXIT_LOCKED,
    EXIT_OK,
    EXIT_USAGE,
    Outcome,
    RunReport,
)

if TYPE_CHECKING:
    from vipexsync.config import Config
    from vipexsync.runtime import Runtime

log = logging.getLogger("vipexsync.cli")

EXIT_CODES_HELP = f"""\
exit codes:
  {EXIT_OK}    the run completed (rejected records are reported, not fatal)
  {EXIT_FAILED}    the run failed
  {EXIT_USAGE}    usage or configuration error
  {EXIT_GUARDED}    a safety guard withheld deletions (everything else was applied)
  {EXIT_LOCKED}    the job is held by another process and was skipped
  {EXIT_INTERRUPTED}  interrupted by Ctrl-C, after the writes in flight were recorded
"""


def _config_option(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """``--config`` before the command, or after it (``vipexsync sync --config F``).

    After the command its default is SUPPRESS, so an absent option there does
    not overwrite the one given before the command.
    """
    parser.add_argument(
        "--config",
        type=Path,
        default=None if top else argparse.SUPPRESS,
        help="configuration file (default: $VIPEXSYNC_CONFIG, ./vipexsync.toml, "
        "/etc/vipexsync/vipexsync.toml)",
    )


class _Subcommands:
    """Adds subcommands that all accept ``--config`` and list the exit codes in ``--help``."""

    def __init__(self, action: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        self._action = action

    def add_parser(self, name: str, *, help: str) -> argparse.ArgumentParser:
        parser = self._action.add_parser(
            name,
            help=help,
            description=help[:1].upper() + help[1:] + ".",
            epilog=EXIT_CODES_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _config_option(parser, top=False)
        return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vipexsync",
        description="Keep a VIPeX phonebook equal to what your CRM says.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"vipexsync {__version__}")
    _config_option(parser, top=True)
    # The bare shorthand: `vipexsync --full-resync` means `vipexsync sync --full-resync`.
    _add_sync_options(parser, shorthand=True)
    sub = _Subcommands(parser.add_subparsers(dest="command", metavar="COMMAND"))

    sub.add_parser("run", help="the daemon: schedule every job, serve metrics, run until stopped")

    sync = sub.add_parser("sync", help="one run of every job (or the named one), then exit")
    _add_sync_options(sync, shorthand=False)

    status = sub.add_parser("status", help="per job: last runs, outcome, counts, mirror size")
    status.add_argument("--json", action="store_true", help="machine-readable output")

    sub.add_parser(
        "check",
        help="validate the configuration, reach the database and VIPeX, read the source; "
        "change nothing",
    )

    fields = sub.add_parser("fields", help="list the subscription's phonebook custom fields")
    fields.add_argument("--job", help="the job whose subscription to ask (default: every job)")

    probe = sub.add_parser(
        "probe",
        help="settle the service's write semantics on a reserved test number, record them, "
        "leave no trace",
    )
    probe.add_argument("--job", help="the job whose subscription to probe (default: the first)")
    probe.add_argument(
        "--number",
        help="the test number, international digits (default: [vipex] probe_number, "
        "else 442079460999 from Ofcom's drama range); it must not be in the phonebook",
    )

    history = sub.add_parser(
        "history", help="the change log: what the daemon did to an entry (or a job's) and why"
    )
    history.add_argument(
        "number", nargs="?", help="a phone number, as VIPeX shows it or as the CRM writes it"
    )
    history.add_argument("--job", help="only this job's changes")
    history.add_argument("--since", help="only changes since then: 7d, 12h, 30m, 2w or a date")
    history.add_argument(
        "--limit", type=int, default=200, help="at most this many changes (default: 200)"
    )
    history.add_argument("--json", action="store_true", help="machine-readable output")

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", metavar="DB_COMMAND", required=True)
    _config_option(db_sub.add_parser("upgrade", help="apply database migrations"), top=False)
    prune = db_sub.add_parser(
        "prune", help="delete runs and change-log rows older than [database] keep_days, once"
    )
    _config_option(prune, top=False)
    prune.add_argument(
        "--keep-days", type=int, help="keep this many days instead of [database] keep_days"
    )

    api = sub.add_parser("api", help="call any documented API action; print the JSON answer")
    api.add_argument("action", help="the API action, e.g. get_phonebook_custom_field_list")
    api.add_argument("params", nargs="*", metavar="key=value", help="parameters of the action")
    api.add_argument(
        "--output", type=Path, help="for get_record: the file to write the recording to"
    )

    emu = sub.add_parser("emulator", help="serve the bundled VIPeX API emulator")
    emu.add_argument("--host", default="127.0.0.1")
    emu.add_argument("--port", type=int, default=8765)
    emu.add_argument("--state", type=Path, help="JSON state file, loaded at start and kept saved")
    emu.add_argument("--username", default="api_user")
    emu.add_argument("--password", default="api_password")
    emu.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    emu.add_argument("--error-rate", type=float, default=0.0, help="share answered 5xx")
    emu.add_argument("--rate-limit-every", type=int, default=0, help="every Nth request is 429")
    emu.add_argument("--hang-rate", type=float, default=0.0, help="share of requests that hang")
    emu.add_argument("--html-rate", type=float, default=0.0, help="share of HTML 200 answers")
    emu.add_argument("--page-shift", type=int, default=0, help="entries added between pages")
    emu.add_argument("--seed", type=int, default=None, help="seed for the fault choices")
    emu.add_argument(
        "--omitted",
        choices=("keep", "clear"),
        default="keep",
        help="what set_phonebook_entry does with a field it is not sent (default: keep)",
    )
    emu.add_argument("--max-name-length", type=_positive_int, default=None, help="cut longer names")
    emu.add_argument(
        "--normalise",
        choices=("nfc", "none"),
        default="none",
        help="store text in Unicode NFC (default: none)",
    )
    emu.add_argument(
        "--trim",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="strip leading and trailing whitespace of stored text (default: off)",
    )

    from vipexsync.config import SOURCE_TYPES

    init = sub.add_parser("init", help="write a commented starter configuration")
    init.add_argument(
        "--source",
        choices=tuple(SOURCE_TYPES),
        default=next(iter(SOURCE_TYPES)),
        help="the CRM source type the starter's job reads (default: %(default)s)",
    )
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.add_argument(
        "path",
        nargs="?",
        type=Path,
        metavar="PATH",
        help="where to write it (default: --config if given, else ./vipexsync.toml)",
    )

    demo = sub.add_parser("demo", help="the embedded default: emulator + sample CRM, two runs")
    demo.add_argument("--keep", action="store_true", help="keep the temporary folder")
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _add_sync_options(parser: argparse.ArgumentParser, *, shorthand: bool) -> None:
    prefix = "shorthand for `sync --full-resync`: " if shorthand else ""
    parser.add_argument(
        "--full-resync",
        action="store_true",
        help=prefix + "also list VIPeX, repair drift, adopt and find vanished entries",
    )
    if shorthand:
        return
    parser.add_argument("--job", help="run only this job")
    parser.add_argument("--dry-run", action="store_true", help="change nothing; print the plan")
    parser.add_argument(
        "--force-delete",
        action="store_true",
        help="lift the max_deletes and max_delete_ratio limits for this run",
    )
    parser.add_argument("--plan-out", type=Path, help="write the plan as JSON to this file")
    parser.add_argument(
        "--rejects-out",
        type=Path,
        help="write every rejected record as CSV (key, location, display name, field, "
        "value, reason) for the CRM's owners",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command
    if command is None:
        if args.full_resync:
            command = "sync"
            args.job, args.dry_run, args.force_delete, args.plan_out = None, False, False, None
            args.rejects_out = None
        else:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
    try:
        return _dispatch(command, args)
    except ConfigError as exc:
        print(f"vipexsync: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except UsageError as exc:
        print(f"vipexsync: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except LockHeldError as exc:
        print(f"vipexsync: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    except VipexSyncError as exc:
        print(f"vipexsync: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("vipexsync: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _dispatch(command: str, args: argparse.Namespace) -> int:
    if command == "emulator":
        return _emulator(args)
    if command == "demo":
        from vipexsync.demo import run_demo

        return run_demo(keep=args.keep)
    if command == "init":
        return _init(args)
    config = _load(args)
    if command == "sync":
        return _sync(config, args)
    if command == "run":
        from vipexsync.daemon import run_daemon

        return run_daemon(config)
    if command == "status":
        from vipexsync.status import print_status

        return print_status(config, as_json=args.json)
    if command == "check":
        from vipexsync.check import run_check

        return run_check(config)
    if command == "fields":
        return _fields(config, args.job)
    if command == "history":
        from vipexsync.history import print_history

        return print_history(
            config,
            number=args.number,
            job=args.job,
            since=args.since,
            as_json=args.json,
            limit=args.limit,
        )
    if command == "db":
        if args.db_command == "prune":
            return _db_prune(config, args.keep_days)
        return _db_upgrade(config)
    if command == "probe":
        from vipexsync.probe import probe_command

        probe_command(config, args.job, args.number)
        return EXIT_OK
    if command == "api":
        return _api(config, args)
    raise UsageError(f"unknown command {command!r}")


def _init(args: argparse.Namespace) -> int:
    from vipexsync.config import LOCAL_CONFIG
    from vipexsync.config_render import write_starter

    path = args.path or args.config or LOCAL_CONFIG
    write_starter(path, args.source, force=args.force)
    config_option = "" if path == LOCAL_CONFIG else f" --config {path}"
    print(
        f"wrote a starter configuration ({args.source} source) to {path}; fill in the values "
        f"marked Required, then run `vipexsync{config_option} check`"
    )
    return EXIT_OK


def _load(args: argparse.Namespace) -> Config:
    from vipexsync.config import load_config
    from vipexsync.logsetup import configure_logging

    config = load_config(args.config)
    configure_logging(config.logging)
    return config


def exit_code_for(reports: Sequence[RunReport]) -> int:
    """The worst outcome wins: failure, then guarded, then skipped."""
    outcomes = {r.outcome for r in reports}
    if Outcome.FAILURE in outcomes:
        return EXIT_FAILED
    if Outcome.GUARDED in outcomes:
        return EXIT_GUARDED
    if Outcome.SKIPPED in outcomes:
        return EXIT_LOCKED
    return EXIT_OK


def _sync(config: Config, args: argparse.Namespace) -> int:
    # The engine is imported only for a job that needs it: a quiet tick is
    # decided and recorded without it (vipexsync/quick.py, issue 13).
    from vipexsync.progress import progress_for

    jobs = [config.job(args.job)] if args.job else list(config.jobs)
    if args.plan_out is not None and len(jobs) > 1:
        raise UsageError("--plan-out writes one job's plan; name the job with --job")
    if args.rejects_out is not None and len(jobs) > 1:
        raise UsageError("--rejects-out writes one job's rejections; name the job with --job")
    may_be_quiet = not (
        args.full_resync or args.dry_run or args.plan_out is not None or args.rejects_out
    )
    stop = threading.Event()
    stopped_by = _install_stop_handlers(stop)
    reports: list[RunReport] = []
    runtime: Runtime | None = None
    try:
        for job in jobs:
            if stop.is_set():
                break
            report = None
            if may_be_quiet:
                from vipexsync.quick import quiet_one_shot

                report = quiet_one_shot(config, job)
            if report is None:
                from vipexsync.runtime import Runtime
                from vipexsync.sync.model import Mode
                from vipexsync.sync.runner import RunOptions

                if runtime is None:
                    runtime = Runtime(config, stop=stop)
                options = RunOptions(
                    mode=Mode.FULL if args.full_resync else Mode.INCREMENTAL,
                    dry_run=args.dry_run,
                    force_delete=args.force_delete,
                    plan_out=args.plan_out,
                    rejects_out=args.rejects_out,
                )
                report = runtime.run_job(job, options, progress=progress_for(job.name))
            reports.append(report)
            print(report.as_text())
            if args.dry_run:
                _print_plan_hint(args.plan_out)
            print()
    finally:
        if runtime is not None:
            runtime.close()
    if signal.SIGINT in stopped_by:
        return EXIT_INTERRUPTED
    return exit_code_for(reports)


def _print_plan_hint(plan_out: Path | None) -> None:
    if plan_out is not None:
        print(f"The whole plan is in {plan_out}.")
    else:
        print("Use --plan-out FILE to see every planned change.")


def _install_stop_handlers(stop: threading.Event) -> set[int]:
    """First SIGINT/SIGTERM: finish the writes in flight and stop; second: exit at once.

    Returns the set the handler fills with the signals received, so a run that
    Ctrl-C stopped can exit 130 as shells expect.
    """
    received: set[int] = set()

    def handler(signum: int, frame: FrameType | None) -> None:
        received.add(signum)
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print(
            "\nvipexsync: stopping after the writes in flight (press Ctrl-C again to abort)",
            file=sys.stderr,
        )

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return received


def _fields(config: Config, job_name: str | None) -> int:
    from vipexsync.vipex.client import VipexClient

    jobs = [config.job(job_name)] if job_name else list(config.jobs)
    with VipexClient.from_config(config.vipex) as client:
        seen: set[str] = set()
        for job in jobs:
            if job.vipex_id in seen:
                continue
            seen.add(job.vipex_id)
            fields = client.get_phonebook_custom_field_list(job.vipex_id)
            print(f"Subscription {job.vipex_id} (job {job.name}): {len(fields)} custom field(s)")
            for field in fields:
                line = f"  {field.field_id:>5}  {field.field_type:<16} {field.field_name}"
                if field.options:
                    line += "  options: " + ", ".join(o.option_label for o in field.options)
                print(line)
    return EXIT_OK


def _db_upgrade(config: Config) -> int:
    from vipexsync.mirror.database import (
        create_engine_for,
        current_revision,
        head_revision,
        upgrade,
    )

    engine = create_engine_for(config.database.url)
    try:
        before = current_revision(engine)
        upgrade(engine)
        print(f"database at revision {head_revision()} (was {before or 'empty'})")
    finally:
        engine.dispose()
    return EXIT_OK


def _db_prune(config: Config, keep_days: int | None) -> int:
    from datetime import UTC, datetime

    from vipexsync.mirror.database import create_engine_for, ensure_schema, make_session_factory
    from vipexsync.retention import prune_history

    days = config.database.keep_days if keep_days is None else keep_days
    if days < 0:
        raise UsageError("--keep-days must be 0 (keep everything) or more")
    if days == 0:
        print("keep_days is 0: nothing is pruned")
        return EXIT_OK
    engine = create_engine_for(config.database.url)
    try:
        ensure_schema(engine, auto_upgrade=config.database.auto_upgrade)
        pruned = prune_history(make_session_factory(engine), keep_days=days, now=datetime.now(UTC))
    finally:
        engine.dispose()
    print(
        f"pruned {pruned.runs} run(s) and {pruned.changes} change-log row(s) older than {days} days"
    )
    return EXIT_OK


def _api(config: Config, args: argparse.Namespace) -> int:
    from vipexsync.vipex.client import VipexClient

    params: dict[str, object] = {}
    for item in args.params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"parameter {item!r} is not key=value")
        params[key] = value
    with VipexClient.from_config(config.vipex) as client:
        if args.action == "get_record":
            if args.output is None or "rec" not in params:
                raise UsageError("get_record needs rec=ID and --output FILE")
            recording = client.get_record(str(params["rec"]), args.output)
            print(
                json.dumps(
                    {
                        "file": str(args.output),
                        "filename": recording.filename,
                        "content_type": recording.content_type,
                        "size": recording.size,
                    },
                    ensure_ascii=False,
                    indent=2,
                )
            )
            return EXIT_OK
        answer = client.call(args.action, params)
    print(json.dumps({"onvipex_result": answer}, ensure_ascii=False, indent=2))
    return EXIT_OK


def _emulator(args: argparse.Namespace) -> int:
    from vipexsync.emulator.faults import Faults
    from vipexsync.emulator.semantics import Semantics
    from vipexsync.emulator.server import serve_forever

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    faults = Faults(
        latency_seconds=args.latency,
        error_rate=args.error_rate,
        rate_limit_every=args.rate_limit_every,
        hang_rate=args.hang_rate,
        html_rate=args.html_rate,
        page_shift=args.page_shift,
        seed=args.seed,
    )
    semantics = Semantics(
        omitted=args.omitted,
        max_name_length=args.max_name_length,
        normalise=args.normalise,
        trim=args.trim,
    )
    serve_forever(args.host, args.port, args.state, faults, args.username, args.password, semantics)
    return EXIT_OK
