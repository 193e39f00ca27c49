"""4. First load: every CRM entry created in an empty phonebook, with an empty mirror.

An ordinary (incremental) first run: no listing, one create per entry, at the
configured default concurrency (4) and at 8.
"""

from __future__ import annotations

from bench.common import Driver, crm_rows, print_table, say, write_crm
from vipexsync.sync.model import Mode


def run(driver: Driver) -> None:
    size = 1000 if driver.options.quick else 10_000
    ws = driver.workspace
    rows = []
    for concurrency in (4, 8):
        driver.emulator.seed([])
        for path in ws._mirror_files(ws.mirror):
            path.unlink(missing_ok=True)
        ws.baseline_size = None
        write_crm(ws.crm, crm_rows(size, 0.0)[0])
        driver.emulator.set_latency(driver.options.latency)
        say(f"first load: {size} creates, concurrency {concurrency}")
        run = ws.run(Mode.INCREMENTAL, concurrency=concurrency)
        created = run.by_action.get("set_phonebook_entry", 0)
        bound = run.client_calls * driver.options.latency / concurrency
        rows.append(
            [
                size,
                concurrency,
                run.client_calls,
                run.emulator_calls,
                driver.emulator.size(),
                f"{run.wall_seconds:.1f}",
                f"{bound:.1f}",
                f"{run.wall_seconds / bound:.2f}",
                f"{created / run.wall_seconds:.0f}",
                run.outcome,
            ]
        )
    print_table(
        f"First load into an empty phonebook ({driver.options.latency * 1000:g} ms per request)",
        [
            "entries",
            "conc",
            "client calls",
            "emulator calls",
            "entries in VIPeX",
            "wall s",
            "bound s",
            "wall/bound",
            "creates/s",
            "outcome",
        ],
        rows,
    )
