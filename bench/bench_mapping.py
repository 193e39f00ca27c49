"""CPU time of map_records on 100k realistic records (two phone fields each).

Run: .venv/bin/python bench/bench_mapping.py [records]
The brief's target is well under 2 s of CPU for 100k records.
"""

from __future__ import annotations

import random
import sys
import time

from vipexsync.config import MappingConfig
from vipexsync.mapping import compile_mapping, map_records
from vipexsync.sources.base import SourceRecord
from vipexsync.vipex.models import CustomField, CustomFieldOption


def records(count: int, rng: random.Random) -> list[SourceRecord]:
    out = []
    for i in range(count):
        fields = {
            "id": str(i),
            "last_name": rng.choice(["Kovács", "Nagy", "Szabó", "Tóth"]),
            "first_name": f"Péter {i}",
            "company": "ACME Kft.",
            "segment": rng.choice(["vip", "b2b", ""]),
            "status": rng.choice(["aktív", "Inaktív ", "nincs"]),
            "ext": rng.choice(["12, 34", "", "5"]),
            "phone": f"06-1-{rng.randint(2000000, 9999999)}",
            "mobile": f"+36 30 {rng.randint(1000000, 9999999)}",
        }
        out.append(SourceRecord(key=str(i), fields=fields, locator=f"line {i + 2}"))
    return out


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    fields = (
        CustomField(1, "Ügyfélkód", "text"),
        CustomField(
            2, "Státusz", "menu", (CustomFieldOption(1, "Aktív"), CustomFieldOption(2, "Inaktív"))
        ),
        CustomField(3, "Mellékek", "number_sequence"),
    )
    cfg = MappingConfig(
        phone_fields=("phone", "mobile"),
        name="{last_name} {first_name}",
        comment="{company}",
        tags=("{segment}",),
        custom_fields={"Ügyfélkód": "{id}", "Státusz": "{status}", "Mellékek": "{ext}"},
    )
    mapping = compile_mapping(cfg, fields, job="bench")
    data = records(count, random.Random(1))
    start = time.process_time()
    result = map_records(data, mapping, region="HU", ownership_tag="crm-sync")
    cpu = time.process_time() - start
    print(
        f"{count} records -> {len(result.desired)} entries, {len(result.problems)} problems: "
        f"{cpu:.2f} s CPU ({cpu / count * 1e6:.1f} µs/record)"
    )


if __name__ == "__main__":
    main()
