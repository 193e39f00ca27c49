"""The baseline a user would otherwise cron: set every CRM entry, every run.

No mirror, no listing, no comparison: read the CRM, map it (with the same
mapping code, so both sides write identical entries), then
``set_phonebook_entry`` for every entry through the same client, with the
same concurrency as the engine run it is compared with (a thread pool of
``concurrency`` workers). It never deletes: without a listing or a memory it
cannot know what to remove, so a removed CRM record stays in the phonebook.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from bench.common import EmulatorProcess, Measurement, Workspace
from vipexsync.mapping import compile_mapping, map_records
from vipexsync.sources import open_source
from vipexsync.vipex.client import VipexClient
from vipexsync.vipex.models import CustomFieldValue


def naive_sync(ws: Workspace, emulator: EmulatorProcess, *, concurrency: int) -> Measurement:
    """One naive run over the workspace's current CRM export."""
    config = ws.config(concurrency)
    job = config.jobs[0]
    emulator.reset_counts()
    started = time.perf_counter()
    with VipexClient.from_config(config.vipex) as client:
        fields = client.get_phonebook_custom_field_list(job.vipex_id)
        compiled = compile_mapping(job.mapping, fields, job=job.name)
        mapped = map_records(
            open_source(job.source).read(),
            compiled,
            region=job.default_region,
            ownership_tag=job.ownership_tag,
        )

        def put(number: str) -> None:
            entry = mapped.desired[number].entry
            client.set_phonebook_entry(
                job.vipex_id,
                number,
                name=entry.name,
                tags=sorted(entry.tags),
                comment=entry.comment,
                custom_field_options=[
                    CustomFieldValue(field_id=fid, field_value=value)
                    for fid, value in sorted(entry.custom_fields.items())
                ],
            )

        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            for _ in pool.map(put, mapped.desired, chunksize=64):
                pass
        calls = client.request_count
    wall = time.perf_counter() - started
    counts = emulator.counts()
    return Measurement(
        wall_seconds=wall,
        client_calls=calls,
        emulator_calls=sum(counts.values()),
        by_action=counts,
    )
