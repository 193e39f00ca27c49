"""``python -m bench``: run every benchmark (or ``--only NAME``) and print Markdown tables.

Tables go to stdout, progress to stderr. The emulator runs in a separate
process (see bench/common.py for why).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

from bench import api_calls, first_load, local_cost, targets, wall_time
from bench.common import BenchOptions, Driver, git_revision, print_machine, say

NAMES = ("targets", "api_calls", "wall_time", "local_cost", "first_load")


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(part.replace("_", "")) for part in text.split(",") if part.strip())


def parse_options(argv: list[str] | None = None) -> tuple[BenchOptions, set[str]]:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--latency", type=float, default=0.020, help="seconds added per request")
    parser.add_argument(
        "--sizes", type=_ints, default=None, help="phonebook sizes, e.g. 1000,10000"
    )
    parser.add_argument("--concurrency", type=_ints, default=(1, 4, 8), help="for wall_time")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument(
        "--full-matrix",
        action="store_true",
        help="also the 100k runs at concurrency 1 and 4, every naive run and a 100k rebuild",
    )
    parser.add_argument("--only", choices=NAMES, action="append", help="run just this (repeatable)")
    args = parser.parse_args(argv)
    sizes = args.sizes or ((200, 1000) if args.quick else (1000, 10_000, 100_000))
    options = BenchOptions(
        latency=args.latency,
        sizes=sizes,
        concurrencies=args.concurrency,
        full_matrix=args.full_matrix,
        quick=args.quick,
    )
    return options, set(args.only or NAMES)


def main(argv: list[str] | None = None) -> int:
    options, chosen = parse_options(argv)
    logging.basicConfig(level=logging.ERROR)
    print("## vipexsync benchmarks\n")
    print(f"  command: python -m bench {' '.join(sys.argv[1:])}".rstrip())
    print(f"  revision: {git_revision()} (plus uncommitted work)")
    print(f"  latency per request: {options.latency * 1000:g} ms; sizes: {options.sizes}")
    print_machine()
    started = time.perf_counter()
    with Driver(options) as driver:
        if "targets" in chosen:
            targets.run(driver)
        for size in options.sizes:
            if "api_calls" in chosen:
                api_calls.collect(driver, size)
            if "wall_time" in chosen:
                wall_time.collect(driver, size)
        if "api_calls" in chosen:
            api_calls.report(driver)
        if "wall_time" in chosen:
            wall_time.report(driver)
        if "local_cost" in chosen:
            local_cost.run(driver)
        if "first_load" in chosen:
            first_load.run(driver)
    elapsed = time.perf_counter() - started
    print(f"\nTotal bench time: {elapsed:.0f} s ({elapsed / 60:.1f} min)")
    say("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
