"""Helpers shared by the test tiers (importable as `support`: pytest pythonpath)."""

from __future__ import annotations

from pathlib import Path

CRM_HEADER = ["id", "last_name", "first_name", "company", "phone", "mobile", "segment", "kind"]


def write_crm(path: Path, rows: list[dict[str, str]]) -> None:
    """Write a small UTF-8 CRM export with the columns above."""
    import csv

    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=CRM_HEADER)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in CRM_HEADER})


def crm_row(key: int, phone: str, name: str = "", **fields: str) -> dict[str, str]:
    last, _, first = (name or f"Ügyfél {key}").partition(" ")
    row = {"id": str(key), "last_name": last, "first_name": first, "phone": phone}
    row.update(fields)
    return row


JOB_TOML = """\
[vipex]
url = "{url}"
username = "{username}"
password_file = "vipex-password"
allow_http = true
timeout_seconds = {timeout}
concurrency = {concurrency}
retry_deadline_seconds = {retry_deadline}

[database]
url = "{database}"

[metrics]
listen = ""

[logging]
level = "INFO"

[[jobs]]
name = "{job}"
vipex_id = "{vipex_id}"
interval_seconds = 60
full_resync_cron = ""
default_region = "HU"
ownership_tag = "{ownership_tag}"
delete = "{delete}"
max_deletes = {max_deletes}
max_delete_ratio = {max_delete_ratio}
min_source_records = {min_source_records}

[jobs.source]
type = "csv"
path = "crm.csv"
key = "id"

[jobs.mapping]
phone_fields = ["phone", "mobile"]
name = "{{last_name}} {{first_name}}"
comment = "{{company}}"
tags = ["{{segment}}"]
{custom_fields}
"""
