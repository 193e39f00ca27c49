"""mapping_fingerprint: stable across processes, sensitive to what shapes entries only.

A changed fingerprint withholds deletions until a full resync, so a spurious
change (an upgrade, a new timeout) costs operators a manual step, and a
missed change risks mass deletion.
"""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from vipexsync.config import (
    CsvSourceConfig,
    HttpSourceConfig,
    JobConfig,
    MappingConfig,
    Secret,
    SqlSourceConfig,
    VcardSourceConfig,
    mapping_fingerprint,
)

JOB = JobConfig(
    name="crm",
    vipex_id="1643897",
    source=CsvSourceConfig(path=Path("/srv/crm/export.csv"), key="id"),
    mapping=MappingConfig(
        phone_fields=("phone", "mobile"),
        name="{last_name} {first_name}",
        comment="{company}",
        tags=("{segment}",),
        custom_fields={"Ügyfélkód": "{id}", "Város": "{city}"},
    ),
)

# The canonical document of JOB, written out by hand. If the digest changes,
# every installation sees a "changed mapping" after the upgrade and withholds
# deletions once: change it only on purpose (bump _FINGERPRINT_VERSION and say
# so in the release notes).
CANONICAL = (
    '{"default_region":"HU","fingerprint_version":1,"mapping":{"comment":"{company}",'
    '"custom_fields":{"V\\u00e1ros":"{city}","\\u00dcgyf\\u00e9lk\\u00f3d":"{id}"},'
    '"name":"{last_name} {first_name}","phone_fields":["phone","mobile"],"tags":["{segment}"]},'
    '"ownership_tag":"crm-sync","source":{"delimiter":",","encoding":"utf-8","key":"id",'
    '"path":"/srv/crm/export.csv","type":"csv"}}'
)
GOLDEN = "c951859f8b3324794256a428446a0948715f98ba7c55dbd460dd65a86b564325"


def test_fingerprint_is_a_sha256_hex_digest() -> None:
    digest = mapping_fingerprint(JOB)
    assert len(digest) == 64
    assert int(digest, 16) >= 0


def test_fingerprint_matches_the_recorded_value() -> None:
    assert hashlib.sha256(CANONICAL.encode("ascii")).hexdigest() == GOLDEN
    assert mapping_fingerprint(JOB) == GOLDEN


def test_fingerprint_is_the_same_in_another_process() -> None:
    """Another interpreter, with another hash seed, computes the same digest."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from test_config_fingerprint import JOB;"
        "from vipexsync.config import mapping_fingerprint;"
        "print(mapping_fingerprint(JOB))"
    )
    for seed in ("1", "12345"):
        out = subprocess.run(
            [sys.executable, "-c", code, str(Path(__file__).parent)],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
        )
        assert out.stdout.strip() == mapping_fingerprint(JOB)


def test_custom_field_order_does_not_matter() -> None:
    reordered = dataclasses.replace(
        JOB,
        mapping=dataclasses.replace(
            JOB.mapping, custom_fields={"Város": "{city}", "Ügyfélkód": "{id}"}
        ),
    )
    assert mapping_fingerprint(reordered) == mapping_fingerprint(JOB)


def mapped(**changes: object) -> JobConfig:
    return dataclasses.replace(JOB, mapping=dataclasses.replace(JOB.mapping, **changes))  # type: ignore[arg-type]


def sourced(**changes: object) -> JobConfig:
    return dataclasses.replace(JOB, source=dataclasses.replace(JOB.source, **changes))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "changed",
    [
        mapped(phone_fields=("phone",)),
        mapped(phone_fields=("mobile", "phone")),
        mapped(name="{first_name} {last_name}"),
        mapped(comment=""),
        mapped(tags=()),
        mapped(tags=("{segment}", "vip")),
        mapped(custom_fields={"Ügyfélkód": "{id}"}),
        mapped(custom_fields={"Ügyfélkód": "{crm_id}", "Város": "{city}"}),
        sourced(path=Path("/srv/crm/other.csv")),
        sourced(key="crm_id"),
        sourced(encoding="cp1250"),
        sourced(delimiter=";"),
        dataclasses.replace(JOB, source=VcardSourceConfig(path=Path("/srv/crm/export.csv"))),
        dataclasses.replace(JOB, default_region="AT"),
        dataclasses.replace(JOB, ownership_tag="crm"),
    ],
)
def test_fingerprint_changes_with_source_and_mapping(changed: JobConfig) -> None:
    assert mapping_fingerprint(changed) != mapping_fingerprint(JOB)


@pytest.mark.parametrize(
    "same",
    [
        dataclasses.replace(JOB, name="renamed"),
        dataclasses.replace(JOB, vipex_id="99"),
        dataclasses.replace(JOB, interval_seconds=60),
        dataclasses.replace(JOB, full_resync_cron=""),
        dataclasses.replace(JOB, delete="never"),
        dataclasses.replace(JOB, max_deletes=5),
        dataclasses.replace(JOB, max_delete_ratio=0.5),
        dataclasses.replace(JOB, min_source_records=10),
    ],
)
def test_fingerprint_ignores_schedule_and_guards(same: JobConfig) -> None:
    assert mapping_fingerprint(same) == mapping_fingerprint(JOB)


def test_fingerprint_ignores_secrets_and_transport_settings() -> None:
    http = HttpSourceConfig(url="https://crm.example/api", key="id", bearer_token=Secret("a"))
    job = dataclasses.replace(JOB, source=http)
    for same in (
        dataclasses.replace(http, bearer_token=Secret("b")),
        dataclasses.replace(http, bearer_token=None, password=Secret("p")),
        dataclasses.replace(http, timeout_seconds=5.0),
        dataclasses.replace(http, verify_tls=False),
    ):
        assert mapping_fingerprint(dataclasses.replace(JOB, source=same)) == mapping_fingerprint(
            job
        )
    for changed in (
        dataclasses.replace(http, records_path="data"),
        dataclasses.replace(http, paging="offset"),
        dataclasses.replace(http, url="https://crm.example/api/v2"),
    ):
        assert mapping_fingerprint(dataclasses.replace(JOB, source=changed)) != mapping_fingerprint(
            job
        )


def test_fingerprint_of_sql_source_ignores_the_url_password() -> None:
    sql = SqlSourceConfig(
        url="postgresql+psycopg://reader:one@crm/crm",
        query="SELECT * FROM c WHERE r = :r",
        key="id",
        params={"r": "HU"},
    )
    job = dataclasses.replace(JOB, source=sql)
    other_password = dataclasses.replace(sql, url="postgresql+psycopg://reader:two@crm/crm")
    assert mapping_fingerprint(dataclasses.replace(JOB, source=other_password)) == (
        mapping_fingerprint(job)
    )
    for changed in (
        dataclasses.replace(sql, query="SELECT * FROM c"),
        dataclasses.replace(sql, params={"r": "AT"}),
        dataclasses.replace(sql, url="postgresql+psycopg://reader:one@crm/crm2"),
    ):
        assert mapping_fingerprint(dataclasses.replace(JOB, source=changed)) != mapping_fingerprint(
            job
        )
