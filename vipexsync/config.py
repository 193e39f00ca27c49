"""Configuration: TOML loaded into frozen, typed objects; secret resolution.

(The loader and validation are filled in by the configuration work; the types
below are the interface the rest of vipexsync codes against. Field names
follow ../shared/CONTRACT.md.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

DeletePolicy = Literal["owned", "all", "never"]


@dataclass(frozen=True, slots=True)
class Secret:
    """A string that never shows itself in a repr, str or log line."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret('********')"

    def __str__(self) -> str:
        return "********"


@dataclass(frozen=True, slots=True)
class VipexConfig:
    url: str
    username: str
    password: Secret
    timeout_seconds: float = 15.0
    concurrency: int = 4
    verify_tls: bool = True
    ca_bundle: Path | None = None
    allow_http: bool = False
    retry_deadline_seconds: float = 120.0  # total time the retry layer may spend on one call
    max_retry_after_seconds: float = 60.0  # a longer Retry-After is capped to this


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    url: str
    auto_upgrade: bool = True  # migrate an empty or outdated database on start


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    listen: str = "127.0.0.1:9717"  # "" turns the endpoint off


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: str = "INFO"
    format: Literal["text", "json"] = "text"


@dataclass(frozen=True, slots=True)
class CsvSourceConfig:
    path: Path
    key: str
    encoding: str = "utf-8"
    delimiter: str = ","
    type: Literal["csv"] = "csv"


@dataclass(frozen=True, slots=True)
class SqlSourceConfig:
    url: str
    query: str
    key: str
    params: Mapping[str, str | int | float | bool] = field(default_factory=dict)
    type: Literal["sql"] = "sql"


@dataclass(frozen=True, slots=True)
class HttpSourceConfig:
    url: str
    key: str
    records_path: str = ""  # dotted path to the list inside the JSON answer; "" = the answer itself
    paging: Literal["none", "offset", "cursor"] = "none"
    page_size: int = 100
    offset_param: str = "offset"
    limit_param: str = "limit"
    cursor_param: str = "cursor"
    next_cursor_path: str = "next"  # dotted path to the next cursor in the answer
    bearer_token: Secret | None = None
    username: str | None = None
    password: Secret | None = None
    timeout_seconds: float = 30.0
    verify_tls: bool = True
    type: Literal["http"] = "http"


@dataclass(frozen=True, slots=True)
class VcardSourceConfig:
    path: Path  # a .vcf file or a folder of them
    key: str = "UID"
    type: Literal["vcard"] = "vcard"


SourceConfig = CsvSourceConfig | SqlSourceConfig | HttpSourceConfig | VcardSourceConfig


@dataclass(frozen=True, slots=True)
class MappingConfig:
    phone_fields: tuple[str, ...]
    name: str
    comment: str = ""
    tags: tuple[str, ...] = ()
    custom_fields: Mapping[str, str] = field(default_factory=dict)  # VIPeX field name -> template


@dataclass(frozen=True, slots=True)
class JobConfig:
    name: str
    vipex_id: str
    source: SourceConfig
    mapping: MappingConfig
    interval_seconds: int = 300
    full_resync_cron: str = "30 3 * * *"
    default_region: str = "HU"
    ownership_tag: str = "crm-sync"
    delete: DeletePolicy = "owned"
    max_deletes: int = 100
    max_delete_ratio: float = 0.10
    min_source_records: int = 1


@dataclass(frozen=True, slots=True)
class Config:
    vipex: VipexConfig
    database: DatabaseConfig
    metrics: MetricsConfig
    logging: LoggingConfig
    jobs: tuple[JobConfig, ...]
    path: Path | None = None  # the file it came from

    def job(self, name: str) -> JobConfig:
        for job in self.jobs:
            if job.name == name:
                return job
        from vipexsync.errors import UsageError

        names = ", ".join(j.name for j in self.jobs)
        raise UsageError(f"no job named {name!r} in the configuration; jobs are: {names}")
