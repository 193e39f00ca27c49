"""5. Issue 13's table: the engine's local cost beside a naive ``requests`` client, same run.

Every figure is measured in a fresh process (bench/child.py, or the real
``vipexsync sync`` CLI for the one-shot tick) against the emulator process,
each from the restored baseline. CPU time is the primary figure (the
process's user + system time, from ``RUSAGE_CHILDREN`` around the child, or
``time.process_time`` inside it): on a shared machine wall time mostly
measures the other load. The naive client (bench/child.py ``naive``) is plain
``requests`` with a thread pool of the same concurrency, sending the same
writes and deletes; it has no mirror, so for a quiet tick it must write every
entry again (what a cron'd naive script does).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import OWNERSHIP_TAG, VIPEX_ID, Driver, minimum_calls, print_table, say
from vipexsync.domain import DesiredEntry
from vipexsync.sync.model import Mode

CONCURRENCY = 8
RATE = 0.10
# Measuring the naive client re-writing every entry of a quiet tick takes ~N ms of CPU and
# N × latency / concurrency of wall; above this size it is estimated from its measured
# per-write CPU instead.
NAIVE_FULL_WRITE_LIMIT = 5000


@dataclass
class ChildRun:
    """One child process: its own report and its CPU time seen from outside."""

    report: dict[str, Any]
    process_cpu: float

    @property
    def runs(self) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = self.report["runs"]
        return runs

    @property
    def peak_mb(self) -> float:
        return float(self.report.get("peak_mb", 0.0))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_child(command: list[str], *, parse: bool = True) -> ChildRun:
    """Run one measured process to its end; its CPU from the parent's RUSAGE_CHILDREN."""
    # An installed vipexsync has its modules compiled (pip writes the .pyc files);
    # with PYTHONDONTWRITEBYTECODE set, every child would compile them again.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    before = _children_cpu()
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    cpu = _children_cpu() - before
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command[:4])} ... exited {done.returncode}: {done.stderr[-2000:]}"
        )
    report = json.loads(done.stdout) if parse else {"runs": []}
    return ChildRun(report, cpu)


def _python() -> str:
    return sys.executable


def _vipexsync() -> list[str]:
    script = Path(sys.executable).with_name("vipexsync")
    return [str(script)] if script.exists() else [sys.executable, "-m", "vipexsync"]


def _wire(entry: DesiredEntry) -> list[Any]:
    e = entry.entry
    fields = {str(k): v for k, v in sorted(e.custom_fields.items()) if v}
    return [e.phonenumber, e.name, sorted(e.tags), e.comment, fields]


class Targets:
    def __init__(self, driver: Driver, size: int) -> None:
        self.driver = driver
        self.ws = driver.workspace
        self.size = size
        self.latency = driver.options.latency
        self.rows: list[list[object]] = []
        self.ratios: list[tuple[str, float, float | None]] = []
        self._baseline_desired: dict[str, list[Any]] | None = None

    # -- helpers ------------------------------------------------------------------

    def start(self, rate: float, *, latency: float | None = None) -> None:
        self.driver.baseline(self.size)
        if self._baseline_desired is None:
            self.ws.start_workload(self.size, 0.0)
            self._baseline_desired = {n: _wire(d) for n, d in self.ws.map_crm().items()}
        self.ws.start_workload(self.size, rate)
        self.driver.emulator.set_latency(self.latency if latency is None else latency)
        self.driver.emulator.reset_counts()

    def engine(self, mode: Mode, runs: int = 1) -> ChildRun:
        config = self.ws.config_path(CONCURRENCY)
        command = [_python(), "-m", "bench.child", "engine", "--config", str(config)]
        child = run_child([*command, "--mode", mode.value, "--runs", str(runs)])
        for run in child.runs:
            if run["outcome"] != "success":
                say(f"  the engine run ended {run['outcome']}: {run['error']}")
        return child

    def naive(self, what: str, work: dict[str, Any]) -> ChildRun:
        path = self.ws.root / "naive-work.json"
        path.write_text(json.dumps(work, ensure_ascii=False), encoding="utf-8")
        return run_child(
            [
                _python(),
                "-m",
                "bench.child",
                "naive",
                what,
                "--url",
                self.driver.emulator.url,
                "--username",
                self.driver.emulator.username,
                "--password-file",
                str(self.ws.root / "vipex-password"),
                "--vipex-id",
                VIPEX_ID,
                "--tag",
                OWNERSHIP_TAG,
                "--concurrency",
                str(CONCURRENCY),
                "--work",
                str(path),
            ]
        )

    def changes(self) -> dict[str, Any]:
        """The writes and deletes that take the baseline to the current CRM export."""
        assert self._baseline_desired is not None
        now = {n: _wire(d) for n, d in self.ws.map_crm().items()}
        puts = [e for n, e in now.items() if self._baseline_desired.get(n) != e]
        deletes = [n for n in self._baseline_desired if n not in now]
        return {"put": puts, "delete": deletes, "desired": list(now.values())}

    def row(self, figure: str, engine: str, naive: str, ratio: str, now: str, target: str) -> None:
        self.rows.append([figure, engine, naive, ratio, now, target])

    def calls(self, what: str, calls: int, minimum: int, naive_calls: int | None = None) -> None:
        naive_ratio = naive_calls / minimum if naive_calls is not None else None
        self.ratios.append((what, calls / minimum, naive_ratio))

    # -- the rows -------------------------------------------------------------------

    def measure(self) -> None:
        n = self.size
        say(f"issue 13: naive per-write CPU, {n} entries {RATE:.0%} changed")
        self.start(RATE)
        work = self.changes()
        writes = len(work["put"]) + len(work["delete"])
        creates = sum(1 for e in work["put"] if e[0] not in (self._baseline_desired or {}))
        naive_ops = self.naive("ops", {"put": work["put"], "delete": work["delete"]})
        naive_run = naive_ops.runs[0]
        naive_per_write = naive_run["cpu"] / writes
        naive_startup = naive_ops.process_cpu - naive_run["cpu"]

        # 1. the quiet tick as a one-shot CLI process. After a change the first
        # no-change tick takes the normal path (it reads, maps and compares
        # everything, and stores the quiet key); the later ones are quiet ticks.
        say("issue 13: no-change ticks, one-shot `vipexsync sync`: 1 normal, 2 quiet, 1 touched")
        self.start(0.0)
        config = self.ws.config_path(CONCURRENCY)
        sync = [*_vipexsync(), "sync", "--config", str(config)]
        normal_one_shot = run_child(sync, parse=False)
        self.calls(
            "no-change tick, one-shot, normal path",
            sum(self.driver.emulator.counts().values()),
            minimum_calls(Mode.INCREMENTAL, n, 0, field_lookup=True),
        )
        one_shot = []
        for i in range(2):
            self.driver.emulator.reset_counts()
            one_shot.append(run_child(sync, parse=False))
            self.calls(
                f"quiet tick {i + 1}, one-shot",
                sum(self.driver.emulator.counts().values()),
                minimum_calls(Mode.INCREMENTAL, n, 0, field_lookup=True),
            )
        # The export written again with the same bytes (a nightly re-export that
        # changed nothing): a new inode and mtime, so only the hash says "same".
        data = self.ws.crm.read_bytes()
        self.ws.crm.unlink()
        self.ws.crm.write_bytes(data)
        touched = run_child(sync, parse=False)
        engine_tick = min(c.process_cpu for c in one_shot)
        if n <= NAIVE_FULL_WRITE_LIMIT:
            say("issue 13: the naive client re-writing every entry")
            self.start(0.0)
            every = self.naive("ops", {"put": self.changes()["desired"]})
            naive_tick = f"{every.process_cpu:.2f} s ({every.runs[0]['calls']} writes)"
            naive_tick_inner = every.runs[0]["cpu"]
        else:
            naive_tick_inner = naive_per_write * n
            naive_tick = f"≈ {naive_startup + naive_tick_inner:.0f} s (est.: {n} writes)"
        self.row(
            f"no-change incremental tick, {n} entries, one-shot `vipexsync sync` process CPU "
            "(quiet tick: a clean no-change run before it)",
            f"{engine_tick:.2f} s (runs: {', '.join(f'{c.process_cpu:.2f}' for c in one_shot)})",
            naive_tick,
            "-",
            "3.9 s",
            "≤ 0.5 s",
        )
        self.row(
            "same, the export rewritten with the same bytes (new mtime and inode; hash hit)",
            f"{touched.process_cpu:.2f} s",
            "-",
            "-",
            "-",
            "-",
        )
        self.row(
            "same, normal path: the first no-change tick after a change (or any tick of a "
            "source without a digest: SQL, HTTP, CardDAV)",
            f"{normal_one_shot.process_cpu:.2f} s",
            "-",
            "-",
            "3.9 s",
            "-",
        )

        # 2. the same inside one long-lived process (the daemon's ticks): the 1st
        # takes the normal path and stores the key, the later ones are quiet.
        say("issue 13: no-change ticks inside one process (x4)")
        self.start(0.0)
        ticks = self.engine(Mode.INCREMENTAL, runs=4)
        later = statistics.median(r["cpu"] for r in ticks.runs[1:])
        for i, run in enumerate(ticks.runs):
            self.calls(f"quiet tick {i + 1} in one process", run["calls"], 1)
        self.row(
            "same, inside the daemon (second and later ticks), CPU per tick",
            f"{later:.2f} s (later ticks "
            + ", ".join(f"{r['cpu']:.2f}" for r in ticks.runs[1:])
            + ")",
            f"≈ {naive_tick_inner:.0f} s (re-writes all)"
            if n > NAIVE_FULL_WRITE_LIMIT
            else f"{naive_tick_inner:.2f} s (re-writes all)",
            "-",
            "-",
            "≤ 0.3 s",
        )
        self.row(
            "same, inside the daemon, normal path (the 1st tick; every tick of a source "
            "without a digest)",
            f"{ticks.runs[0]['cpu']:.2f} s",
            "-",
            "-",
            "3.2 s",
            "-",
        )
        quiet_cpu = ticks.runs[0]["cpu"]

        # 3. + 4. writes: incremental and full at RATE changed
        results: dict[Mode, ChildRun] = {}
        for mode in (Mode.INCREMENTAL, Mode.FULL):
            say(f"issue 13: engine, {n} entries {RATE:.0%} changed, {mode.value}")
            self.start(RATE)
            results[mode] = self.engine(mode)
        inc = results[Mode.INCREMENTAL].runs[0]
        whole = inc["cpu"] / inc["calls"]
        marginal = (inc["cpu"] - quiet_cpu) / writes
        self.row(
            f"client CPU per write / naive CPU per write ({writes} writes)",
            f"{whole * 1000:.2f} ms whole run; {marginal * 1000:.2f} ms beyond a quiet tick",
            f"{naive_per_write * 1000:.2f} ms",
            f"{whole / naive_per_write:.2f}× ({marginal / naive_per_write:.2f}× marginal)",
            "1.6×",
            "≤ 1.1×",
        )
        say(f"issue 13: naive full resync, {n} entries {RATE:.0%} changed")
        self.start(RATE)
        naive_full = self.naive("full", {"desired": work["desired"]})
        for mode, naive_child in ((Mode.INCREMENTAL, naive_ops), (Mode.FULL, naive_full)):
            run = results[mode].runs[0]
            bound = run["calls"] * self.latency / CONCURRENCY
            nrun = naive_child.runs[0]
            nbound = nrun["calls"] * self.latency / CONCURRENCY
            minimum = minimum_calls(mode, n, writes, field_lookup=True, creates=creates)
            self.calls(f"{RATE:.0%} changed, {mode.value}", run["calls"], minimum, nrun["calls"])
            self.row(
                f"wall / latency bound, {n}, {RATE:.0%} changed, conc {CONCURRENCY}, {mode.value}",
                f"{run['wall'] / bound:.2f}× ({run['wall']:.1f} s / {bound:.1f} s)",
                f"{nrun['wall'] / nbound:.2f}× ({nrun['wall']:.1f} s / {nbound:.1f} s)",
                "-",
                "1.46×" if mode is Mode.INCREMENTAL else "1.48×",
                "≤ 1.2×",
            )

        # 5. mirror rebuild: a full resync that learns every entry, no latency
        say(f"issue 13: mirror rebuild, {n} entries, no latency")
        self.start(0.0, latency=0.0)
        for path in self.ws._mirror_files(self.ws.mirror):
            path.unlink(missing_ok=True)
        rebuild = self.engine(Mode.FULL).runs[0]
        self.calls("rebuild", rebuild["calls"], minimum_calls(Mode.FULL, n, 0, field_lookup=True))
        self.start(0.0, latency=0.0)
        listing = self.naive("list", {}).runs[0]
        self.row(
            f"mirror rebuild (full resync learning {n} entries), local time per entry",
            f"{rebuild['cpu'] / n * 1000:.3f} ms CPU, {rebuild['wall'] / n * 1000:.3f} ms wall",
            f"{listing['cpu'] / n * 1000:.3f} ms CPU, {listing['wall'] / n * 1000:.3f} ms wall "
            "(listing only)",
            f"{rebuild['cpu'] / listing['cpu']:.2f}× CPU",
            "0.17 ms",
            "≤ 0.2 ms",
        )

        # 6. peak RSS of the full resync measured above
        self.row(
            f"peak RSS, {n} full resync ({RATE:.0%} changed)",
            f"{results[Mode.FULL].peak_mb:.0f} MB",
            f"{naive_full.peak_mb:.0f} MB",
            f"{results[Mode.FULL].peak_mb / naive_full.peak_mb:.2f}×",
            "185 MB",
            "≤ 150 MB",
        )

        # 7. calls over the minimum, every run above
        worst = max(r for _, r, _ in self.ratios)
        detail = "; ".join(
            f"{w} {r:.2f}" + (f" (naive {nr:.2f})" if nr is not None else "")
            for w, r, nr in self.ratios
        )
        self.row(
            "API calls / minimum, every cell",
            f"{worst:.2f} (worst)",
            "see notes",
            "-",
            "1.00",
            "1.00",
        )
        print_table(
            f"Issue 13 targets: {n} entries, concurrency {CONCURRENCY}, "
            f"{self.latency * 1000:g} ms per request, load at end {_load()}",
            ["figure", "vipexsync", "naive requests client", "ratio", "issue's 'now'", "target"],
            self.rows,
        )
        print(f"\nCalls / minimum per run: {detail}")


def _load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def run(driver: Driver) -> None:
    size = 5000 if driver.options.quick else max(driver.options.sizes)
    Targets(driver, size).measure()
