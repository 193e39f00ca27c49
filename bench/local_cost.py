"""3. Local cost: planning CPU, peak memory of a full resync, the mirror on disk.

- Planning alone: ``vipexsync.sync.plan.plan`` on synthetic desired, mirror
  and remote views (process_time, best and median of 5).
- Peak RSS: a full resync of the largest size (1 % changed) in a child
  process (spawned, so it starts from a fresh interpreter); the emulator is
  in its own process and not counted. Read from the child's own ``VmHWM``
  (/proc/self/status: the high-water mark of its address space). Not from
  ``ru_maxrss``: a spawned child is forked before it execs, and Linux keeps
  the forked copy's RSS - the *parent's*, ~435 MB once the bench has built
  a 100k baseline - as the child's ru_maxrss (and so in RUSAGE_CHILDREN).
  That is shown beside it, for comparison.
- The mirror database's size on disk after that run.
- Mirror rebuild: a full resync that learns every entry (a lost database),
  measured at 10k.
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import statistics
import time
from multiprocessing.connection import Connection
from pathlib import Path

from bench.common import Driver, print_table, say
from vipexsync.domain import DesiredEntry, Entry, MirrorEntry
from vipexsync.sync.model import Mode, Policy, RemoteView
from vipexsync.sync.plan import plan

RSS_TARGET_MB = 200
PLAN_TARGET_S = 1.0


def synthetic_views(
    size: int, rate: float
) -> tuple[dict[str, DesiredEntry], dict[str, MirrorEntry], dict[str, Entry]]:
    """Desired, mirror and remote for ``size`` entries with ``rate`` of the desired changed."""
    step = int(1 / rate) if rate else 0
    desired: dict[str, DesiredEntry] = {}
    mirror: dict[str, MirrorEntry] = {}
    remote: dict[str, Entry] = {}
    for i in range(size):
        number = str(36_202_000_000 + i)
        synced = Entry(
            phonenumber=number,
            name=f"Vezeték{i % 1009} Kereszt{i % 101}",
            tags=frozenset({"crm-sync", "ugyfel"}),
            comment=f"Cég {i % 997} Kft.",
            custom_fields={7: str(i)},
        )
        wanted = synced
        if step and i % step == 0:
            wanted = Entry(number, synced.name, synced.tags, "Új cég", synced.custom_fields)
        desired[number] = DesiredEntry(wanted, str(i))
        mirror[number] = MirrorEntry(number, synced, owned=True, record_key=str(i))
        remote[number] = synced
    return desired, mirror, remote


def time_plan(size: int) -> list[list[object]]:
    desired, mirror, remote = synthetic_views(size, 0.01)
    policy = Policy(delete="owned", ownership_tag="crm-sync", managed_field_ids=frozenset({7}))
    rows: list[list[object]] = []
    for mode in (Mode.INCREMENTAL, Mode.FULL):
        view = RemoteView(entries=remote, complete=True) if mode is Mode.FULL else None
        times = []
        for _ in range(5):
            started = time.process_time()
            result = plan(desired, mirror, view, policy)
            times.append(time.process_time() - started)
        rows.append(
            [
                f"plan(), {size} entries, 1 % changed, {mode.value}",
                f"{min(times):.3f} s (median {statistics.median(times):.3f} s)",
                f"< {PLAN_TARGET_S:g} s",
                "yes" if min(times) < PLAN_TARGET_S else "NO",
                f"{len(result.changes)} changes",
            ]
        )
    return rows


def _rss_child(conn: Connection, config_path: str) -> None:
    """Child process: one full resync; sends back wall time, calls and own peak RSS."""
    from vipexsync.config import load_config
    from vipexsync.runtime import Runtime
    from vipexsync.sync.runner import RunOptions

    config = load_config(Path(config_path))
    with Runtime(config) as runtime:
        started = time.perf_counter()
        report = runtime.run_job(config.jobs[0], RunOptions(mode=Mode.FULL))
        wall = time.perf_counter() - started
    own = _own_peak_mb()
    conn.send((wall, report.api_calls, report.outcome.value, report.error, own))
    conn.close()


def _own_peak_mb() -> float:
    """This process's peak RSS since it exec'd (VmHWM), in MB; ru_maxrss as a fallback."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss(driver: Driver, size: int) -> list[list[object]]:
    ws = driver.workspace
    driver.baseline(size)
    ws.start_workload(size, 0.01)
    driver.emulator.set_latency(driver.options.latency)
    say(f"peak RSS: full resync of {size} entries (1 % changed) in a child process")
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    process = ctx.Process(target=_rss_child, args=(child, str(ws.config_path(8))))
    process.start()
    child.close()
    wall, calls, outcome, error, own = parent.recv()
    process.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if outcome != "success":
        say(f"  the run ended {outcome}: {error}")
    children = f"{after:.0f} MB" if after > before else f"≤ {before:.0f} MB, an earlier child"
    mirror_mb = ws.mirror_bytes() / 1024 / 1024
    return [
        [
            f"peak RSS, full resync of {size} entries (1 % changed, concurrency 8)",
            f"{own:.0f} MB (VmHWM; ru_maxrss: {children})",
            f"< {RSS_TARGET_MB} MB",
            "yes" if own < RSS_TARGET_MB else "NO",
            f"{calls} calls, {wall:.1f} s, {outcome}",
        ],
        [
            f"mirror on disk after it (SQLite, {size} rows + change log)",
            f"{mirror_mb:.1f} MB",
            "-",
            "-",
            f"{mirror_mb * 1024 * 1024 / size:.0f} bytes per entry",
        ],
    ]


def mirror_rebuild(driver: Driver, size: int) -> list[list[object]]:
    say(f"mirror rebuild: a full resync learning {size} entries (no latency)")
    learned = driver.workspace.build_baseline(size, learn=True)
    assert learned is not None
    per_row = learned.wall_seconds / size * 1000
    return [
        [
            f"mirror rebuild from VIPeX (full resync learns {size} entries, no latency)",
            f"{learned.wall_seconds:.1f} s",
            "-",
            "-",
            f"{per_row:.2f} ms per entry, {learned.client_calls} calls, {learned.outcome}",
        ]
    ]


def run(driver: Driver) -> None:
    largest = max(driver.options.sizes)
    rows = time_plan(largest)
    rows += peak_rss(driver, largest)
    rebuild = min(10_000, largest)
    if driver.options.full_matrix:
        rebuild = largest
    rows += mirror_rebuild(driver, rebuild)
    print_table("Local cost", ["what", "measured", "target", "met", "notes"], rows)
