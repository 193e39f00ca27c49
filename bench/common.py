"""What every benchmark shares: the emulator in its own process, workloads, runs, tables.

The emulator runs in a child process (``multiprocessing``, spawn) so its
request handling neither competes with the sync for this process's GIL nor
counts towards the sync's memory. The parent drives it over a pipe: seed the
phonebook directly (no requests counted), snapshot/restore it, set the
latency, read the per-action request counts.

A *workload* is a phonebook of ``size`` entries that the daemon already
synced (emulator and mirror agree with the CRM: the baseline), plus a CRM
export in which ``rate`` of the entries changed: 80 % updated (a new
company, so a new comment), 10 % new records and 10 % removed records. Each
measured run starts again from the baseline (emulator snapshot restored,
mirror database file copied back), so runs are independent of their order.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import math
import multiprocessing as mp
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from vipexsync.config import Config, load_config, mapping_fingerprint
from vipexsync.domain import DesiredEntry, WriteState
from vipexsync.mapping import compile_mapping, map_records
from vipexsync.mirror import store
from vipexsync.mirror.database import create_engine_for, ensure_schema, make_session_factory
from vipexsync.mirror.models import MirrorEntryRow
from vipexsync.runtime import Runtime
from vipexsync.sources import open_source
from vipexsync.sync.model import Mode
from vipexsync.sync.report import RunReport
from vipexsync.sync.runner import RunOptions
from vipexsync.vipex.client import VipexClient
from vipexsync.wire import MAX_QUERYABLE_ROWS

VIPEX_ID = "1643897"
FIELD_ID = 7
FIELD_NAME = "Ügyfélkód"
OWNERSHIP_TAG = "crm-sync"
CRM_COLUMNS = ("id", "last_name", "first_name", "company", "phone", "segment")
SEGMENTS = ("ugyfel", "partner", "szallito", "vip")

# ---------------------------------------------------------------- machine and output


def machine_description() -> dict[str, str]:
    """The facts a reader needs to compare figures between machines."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    try:
        load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        load = "unknown"
    return {
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": memory,
        "python": platform.python_version(),
        "os": platform.platform(),
        "load average (1/5/15 min) at start": load,
    }


def print_machine() -> None:
    for key, value in machine_description().items():
        print(f"  {key}: {value}")
    print()


def print_table(title: str, headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """A plain Markdown table, so output can be pasted into RESULTS.md as is."""
    text_rows = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in text_rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    print(f"\n### {title}\n")
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in text_rows:
        print("| " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + " |")
    sys.stdout.flush()


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def say(message: str) -> None:
    """Progress lines go to stderr, so stdout holds only the tables."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- options


@dataclass(frozen=True)
class BenchOptions:
    latency: float = 0.020
    sizes: tuple[int, ...] = (1000, 10_000, 100_000)
    rates: tuple[float, ...] = (0.0, 0.01, 0.10)
    concurrencies: tuple[int, ...] = (1, 4, 8)
    full_matrix: bool = False
    quick: bool = False


# ---------------------------------------------------------------- the emulator process


def _emulator_main(conn: Connection) -> None:
    """Child process: serve the emulator and obey the parent's commands."""
    from vipexsync.emulator.server import serve_in_thread
    from vipexsync.emulator.state import EmulatorState, PhonebookRecord

    state = EmulatorState()
    state.add_subscription(VIPEX_ID)
    state.add_custom_field(VIPEX_ID, FIELD_ID, FIELD_NAME, "text")
    snapshots: dict[str, dict[str, Any]] = {}
    with serve_in_thread(state, vipex_id=VIPEX_ID) as running:
        conn.send((running.url, running.username, running.password))
        while True:
            command, *args = conn.recv()
            answer: object = None
            if command == "stop":
                conn.send(None)
                break
            with state.transaction() as data:
                phonebook = data.subscriptions[VIPEX_ID].phonebook
                if command == "seed":
                    phonebook.clear()
                    for number, name, tags, comment, fields in args[0]:
                        phonebook[number] = PhonebookRecord(
                            name=name, tags=list(tags), comment=comment, custom_fields=fields
                        )
                elif command == "snapshot":
                    snapshots[args[0]] = dict(phonebook)  # writes replace records, never mutate
                elif command == "restore":
                    phonebook.clear()
                    phonebook.update(snapshots[args[0]])
                elif command == "latency":
                    running.faults.latency_seconds = float(args[0])
                elif command == "counts":
                    answer = running.app.request_counts()
                elif command == "reset_counts":
                    running.app.reset_counts()
                elif command == "size":
                    answer = len(phonebook)
                elif command == "rss":
                    answer = _self_max_rss_mb()
                else:
                    answer = f"unknown command {command!r}"
            conn.send(answer)


class EmulatorProcess:
    """The bundled VIPeX emulator, served by a separate Python process."""

    def __init__(self) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_emulator_main, args=(child,), daemon=True)
        self._process.start()
        child.close()
        self._lock = threading.Lock()
        self.url, self.username, self.password = self._conn.recv()

    def _ask(self, *command: object) -> Any:
        with self._lock:
            self._conn.send(command)
            return self._conn.recv()

    def seed(self, entries: list[tuple[str, str, list[str], str, dict[int, str]]]) -> None:
        self._ask("seed", entries)

    def snapshot(self, name: str) -> None:
        self._ask("snapshot", name)

    def restore(self, name: str) -> None:
        self._ask("restore", name)

    def set_latency(self, seconds: float) -> None:
        self._ask("latency", seconds)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = self._ask("counts")
        return counts

    def reset_counts(self) -> None:
        self._ask("reset_counts")

    def size(self) -> int:
        return int(self._ask("size"))

    def close(self) -> None:
        if self._process.is_alive():
            with contextlib.suppress(EOFError, OSError):
                self._ask("stop")
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout=5)

    def __enter__(self) -> EmulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _self_max_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------- workloads


def phone_of(key: int) -> str:
    """A valid Hungarian mobile number per record, as a person might type it."""
    return f"+36 20 {2_000_000 + key:07d}"


def crm_rows(size: int, rate: float) -> tuple[list[dict[str, str]], dict[str, int]]:
    """The CRM export for ``size`` baseline records with ``rate`` of them changed.

    Returns the rows and how many entries were meant to be created, updated
    and deleted relative to the baseline.
    """
    changed = round(size * rate)
    created = changed // 10
    deleted = changed // 10
    updated = changed - created - deleted
    step = size / changed if changed else 0.0
    picked = [int(i * step) + 1 for i in range(changed)]  # spread over the phonebook
    removed = set(picked[:deleted])
    renamed = set(picked[deleted : deleted + updated])
    rows: list[dict[str, str]] = []
    for key in range(1, size + created + 1):
        if key in removed:
            continue
        company = f"Cég {key % 997} Kft."
        if key in renamed:
            company = f"Új cég {key} Zrt."
        rows.append(
            {
                "id": str(key),
                "last_name": f"Vezeték{key % 1009}",
                "first_name": f"Kereszt{key % 101}",
                "company": company,
                "phone": phone_of(key),
                "segment": SEGMENTS[key % len(SEGMENTS)],
            }
        )
    return rows, {"create": created, "update": updated, "delete": deleted}


def write_crm(path: Path, rows: Sequence[dict[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=CRM_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


CONFIG_TOML = """\
[vipex]
url = "{url}"
username = "{username}"
password_file = "vipex-password"
allow_http = true
timeout_seconds = 60
concurrency = {concurrency}
retry_deadline_seconds = 120

[database]
url = "sqlite:///{database}"

[metrics]
listen = ""

[logging]
level = "WARNING"

[[jobs]]
name = "crm"
vipex_id = "{vipex_id}"
interval_seconds = 300
full_resync_cron = ""
default_region = "HU"
ownership_tag = "{tag}"
delete = "owned"
max_deletes = 1000000
max_delete_ratio = 1.0
min_source_records = 1

[jobs.source]
type = "csv"
path = "crm.csv"
key = "id"

[jobs.mapping]
phone_fields = ["phone"]
name = "{{last_name}} {{first_name}}"
comment = "{{company}}"
tags = ["{{segment}}"]
[jobs.mapping.custom_fields]
"{field}" = "{{id}}"
"""


@dataclass
class Measurement:
    """One measured run of the engine (or of the naive baseline)."""

    wall_seconds: float
    client_calls: int
    emulator_calls: int
    by_action: dict[str, int]
    outcome: str = "success"
    planned: dict[str, int] = field(default_factory=dict)
    error: str | None = None


class Workspace:
    """A folder with the CRM export, the password file, configs and the mirror."""

    def __init__(self, emulator: EmulatorProcess, root: Path | None = None) -> None:
        self.emulator = emulator
        self._tmp = None if root is not None else tempfile.TemporaryDirectory(prefix="vxbench-")
        self.root = root if root is not None else Path(self._tmp.name)  # type: ignore[union-attr]
        self.root.mkdir(parents=True, exist_ok=True)
        secret = self.root / "vipex-password"
        secret.write_text(emulator.password + "\n", encoding="utf-8")
        secret.chmod(0o600)
        self.mirror = self.root / "mirror.sqlite3"
        self.crm = self.root / "crm.csv"
        self.baseline_size: int | None = None

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()

    def config_path(self, concurrency: int) -> Path:
        path = self.root / f"vipexsync-c{concurrency}.toml"
        if not path.exists():
            path.write_text(
                CONFIG_TOML.format(
                    url=self.emulator.url,
                    username=self.emulator.username,
                    concurrency=concurrency,
                    database=self.mirror,
                    vipex_id=VIPEX_ID,
                    tag=OWNERSHIP_TAG,
                    field=FIELD_NAME,
                ),
                encoding="utf-8",
            )
        return path

    def config(self, concurrency: int) -> Config:
        return load_config(self.config_path(concurrency))

    def _mirror_files(self, base: Path) -> list[Path]:
        return [base, base.with_name(base.name + "-wal"), base.with_name(base.name + "-shm")]

    def save_mirror(self, name: str) -> None:
        for src in self._mirror_files(self.mirror):
            dst = src.with_name(src.name.replace("mirror.sqlite3", f"{name}.sqlite3"))
            if src.exists():
                shutil.copyfile(src, dst)
            else:
                dst.unlink(missing_ok=True)

    def restore_mirror(self, name: str) -> None:
        for dst in self._mirror_files(self.mirror):
            src = dst.with_name(dst.name.replace("mirror.sqlite3", f"{name}.sqlite3"))
            if src.exists():
                shutil.copyfile(src, dst)
            else:
                dst.unlink(missing_ok=True)

    def mirror_bytes(self) -> int:
        return sum(p.stat().st_size for p in self._mirror_files(self.mirror) if p.exists())

    # -- the baseline: a phonebook the daemon already synced ----------------------

    def desired(self, size: int) -> dict[str, DesiredEntry]:
        """The baseline CRM written out and mapped exactly as a run maps it."""
        rows, _ = crm_rows(size, 0.0)
        write_crm(self.crm, rows)
        return self.map_crm()

    def map_crm(self) -> dict[str, DesiredEntry]:
        """The current CRM export mapped exactly as a run maps it."""
        config = self.config(4)
        job = config.jobs[0]
        with VipexClient.from_config(config.vipex) as client:
            fields = client.get_phonebook_custom_field_list(job.vipex_id)
        compiled = compile_mapping(job.mapping, fields, job=job.name)
        mapped = map_records(
            open_source(job.source).read(),
            compiled,
            region=job.default_region,
            ownership_tag=job.ownership_tag,
        )
        if mapped.problems:
            raise RuntimeError(f"the generated CRM has rejected records: {mapped.problems[:3]}")
        return dict(mapped.desired)

    def seed_remote(self, desired: dict[str, DesiredEntry]) -> None:
        """Put the entries straight into the emulator (no requests counted)."""
        self.emulator.seed(
            [
                (
                    number,
                    want.entry.name,
                    sorted(want.entry.tags),
                    want.entry.comment,
                    {k: v for k, v in want.entry.custom_fields.items() if v},
                )
                for number, want in desired.items()
            ]
        )

    def seed_mirror(self, desired: dict[str, DesiredEntry]) -> None:
        """Write the mirror rows a completed sync of ``desired`` leaves, in one bulk insert.

        Equivalent to what the store records after confirmed writes (same
        column encoding, via the store's own helper); learning them through a
        full resync costs ~3 ms per row in record_confirmed (see RESULTS.md),
        too slow to repeat for a 100k baseline.
        """
        config = self.config(4)
        job = config.jobs[0]
        engine = create_engine_for(config.database.url)
        try:
            ensure_schema(engine, auto_upgrade=True)
            now = dt.datetime.now(dt.UTC)
            rows = [
                {
                    "job": job.name,
                    "phonenumber": number,
                    **store._content(want.entry),
                    "owned": True,
                    "record_key": want.record_key,
                    "first_written_at": now,
                    "last_written_at": now,
                    "last_seen_at": now,
                    "state": WriteState.APPLIED.value,
                    "attempts": 0,
                    "last_error": None,
                }
                for number, want in desired.items()
            ]
            with make_session_factory(engine)() as session:
                session.execute(sa.insert(MirrorEntryRow), rows)
                store.set_job_state(
                    session,
                    job.name,
                    mapping_fingerprint=mapping_fingerprint(job),
                    last_full_resync_at=now,
                    now=now,
                )
                session.commit()
        finally:
            engine.dispose()

    def build_baseline(self, size: int, *, learn: bool = False) -> Measurement | None:
        """A phonebook of ``size`` entries that the daemon already synced.

        VIPeX is seeded directly; the mirror is bulk-written (default) or, with
        ``learn``, built by the engine itself: a full resync without latency
        that finds every entry tagged and equal, and records it (the path a
        lost database takes). The learning run's measurement is returned.
        """
        for path in self._mirror_files(self.mirror):
            path.unlink(missing_ok=True)
        desired = self.desired(size)
        self.seed_remote(desired)
        learned: Measurement | None = None
        if learn:
            self.emulator.set_latency(0.0)
            learned = self.run(Mode.FULL, concurrency=8)
            if learned.outcome != "success":
                raise RuntimeError(f"building the {size}-entry baseline failed: {learned.error}")
        else:
            self.seed_mirror(desired)
        self.emulator.snapshot("baseline")
        self.save_mirror("baseline")
        self.baseline_size = size
        return learned

    def start_workload(self, size: int, rate: float) -> dict[str, int]:
        """Baseline restored, CRM export with ``rate`` changed; the intended changes."""
        if self.baseline_size != size:
            raise RuntimeError("build_baseline(size) first")
        self.emulator.restore("baseline")
        self.restore_mirror("baseline")
        rows, intended = crm_rows(size, rate)
        write_crm(self.crm, rows)
        return intended

    # -- one run of the engine ------------------------------------------------------

    def run(self, mode: Mode, *, concurrency: int) -> Measurement:
        config = self.config(concurrency)
        self.emulator.reset_counts()
        with Runtime(config) as runtime:
            started = time.perf_counter()
            report = runtime.run_job(config.jobs[0], RunOptions(mode=mode))
            wall = time.perf_counter() - started
        return self._measured(report, wall)

    def _measured(self, report: RunReport, wall: float) -> Measurement:
        counts = self.emulator.counts()
        return Measurement(
            wall_seconds=wall,
            client_calls=report.api_calls,
            emulator_calls=sum(counts.values()),
            by_action=counts,
            outcome=report.outcome.value,
            planned=dict(report.planned),
            error=report.error,
        )


def minimum_calls(
    mode: Mode, remote_size: int, changes: int, *, field_lookup: bool, creates: int = 0
) -> int:
    """The fewest requests any correct run can make.

    A full resync must read every listing page and write every change; an
    incremental run writes the changes and reads each number it creates first
    (``get_phonebook_entry``: it never writes over content nobody has seen,
    README "Looking before writing"). Either needs the custom-field lookup
    when the mapping names custom fields (the ids are per subscription).
    """
    lookup = 1 if field_lookup else 0
    if mode is Mode.INCREMENTAL:
        return changes + creates + lookup
    pages = max(1, math.ceil(remote_size / MAX_QUERYABLE_ROWS))
    return pages + lookup + changes


def planned_changes(planned: dict[str, int]) -> int:
    return sum(v for k, v in planned.items() if k != "noop")


def git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# ---------------------------------------------------------------- the shared driver


@dataclass(frozen=True)
class Cell:
    """One measured combination: workload, mode, concurrency."""

    size: int
    rate: float
    mode: Mode
    concurrency: int


@dataclass
class CellResult:
    cell: Cell
    intended: dict[str, int]
    minimum: int
    run: Measurement
    latency: float

    @property
    def ratio(self) -> float:
        """Calls made over the minimum (the client's count)."""
        return self.run.client_calls / self.minimum if self.minimum else float("nan")

    @property
    def bound(self) -> float:
        """The latency bound: calls × latency / concurrency."""
        return self.run.client_calls * self.latency / self.cell.concurrency


class Driver:
    """Owns the emulator process and the workspace; measures cells, each once."""

    def __init__(self, options: BenchOptions) -> None:
        self.options = options
        self.emulator = EmulatorProcess()
        self.workspace = Workspace(self.emulator)
        self.results: dict[Cell, CellResult] = {}
        self.naive: dict[tuple[int, float, int], Measurement] = {}

    def close(self) -> None:
        self.workspace.close()
        self.emulator.close()

    def __enter__(self) -> Driver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def baseline(self, size: int) -> None:
        if self.workspace.baseline_size != size:
            say(f"building the {size}-entry baseline")
            self.workspace.build_baseline(size)

    def measure(self, cell: Cell) -> CellResult:
        cached = self.results.get(cell)
        if cached is not None:
            return cached
        self.baseline(cell.size)
        ws = self.workspace
        intended = ws.start_workload(cell.size, cell.rate)
        self.emulator.set_latency(self.options.latency)
        say(
            f"run: {cell.size} entries, {cell.rate:.0%} changed, {cell.mode.value}, "
            f"concurrency {cell.concurrency}"
        )
        run = ws.run(cell.mode, concurrency=cell.concurrency)
        minimum = minimum_calls(
            cell.mode,
            cell.size,
            sum(intended.values()),
            field_lookup=True,
            creates=intended.get("create", 0),
        )
        if run.outcome != "success":
            say(f"  the run ended {run.outcome}: {run.error}")
        result = CellResult(cell, intended, minimum, run, self.options.latency)
        self.results[cell] = result
        return result

    def measure_naive(self, size: int, rate: float, concurrency: int) -> Measurement:
        from bench.naive import naive_sync

        key = (size, rate, concurrency)
        cached = self.naive.get(key)
        if cached is not None:
            return cached
        self.baseline(size)
        self.workspace.start_workload(size, rate)
        self.emulator.set_latency(self.options.latency)
        say(f"naive run: {size} entries, {rate:.0%} changed, concurrency {concurrency}")
        result = naive_sync(self.workspace, self.emulator, concurrency=concurrency)
        self.naive[key] = result
        return result


def rate_text(rate: float) -> str:
    return f"{rate * 100:g} %"
