"""2. Wall time against the latency bound: calls × latency / concurrency.

The default matrix skips the 100k runs whose bound alone is minutes (changes
at concurrency 1 and 4); ``--full-matrix`` runs them too. The skipped cells'
bound is printed so the cost of the full matrix is known up front.
"""

from __future__ import annotations

from bench.common import Cell, Driver, minimum_calls, print_table, rate_text
from vipexsync.sync.model import Mode

MODES = (Mode.INCREMENTAL, Mode.FULL)
TARGET = 1.3


def selected(driver: Driver, cell: Cell) -> bool:
    if driver.options.full_matrix or cell.size < 100_000:
        return True
    return cell.rate == 0 or cell.concurrency == 8


def cells(driver: Driver, size: int) -> list[Cell]:
    opts = driver.options
    return [
        Cell(size, rate, mode, concurrency)
        for rate in opts.rates
        for mode in MODES
        for concurrency in opts.concurrencies
    ]


def collect(driver: Driver, size: int) -> None:
    for cell in cells(driver, size):
        if selected(driver, cell):
            driver.measure(cell)


def report(driver: Driver) -> None:
    rows = []
    skipped_seconds = 0.0
    skipped = 0
    for size in driver.options.sizes:
        for cell in cells(driver, size):
            result = driver.results.get(cell)
            if result is None:
                changes = round(cell.size * cell.rate)
                creates = changes // 10  # bench.common.crm_rows: a tenth are creates
                calls = minimum_calls(
                    cell.mode, cell.size, changes, field_lookup=True, creates=creates
                )
                skipped_seconds += calls * driver.options.latency / cell.concurrency
                skipped += 1
                continue
            run = result.run
            ratio = run.wall_seconds / result.bound if result.bound else float("nan")
            rows.append(
                [
                    cell.size,
                    rate_text(cell.rate),
                    cell.mode.value,
                    cell.concurrency,
                    run.client_calls,
                    f"{result.bound:.2f}",
                    f"{run.wall_seconds:.2f}",
                    f"{ratio:.2f}",
                    "yes" if ratio <= TARGET else "NO",
                ]
            )
    print_table(
        f"Wall time against the latency bound ({driver.options.latency * 1000:g} ms per request)",
        [
            "entries",
            "changed",
            "mode",
            "conc",
            "calls",
            "bound s",
            "wall s",
            "wall/bound",
            f"≤ {TARGET}×",
        ],
        rows,
    )
    if skipped:
        print(
            f"\n{skipped} cells not run (use --full-matrix); their latency bound alone is "
            f"{skipped_seconds:.0f} s ({skipped_seconds / 60:.1f} min)."
        )
