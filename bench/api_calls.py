"""1. API call efficiency: calls made against the fewest possible, and the naive baseline.

Minimum (see ``common.minimum_calls``): a full resync reads ceil(N/200)
listing pages, looks the custom fields up once and writes each change; an
incremental run looks the fields up and writes each change. Both the
client's own count and the emulator's per-action counts are shown; the
ratio uses the client's. All runs at concurrency 8 (calls do not depend on it).
"""

from __future__ import annotations

from bench.common import Cell, CellResult, Driver, print_table, rate_text
from vipexsync.sync.model import Mode

CONCURRENCY = 8
MODES = (Mode.INCREMENTAL, Mode.FULL)


def naive_wanted(driver: Driver, size: int, rate: float) -> bool:
    """The naive run writes every entry: at 100k that is 250 s or more per run (--full-matrix)."""
    return driver.options.full_matrix or size < 100_000


def collect(driver: Driver, size: int) -> None:
    for rate in driver.options.rates:
        for mode in MODES:
            driver.measure(Cell(size, rate, mode, CONCURRENCY))
        if naive_wanted(driver, size, rate):
            driver.measure_naive(size, rate, CONCURRENCY)


def report(driver: Driver) -> None:
    rows = []
    for size in driver.options.sizes:
        for rate in driver.options.rates:
            naive = driver.naive.get((size, rate, CONCURRENCY))
            for mode in MODES:
                result: CellResult | None = driver.results.get(Cell(size, rate, mode, CONCURRENCY))
                if result is None:
                    continue
                run = result.run
                i = result.intended
                rows.append(
                    [
                        size,
                        rate_text(rate),
                        mode.value,
                        f"{i['create']}/{i['update']}/{i['delete']}",
                        result.minimum,
                        run.client_calls,
                        run.emulator_calls,
                        f"{result.ratio:.2f}",
                        run.outcome,
                        f"{run.wall_seconds:.2f}",
                        naive.client_calls if naive else "not run",
                        f"{naive.wall_seconds:.2f}" if naive else "not run",
                        f"{naive.client_calls / run.client_calls:.1f}×"
                        if naive and run.client_calls
                        else "-",
                    ]
                )
    print_table(
        f"API calls per run (concurrency {CONCURRENCY}; naive = set every CRM entry, "
        f"same concurrency, never deletes)",
        [
            "entries",
            "changed",
            "mode",
            "c/u/d",
            "minimum",
            "client calls",
            "emulator calls",
            "ratio",
            "outcome",
            "wall s",
            "naive calls",
            "naive wall s",
            "naive/engine calls",
        ],
        rows,
    )
