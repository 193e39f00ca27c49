"""The processes the issue-13 table measures, one per run: ``python -m bench.child KIND ...``.

Each prints one JSON object on stdout. Running every measured program in a
fresh process keeps its CPU time and memory apart from the bench parent's
(which holds a 100k baseline) and from the emulator (a third process).

- ``engine``: the engine through ``Runtime.run_job`` (what the daemon calls),
  ``--runs`` times in one process, as the daemon's ticks are; per run the
  process CPU (``time.process_time``), wall time and API calls.
- ``naive``: the simplest client a user could write instead: plain
  ``requests`` (not vipexsync's client), a ``ThreadPoolExecutor`` of
  ``--concurrency`` workers with one ``requests.Session`` each, form-encoded
  POSTs of the documented actions. ``ops`` mode sends the given writes and
  deletes; ``full`` mode lists the whole phonebook, compares it with the
  given desired entries and writes the difference (a naive full resync);
  ``list`` mode only lists (what learning the phonebook costs at the least).

Both report their own peak RSS (``VmHWM``, see bench/local_cost.py for why
not ``ru_maxrss``).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

PAGE = 200


def own_peak_mb() -> float:
    for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


# ---------------------------------------------------------------- the engine


def engine(config_path: str, mode: str, runs: int) -> dict[str, Any]:
    from vipexsync.config import load_config
    from vipexsync.runtime import Runtime
    from vipexsync.sync.model import Mode
    from vipexsync.sync.runner import RunOptions

    config = load_config(Path(config_path))
    job = config.jobs[0]
    results = []
    with Runtime(config) as runtime:
        for _ in range(runs):
            cpu = time.process_time()
            wall = time.perf_counter()
            report = runtime.run_job(job, RunOptions(mode=Mode(mode)))
            results.append(
                {
                    "cpu": time.process_time() - cpu,
                    "wall": time.perf_counter() - wall,
                    "calls": report.api_calls,
                    "outcome": report.outcome.value,
                    "planned": dict(report.planned),
                    "error": report.error,
                }
            )
    return {"runs": results, "peak_mb": own_peak_mb()}


# ---------------------------------------------------------------- the naive client


class Naive:
    """Plain requests: one Session per worker thread, Basic auth, form-encoded POSTs."""

    def __init__(self, url: str, username: str, password: str, vipex_id: str) -> None:
        self.url = url.rstrip("/") + "/?rt=api"
        self.auth = (username, password)
        self.vipex_id = vipex_id
        self.local = threading.local()
        self.calls = 0
        self.lock = threading.Lock()

    def session(self) -> Any:
        import requests

        session = getattr(self.local, "session", None)
        if session is None:
            session = requests.Session()
            session.auth = self.auth
            self.local.session = session
        return session

    def call(self, action: str, **params: str) -> dict[str, Any]:
        data = {"action": action, "version": "1.0", "format": "json", "vipex_id": self.vipex_id}
        data.update(params)
        with self.lock:
            self.calls += 1
        response = self.session().post(self.url, data=data, timeout=60)
        response.raise_for_status()
        answer: dict[str, Any] = response.json()["onvipex_result"]
        if str(answer.get("result")) != "1":
            raise RuntimeError(f"{action}: {answer.get('reason')}")
        return answer

    def put(self, entry: list[Any]) -> None:
        number, name, tags, comment, fields = entry
        options = [{"field_id": int(k), "field_value": v} for k, v in sorted(fields.items())]
        self.call(
            "set_phonebook_entry",
            phonenumber=number,
            name=name,
            tags=",".join(tags),
            comment=comment,
            custom_field_options=json.dumps(options, ensure_ascii=False),
        )

    def delete(self, number: str) -> None:
        self.call("del_phonebook_entry", phonenumber=number)

    def page(self, offset: int) -> dict[str, Any]:
        return self.call("get_phonebook_list", offset=str(offset), limit=str(PAGE))

    def listing(self, concurrency: int) -> dict[str, list[Any]]:
        first = self.page(0)
        total = int(first["metadata"]["full_count"])
        pages = [first]
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            pages += pool.map(self.page, range(PAGE, total, PAGE))
        remote: dict[str, list[Any]] = {}
        for page in pages:
            for row in page["phonebook_list"]:
                number = str(row["phonenumber"])
                tags = sorted(t for t in row["tags"].split(",") if t)
                fields = {str(o["field_id"]): o["field_value"] for o in row["custom_field_options"]}
                remote[number] = [number, row["name"], tags, row["comment"], fields]
        return remote


def naive(args: argparse.Namespace) -> dict[str, Any]:
    client = Naive(
        args.url, args.username, Path(args.password_file).read_text().strip(), args.vipex_id
    )
    work = json.loads(Path(args.work).read_text(encoding="utf-8")) if args.work else {}
    cpu = time.process_time()
    wall = time.perf_counter()
    puts: list[list[Any]] = work.get("put", [])
    deletes: list[str] = work.get("delete", [])
    if args.what in ("full", "list"):
        remote = client.listing(args.concurrency)
        if args.what == "full":
            desired = {entry[0]: entry for entry in work["desired"]}
            puts = [e for n, e in desired.items() if remote.get(n) != e]
            deletes = [n for n, e in remote.items() if n not in desired and args.tag in e[2]]
    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        for _ in pool.map(client.put, puts):
            pass
        for _ in pool.map(client.delete, deletes):
            pass
    return {
        "runs": [
            {
                "cpu": time.process_time() - cpu,
                "wall": time.perf_counter() - wall,
                "calls": client.calls,
                "writes": len(puts) + len(deletes),
                "outcome": "success",
            }
        ],
        "peak_mb": own_peak_mb(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.child")
    sub = parser.add_subparsers(dest="kind", required=True)
    one = sub.add_parser("engine")
    one.add_argument("--config", required=True)
    one.add_argument("--mode", default="incremental")
    one.add_argument("--runs", type=int, default=1)
    two = sub.add_parser("naive")
    two.add_argument("what", choices=("ops", "full", "list"))
    for name in ("--url", "--username", "--password-file", "--vipex-id"):
        two.add_argument(name, required=True)
    two.add_argument("--work", default="")
    two.add_argument("--tag", default="crm-sync")
    two.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    result = engine(args.config, args.mode, args.runs) if args.kind == "engine" else naive(args)
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
