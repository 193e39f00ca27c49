"""The configuration parser: defaults, every validation rule, paths and secrets.

Most tests feed parse_config a dict (as tomllib would produce) and check the
collected problems by key path; tests of reading files are in
test_config_files.py.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from vipexsync.config import (
    Config,
    CsvSourceConfig,
    HttpSourceConfig,
    Secret,
    SqlSourceConfig,
    VcardSourceConfig,
    parse_config,
    template_problem,
)
from vipexsync.errors import ConfigError

PASSWORD = "Sup3r-Secret-Pa55"
ENV = {"VIPEXSYNC_VIPEX_PASSWORD": PASSWORD}

BASE: dict[str, Any] = {
    "vipex": {"url": "https://cloud.example.hu", "username": "api_user"},
    "jobs": [
        {
            "name": "crm",
            "vipex_id": "1643897",
            "source": {"type": "csv", "path": "crm.csv", "key": "id"},
            "mapping": {"phone_fields": ["phone"], "name": "{last_name} {first_name}"},
        }
    ],
}


def base() -> dict[str, Any]:
    return copy.deepcopy(BASE)


def parse(
    data: dict[str, Any],
    tmp_path: Path,
    environ: dict[str, str] | None = None,
    file_mode: int | None = None,
) -> Config:
    return parse_config(
        data,
        base_dir=tmp_path,
        environ=ENV if environ is None else environ,
        source=str(tmp_path / "vipexsync.toml"),
        file_mode=file_mode,
    )


def problems(
    data: dict[str, Any], tmp_path: Path, environ: dict[str, str] | None = None
) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        parse(data, tmp_path, environ)
    assert caught.value.problems, "a ConfigError from parse_config lists its problems"
    assert PASSWORD not in str(caught.value)
    return caught.value.problems


def one_problem(data: dict[str, Any], tmp_path: Path, key: str) -> str:
    """The single problem reported, checked to name ``key``."""
    found = problems(data, tmp_path)
    assert len(found) == 1, found
    assert found[0].startswith(f"{key}: "), found
    return found[0]


# ---------------------------------------------------------------- defaults


def test_minimal_config_takes_the_contract_defaults(tmp_path: Path) -> None:
    config = parse(base(), tmp_path)
    assert config.vipex.url == "https://cloud.example.hu"
    assert config.vipex.password == Secret(PASSWORD)
    assert (config.vipex.timeout_seconds, config.vipex.concurrency) == (15.0, 4)
    assert config.vipex.verify_tls is True
    assert config.vipex.ca_bundle is None
    assert config.vipex.allow_http is False
    assert config.vipex.retry_deadline_seconds == 120.0
    assert config.vipex.max_retry_after_seconds == 60.0
    assert config.database.url == "sqlite:////var/lib/vipexsync/mirror.sqlite3"
    assert config.database.auto_upgrade is True
    assert config.database.keep_days == 90
    assert config.metrics.listen == "127.0.0.1:9717"
    assert (config.logging.level, config.logging.format) == ("INFO", "text")
    (job,) = config.jobs
    assert job.interval_seconds == 300
    assert job.full_resync_cron == "30 3 * * *"
    assert job.default_region == "HU"
    assert job.ownership_tag == "crm-sync"
    assert job.delete == "owned"
    assert (job.max_deletes, job.max_delete_ratio, job.min_source_records) == (100, 0.10, 1)
    assert job.source == CsvSourceConfig(path=tmp_path / "crm.csv", key="id")
    assert job.mapping.comment == ""
    assert job.mapping.tags == ()
    assert dict(job.mapping.custom_fields) == {}
    assert config.job("crm") is job


def test_state_directory_moves_the_default_database(tmp_path: Path) -> None:
    env = {**ENV, "STATE_DIRECTORY": "/var/lib/private/vipexsync:/var/lib/other"}
    config = parse(base(), tmp_path, env)
    assert config.database.url == "sqlite:////var/lib/private/vipexsync/mirror.sqlite3"


def test_every_key_set_explicitly(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    data = base()
    data["vipex"].update(
        timeout_seconds=7.5,
        concurrency=64,
        verify_tls=True,
        ca_bundle="ca.pem",
        allow_http=False,
        retry_deadline_seconds=30,
        max_retry_after_seconds=5,
    )
    data["database"] = {"url": "postgresql://sync@db.example.com/vipex", "auto_upgrade": False}
    data["metrics"] = {"listen": "[::1]:9100"}
    data["logging"] = {"level": "debug", "format": "json"}
    data["jobs"][0].update(
        vipex_id=42,
        interval_seconds=10,
        full_resync_cron="",
        default_region="at",
        ownership_tag="",
        delete="never",
        max_deletes=0,
        max_delete_ratio=1,
        min_source_records=0,
    )
    data["jobs"][0]["source"].update(encoding="cp1250", delimiter=";")
    data["jobs"][0]["mapping"].update(
        comment="{company}",
        tags=["{segment}", "vip"],
        custom_fields={"Ügyfélkód": "{id}", "City": "{address.city}"},
    )
    config = parse(data, tmp_path)
    vipex = config.vipex
    assert (vipex.timeout_seconds, vipex.concurrency, vipex.ca_bundle) == (
        7.5,
        64,
        tmp_path / "ca.pem",
    )
    assert (vipex.retry_deadline_seconds, vipex.max_retry_after_seconds) == (30.0, 5.0)
    assert config.database.url == "postgresql+psycopg://sync@db.example.com/vipex"
    assert config.database.auto_upgrade is False
    assert config.metrics.listen == "[::1]:9100"
    assert (config.logging.level, config.logging.format) == ("DEBUG", "json")
    (job,) = config.jobs
    assert job.vipex_id == "42"
    assert job.full_resync_cron == ""
    assert job.default_region == "AT"
    assert (job.ownership_tag, job.delete, job.max_deletes) == ("", "never", 0)
    assert (job.max_delete_ratio, job.min_source_records) == (1.0, 0)
    assert job.source == CsvSourceConfig(
        path=tmp_path / "crm.csv", key="id", encoding="cp1250", delimiter=";"
    )
    assert job.mapping.tags == ("{segment}", "vip")
    assert dict(job.mapping.custom_fields) == {"Ügyfélkód": "{id}", "City": "{address.city}"}


def test_several_jobs_with_different_sources(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("tok-123\n")
    mapping = {"phone_fields": ["phone"], "name": "{name}"}
    data = base()
    data["jobs"] += [
        {
            "name": "erp",
            "vipex_id": "2",
            "source": {
                "type": "sql",
                "url": "sqlite:////srv/erp.sqlite3",
                "query": "SELECT * FROM contacts WHERE region = :region",
                "key": "id",
                "params": {"region": "HU", "limit": 5, "ratio": 0.5, "active": True},
            },
            "mapping": mapping,
        },
        {
            "name": "web.api",
            "vipex_id": "3",
            "source": {
                "type": "http",
                "url": "https://crm.example.com/api/contacts",
                "key": "id",
                "records_path": "data.items",
                "paging": "cursor",
                "page_size": 50,
                "bearer_token_file": "token",
            },
            "mapping": mapping,
        },
        {
            "name": "cards_1",
            "vipex_id": "4",
            "source": {"type": "vcard", "path": "cards"},
            "mapping": mapping,
        },
    ]
    config = parse(data, tmp_path)
    assert [job.name for job in config.jobs] == ["crm", "erp", "web.api", "cards_1"]
    sql = config.job("erp").source
    assert isinstance(sql, SqlSourceConfig)
    assert dict(sql.params) == {"region": "HU", "limit": 5, "ratio": 0.5, "active": True}
    http = config.job("web.api").source
    assert isinstance(http, HttpSourceConfig)
    assert http.bearer_token == Secret("tok-123")
    assert (http.records_path, http.paging, http.page_size) == ("data.items", "cursor", 50)
    assert (http.offset_param, http.limit_param, http.cursor_param) == ("offset", "limit", "cursor")
    assert (http.next_cursor_path, http.timeout_seconds, http.verify_tls) == ("next", 30.0, True)
    assert http.username is None
    assert http.password is None
    assert config.job("cards_1").source == VcardSourceConfig(path=tmp_path / "cards", key="UID")


def test_a_vcard_job_may_leave_key_and_mapping_out(tmp_path: Path) -> None:
    data = base()
    data["jobs"][0]["source"] = {"type": "vcard", "path": "export.vcf", "encoding": "cp1250"}
    del data["jobs"][0]["mapping"]
    job = parse(data, tmp_path).jobs[0]

    assert job.source == VcardSourceConfig(path=tmp_path / "export.vcf", encoding="cp1250")
    assert job.mapping.phone_fields == ("tel_voice",)
    assert job.mapping.name == "{fn|n|org}"

    data["jobs"][0]["mapping"] = {"phone_fields": ["tel_cell"]}
    assert parse(data, tmp_path).jobs[0].mapping.name == "{fn|n|org}"
    data["jobs"][0]["source"]["type"] = "csv"
    data["jobs"][0]["source"]["key"] = "id"
    assert "jobs[0].mapping.name" in " ".join(problems(data, tmp_path))


# ---------------------------------------------------------------- structure


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    data = base()
    data["vipex"]["concurrency"] = 0
    data["metrics"] = {"listen": "nonsense"}
    data["jobs"][0]["delete"] = "everything"
    data["jobs"][0]["source"]["type"] = "xls"
    found = problems(data, tmp_path)
    keys = sorted(problem.split(":")[0] for problem in found)
    assert keys == ["jobs[0].delete", "jobs[0].source.type", "metrics.listen", "vipex.concurrency"]


def test_the_message_counts_the_problems_and_names_the_file(tmp_path: Path) -> None:
    data = base()
    data["vipex"]["concurrency"] = 0
    with pytest.raises(ConfigError) as caught:
        parse(data, tmp_path)
    message = str(caught.value)
    assert str(tmp_path / "vipexsync.toml") in message
    assert "1 problem " in message
    assert "  - vipex.concurrency: must be at least 1, got 0" in message


@pytest.mark.parametrize(
    ("path", "key", "expected"),
    [
        ((), "intervall", "unknown key 'intervall' in the top level of the file"),
        (("vipex",), "timeout", "(did you mean 'timeout_seconds'?)"),
        (("database",), "uri", "(did you mean 'url'?); valid keys: auto_upgrade, keep_days, url"),
        (("metrics",), "port", "valid keys: listen"),
        (("logging",), "lvl", "valid keys: format, level"),
        (("jobs", 0), "intervall_seconds", "in [[jobs]] 'crm' (did you mean 'interval_seconds'?)"),
        (("jobs", 0, "source"), "delimeter", "(did you mean 'delimiter'?)"),
        (("jobs", 0, "mapping"), "phone_field", "(did you mean 'phone_fields'?)"),
    ],
)
def test_unknown_keys_are_named_with_the_valid_ones(
    tmp_path: Path, path: tuple[str | int, ...], key: str, expected: str
) -> None:
    data = base()
    for name in path[:1]:
        data.setdefault(str(name), {})
    table: Any = data
    for step in path:
        table = table[step]
    table[key] = 1
    key_path = ".".join(str(p) for p in path).replace(".0", "[0]")
    problem = one_problem(data, tmp_path, f"{key_path}.{key}" if key_path else key)
    assert expected in problem
    assert "valid keys: " in problem


def test_unknown_key_lists_the_keys_of_that_source_type(tmp_path: Path) -> None:
    data = base()
    data["jobs"][0]["source"] = {"type": "vcard", "path": "x.vcf", "delimiter": ","}
    problem = one_problem(data, tmp_path, "jobs[0].source.delimiter")
    assert problem.endswith("valid keys: encoding, key, path, type")


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("vipex", "concurrency", True, "expected an integer, got a boolean"),
        ("vipex", "concurrency", 2.0, "expected an integer, got a float"),
        ("vipex", "timeout_seconds", "15", "expected a number, got a string"),
        ("vipex", "timeout_seconds", False, "expected a number, got a boolean"),
        ("vipex", "verify_tls", "yes", "expected a boolean, got a string (write true or false"),
        ("vipex", "username", 7, "expected a string, got an integer"),
        ("database", "auto_upgrade", 1, "expected a boolean, got an integer"),
        ("database", "keep_days", -1, "must be at least 0, got -1"),
        ("database", "keep_days", 7.5, "expected an integer, got a float"),
        ("metrics", "listen", 9717, "expected a string, got an integer"),
        ("logging", "level", ["INFO"], "expected a string, got an array"),
        ("job", "interval_seconds", 300.5, "expected an integer, got a float"),
        ("job", "max_delete_ratio", "10%", "expected a number, got a string"),
        ("job", "vipex_id", True, "must be the subscription's numeric id (digits), got a boolean"),
        ("job", "name", 1, "expected a string, got an integer"),
        ("job", "source", "csv", "expected a table [jobs.source] of job 'crm', got a string"),
        ("mapping", "phone_fields", "phone", "expected an array of strings, got a string"),
        ("mapping", "tags", [1], "expected a string, got an integer"),
        ("mapping", "custom_fields", ["a"], "expected a table"),
    ],
)
def test_wrong_types(tmp_path: Path, section: str, key: str, value: Any, expected: str) -> None:
    data = base()
    table = {
        "job": data["jobs"][0],
        "mapping": data["jobs"][0]["mapping"],
    }.get(section) or data.setdefault(section, {})
    table[key] = value
    found = problems(data, tmp_path)
    assert any(expected in problem for problem in found), found


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("vipex", "concurrency", 0, "must be at least 1, got 0"),
        ("vipex", "concurrency", 65, "must be at most 64, got 65"),
        ("vipex", "timeout_seconds", 0, "must be greater than 0, got 0"),
        ("vipex", "timeout_seconds", -1.5, "must be greater than 0"),
        ("vipex", "timeout_seconds", float("nan"), "must be a finite number"),
        ("vipex", "retry_deadline_seconds", 0, "must be greater than 0"),
        ("vipex", "max_retry_after_seconds", -1, "must be greater than 0"),
        ("job", "interval_seconds", 9, "must be at least 10, got 9"),
        ("job", "max_delete_ratio", 1.5, "must be at most 1, got 1.5"),
        ("job", "max_delete_ratio", -0.1, "must be at least 0, got -0.1"),
        ("job", "max_deletes", -1, "must be at least 0, got -1"),
        ("job", "min_source_records", -5, "must be at least 0, got -5"),
    ],
)
def test_ranges(tmp_path: Path, section: str, key: str, value: Any, expected: str) -> None:
    data = base()
    table = data["jobs"][0] if section == "job" else data[section]
    table[key] = value
    path = "jobs[0]" if section == "job" else section
    assert expected in one_problem(data, tmp_path, f"{path}.{key}")


@pytest.mark.parametrize(
    ("where", "key", "value", "expected"),
    [
        ("job", "delete", "owned-only", "use one of: owned, all, never"),
        ("job", "delete", "Never", "(did you mean 'never'?)"),
        ("logging", "format", "yaml", "use one of: text, json"),
        ("logging", "level", "verbose", "use one of: DEBUG, INFO, WARNING, ERROR, CRITICAL"),
        ("logging", "level", "warn", "(did you mean 'WARNING'?)"),
        ("source", "type", "xls", "unknown source type 'xls'"),
        ("source", "type", "cvs", "(did you mean 'csv'?); valid types: csv, sql, http, vcard"),
        ("source", "type", 3, "unknown source type an integer"),
    ],
)
def test_bad_enum_values(tmp_path: Path, where: str, key: str, value: Any, expected: str) -> None:
    data = base()
    tables = {"job": data["jobs"][0], "source": data["jobs"][0]["source"]}
    table = tables.get(where) or data.setdefault(where, {})
    table[key] = value
    path = {"job": "jobs[0]", "source": "jobs[0].source"}.get(where, where)
    assert expected in one_problem(data, tmp_path, f"{path}.{key}")


def test_missing_source_type_lists_the_types(tmp_path: Path) -> None:
    data = base()
    del data["jobs"][0]["source"]["type"]
    problem = one_problem(data, tmp_path, "jobs[0].source.type")
    assert "use one of: csv, sql, http, vcard" in problem


def test_paging_enum(tmp_path: Path) -> None:
    data = base()
    data["jobs"][0]["source"] = {
        "type": "http",
        "url": "https://crm.example.com/x",
        "key": "id",
        "paging": "pages",
    }
    assert "use one of: none, offset, cursor" in one_problem(
        data, tmp_path, "jobs[0].source.paging"
    )


@pytest.mark.parametrize(
    ("extra", "key", "expected"),
    [
        ({"max_attempts": 0}, "max_attempts", "must be at least 1, got 0"),
        ({"retry_backoff_seconds": -1}, "retry_backoff_seconds", "must be at least 0"),
        ({"retry_backoff_seconds": 61}, "retry_backoff_seconds", "must be at most 60"),
        ({"ca_bundle": "missing-ca.pem"}, "ca_bundle", "does not exist or is not a file"),
        (
            {"ca_bundle": "ca.pem", "verify_tls": False},
            "ca_bundle",
            "verify_tls = false turns verification off",
        ),
    ],
)
def test_http_source_retries_and_ca_bundle(
    tmp_path: Path, extra: dict[str, object], key: str, expected: str
) -> None:
    (tmp_path / "ca.pem").write_text("not checked here\n", encoding="ascii")
    data = base()
    source = {"type": "http", "url": "https://crm.example.com/x", "key": "id"}
    data["jobs"][0]["source"] = {**source, **extra}
    assert expected in one_problem(data, tmp_path, f"jobs[0].source.{key}")


def test_http_source_retry_and_ca_keys_reach_the_config(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("not checked here\n", encoding="ascii")
    data = base()
    data["jobs"][0]["source"] = {
        "type": "http",
        "url": "https://crm.example.com/x",
        "key": "id",
        "max_attempts": 7,
        "retry_backoff_seconds": 0.5,
        "ca_bundle": "ca.pem",
    }
    source = parse(data, tmp_path).jobs[0].source
    assert isinstance(source, HttpSourceConfig)
    assert (source.max_attempts, source.retry_backoff_seconds) == (7, 0.5)
    assert source.ca_bundle == tmp_path / "ca.pem"


@pytest.mark.parametrize(
    ("mutate", "key", "expected"),
    [
        (lambda d: d.pop("vipex"), "vipex", "required table [vipex] is missing"),
        (lambda d: d["vipex"].pop("url"), "vipex.url", "required key 'url' is missing"),
        (lambda d: d["vipex"].pop("username"), "vipex.username", "is missing from [vipex]"),
        (lambda d: d["vipex"].update(url=" "), "vipex.url", "must not be empty"),
        (lambda d: d.pop("jobs"), "jobs", "at least one [[jobs]] table is required"),
        (lambda d: d.update(jobs=[]), "jobs", "at least one [[jobs]] table is required"),
        (lambda d: d.update(jobs={"name": "x"}), "jobs", "write [[jobs]] (double brackets)"),
        (lambda d: d["jobs"].append(3), "jobs[1]", "expected a [[jobs]] table, got an integer"),
        (lambda d: d["jobs"][0].pop("name"), "jobs[0].name", "required key 'name' is missing"),
        (lambda d: d["jobs"][0].pop("vipex_id"), "jobs[0].vipex_id", "required key"),
        (lambda d: d["jobs"][0].pop("source"), "jobs[0].source", "required table [jobs.source]"),
        (lambda d: d["jobs"][0].pop("mapping"), "jobs[0].mapping", "required table"),
        (lambda d: d["jobs"][0]["source"].pop("path"), "jobs[0].source.path", "required key"),
        (lambda d: d["jobs"][0]["source"].update(key=" "), "jobs[0].source.key", "leave the key"),
        (lambda d: d["jobs"][0]["source"].update(key=[]), "jobs[0].source.key", "list the key's"),
        (
            lambda d: d["jobs"][0]["source"].update(key=["a", "a"]),
            "jobs[0].source.key",
            "same column more than once",
        ),
        (
            lambda d: d["jobs"][0]["mapping"].pop("name"),
            "jobs[0].mapping.name",
            "required key 'name' is missing from [jobs.mapping] of job 'crm'",
        ),
        (
            lambda d: d["jobs"][0]["mapping"].update(phone_fields=[]),
            "jobs[0].mapping.phone_fields",
            "must list at least one entry",
        ),
        (
            lambda d: d["jobs"][0]["mapping"].update(phone_fields=["phone", "phone"]),
            "jobs[0].mapping.phone_fields",
            "lists the same field more than once",
        ),
        (
            lambda d: d["jobs"][0]["mapping"].update(phone_fields=[""]),
            "jobs[0].mapping.phone_fields[0]",
            "must name a source field",
        ),
    ],
)
def test_missing_and_empty_values(tmp_path: Path, mutate: Any, key: str, expected: str) -> None:
    data = base()
    mutate(data)
    assert expected in one_problem(data, tmp_path, key)


# ---------------------------------------------------------------- jobs


def test_duplicate_job_names(tmp_path: Path) -> None:
    data = base()
    data["jobs"].append(copy.deepcopy(data["jobs"][0]))
    data["jobs"].append(copy.deepcopy(data["jobs"][0]))
    data["jobs"][2]["name"] = "CRM"
    for index, job in enumerate(data["jobs"]):
        job["vipex_id"] = str(1000 + index)  # only the names collide here
    found = problems(data, tmp_path)
    assert len(found) == 2
    assert found[0].startswith("jobs[1].name: job name 'crm' is already used by jobs[0]")
    assert found[1].startswith("jobs[2].name: job name 'CRM' is already used by jobs[0]")


def two_jobs_on_one_subscription(**second: Any) -> dict[str, Any]:
    data = base()
    other = copy.deepcopy(data["jobs"][0])
    other["name"] = "partners"
    other.update(second)
    data["jobs"].append(other)
    return data


@pytest.mark.parametrize(
    ("first_tag", "second_tag", "blamed"),
    [(None, None, "1"), ("", "crm-b", "0"), ("crm-a", "", "1")],
)
def test_jobs_sharing_a_subscription_need_their_own_tags(
    tmp_path: Path, first_tag: str | None, second_tag: str | None, blamed: str
) -> None:
    """Issue 9 item 4: two jobs on one vipex_id would delete each other's entries."""
    data = two_jobs_on_one_subscription()
    for job, tag in zip(data["jobs"], (first_tag, second_tag), strict=True):
        if tag is not None:
            job["ownership_tag"] = tag
    found = problems(data, tmp_path)
    assert len(found) == 1, found
    assert found[0].startswith(f"jobs[{blamed}].ownership_tag: ")
    assert "jobs[0] 'crm' and jobs[1] 'partners' share vipex_id 1643897" in found[0]


def test_jobs_sharing_a_subscription_with_own_tags_are_accepted(tmp_path: Path) -> None:
    data = two_jobs_on_one_subscription(ownership_tag="partner-sync")
    config = parse(data, tmp_path)
    assert [j.ownership_tag for j in config.jobs] == ["crm-sync", "partner-sync"]


def test_delete_all_is_refused_on_a_shared_subscription(tmp_path: Path) -> None:
    data = two_jobs_on_one_subscription(ownership_tag="partner-sync", delete="all")
    assert "would delete the other job's entries" in one_problem(data, tmp_path, "jobs[1].delete")


@pytest.mark.parametrize(
    "tag", ["crm  sync", " crm-sync", "crm-sync ", "crm\tsync", "crm\u00a0sync"]
)
def test_ownership_tag_must_be_in_normal_form(tmp_path: Path, tag: str) -> None:
    """Issue 9 item 11: a tag VIPeX would store cleaned could never be recognised."""
    data = base()
    data["jobs"][0]["ownership_tag"] = tag
    found = one_problem(data, tmp_path, "jobs[0].ownership_tag")
    assert "is not in the form VIPeX stores a tag in" in found


@pytest.mark.parametrize("name", ["crm sync", "crm/1", "ügyfél", "a:b", "x{y}"])
def test_job_names_must_be_label_safe(tmp_path: Path, name: str) -> None:
    data = base()
    data["jobs"][0]["name"] = name
    assert "may contain only letters" in one_problem(data, tmp_path, "jobs[0].name")


@pytest.mark.parametrize("vipex_id", ["16-43", "abc", "", "１２３", -1])
def test_vipex_id_must_be_digits(tmp_path: Path, vipex_id: Any) -> None:
    data = base()
    data["jobs"][0]["vipex_id"] = vipex_id
    assert "numeric id" in one_problem(data, tmp_path, "jobs[0].vipex_id")


@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        ("30 3 * *", "has 4 fields; a crontab expression has 5"),
        ("0 30 3 * * *", "has 6 fields"),
        ("61 3 * * *", "is not a valid crontab expression"),
        ("30 25 * * *", "is not a valid crontab expression"),
        ("30 3 * * 0", "write weekdays by name"),
        ("30 3 * * 1-5", "0 = Sunday"),
        ("30 3 * * fri-xyz", "is not a valid crontab expression"),
        ("@daily", "has 1 fields"),
    ],
)
def test_bad_cron(tmp_path: Path, cron: str, expected: str) -> None:
    data = base()
    data["jobs"][0]["full_resync_cron"] = cron
    assert expected in one_problem(data, tmp_path, "jobs[0].full_resync_cron")


@pytest.mark.parametrize(
    ("cron", "stored"),
    [
        ("*/15 1-5 * * mon-fri", "*/15 1-5 * * mon-fri"),
        ("", ""),
        ("   ", ""),
        ("0 4 1 * sun", None),
    ],
)
def test_good_cron(tmp_path: Path, cron: str, stored: str | None) -> None:
    data = base()
    data["jobs"][0]["full_resync_cron"] = cron
    assert parse(data, tmp_path).jobs[0].full_resync_cron == (cron if stored is None else stored)


@pytest.mark.parametrize(
    ("region", "hint"), [("XX", ""), ("HUN", "(did you mean 'HU'?)"), ("", "")]
)
def test_bad_region(tmp_path: Path, region: str, hint: str) -> None:
    data = base()
    data["jobs"][0]["default_region"] = region
    problem = one_problem(data, tmp_path, "jobs[0].default_region")
    assert "is not a region phonenumbers knows" in problem
    assert hint in problem


def test_ownership_tag_without_commas(tmp_path: Path) -> None:
    data = base()
    data["jobs"][0]["ownership_tag"] = "crm,sync"
    assert "must not contain a comma" in one_problem(data, tmp_path, "jobs[0].ownership_tag")


# ---------------------------------------------------------------- templates


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{name", "does not parse"),
        ("name}", "does not parse"),
        ("{}", "empty placeholder"),
        ("{name:}", "uses a format spec"),
        ("{fn||org}", "empty placeholder"),
        ("{fn|org }", "remove the spaces around {org}"),
        ("{name!r}", "uses a conversion"),
        ("{name:>10}", "uses a format spec"),
        ("{items[0]}", "uses index access"),
        ("{ name }", "remove the spaces around {name}"),
        ("{a:{b}}", "uses a format spec"),
    ],
)
def test_bad_templates(tmp_path: Path, template: str, expected: str) -> None:
    assert expected in (template_problem(template) or "")
    data = base()
    data["jobs"][0]["mapping"]["name"] = template
    assert expected in one_problem(data, tmp_path, "jobs[0].mapping.name")


@pytest.mark.parametrize(
    "template",
    [
        "",
        "plain text",
        "{a} {b}",
        "{{literal}} {a}",
        "{Last Name}",
        "{address.city}",
        "{Ügyfél}",
        "{fn|n|org}",
        "{0}",
    ],
)
def test_good_templates(template: str) -> None:
    assert template_problem(template) is None


def test_bad_templates_are_found_everywhere(tmp_path: Path) -> None:
    data = base()
    mapping = data["jobs"][0]["mapping"]
    mapping["comment"] = "{ x }"
    mapping["tags"] = ["ok", "{x!s}"]
    mapping["custom_fields"] = {"Ügyfélkód": "{id:05}"}
    keys = sorted(problem.split(": ")[0] for problem in problems(data, tmp_path))
    assert keys == [
        "jobs[0].mapping.comment",
        'jobs[0].mapping.custom_fields."Ügyfélkód"',
        "jobs[0].mapping.tags[1]",
    ]


def test_tag_with_a_literal_comma(tmp_path: Path) -> None:
    data = base()
    data["jobs"][0]["mapping"]["tags"] = ["vip,gold"]
    assert "must not contain a comma" in one_problem(data, tmp_path, "jobs[0].mapping.tags[0]")


def test_custom_field_names_must_be_unique(tmp_path: Path) -> None:
    data = base()
    data["jobs"][0]["mapping"]["custom_fields"] = {"Ügyfélkód": "{id}", " ügyfélkód": "{id}"}
    problem = one_problem(data, tmp_path, 'jobs[0].mapping.custom_fields." ügyfélkód"')
    assert "names the same VIPeX custom field as 'Ügyfélkód'" in problem


def test_custom_field_name_must_not_be_empty(tmp_path: Path) -> None:
    data = base()
    data["jobs"][0]["mapping"]["custom_fields"] = {" ": "{id}"}
    assert "must not be empty" in one_problem(data, tmp_path, 'jobs[0].mapping.custom_fields." "')


# ---------------------------------------------------------------- [vipex] url


@pytest.mark.parametrize(
    ("url", "allow_http", "expected"),
    [
        ("http://cloud.example.hu", False, "clear text"),
        ("http://127.0.0.1:8080", False, "set allow_http = true"),
        ("http://[::1]:8080", False, "clear text"),
        ("http://localhost", False, "clear text"),
        ("ftp://cloud.example.hu", False, "must start with https://"),
        ("cloud.example.hu", False, "must start with https://"),
        ("https://", False, "has no host name"),
        ("https://cloud.example.hu:99999", False, "invalid port"),
        ("https://user:pw@cloud.example.hu", False, "must not contain a user name or password"),
        ("ftp://cloud.example.hu", True, "must start with https://"),
    ],
)
def test_vipex_url_refused(tmp_path: Path, url: str, allow_http: bool, expected: str) -> None:
    data = base()
    data["vipex"].update(url=url, allow_http=allow_http)
    problem = one_problem(data, tmp_path, "vipex.url")
    assert expected in problem
    assert "pw@" not in problem


@pytest.mark.parametrize(
    ("url", "allow_http"),
    [
        ("https://cloud.example.hu", False),
        ("https://cloud.example.hu/api/?x=1", False),
        ("http://127.0.0.1:8080", True),
        ("http://cloud.example.hu", True),
    ],
)
def test_vipex_url_accepted(tmp_path: Path, url: str, allow_http: bool) -> None:
    data = base()
    data["vipex"].update(url=url, allow_http=allow_http)
    config = parse(data, tmp_path)
    assert (config.vipex.url, config.vipex.allow_http) == (url, allow_http)


def test_ca_bundle_must_exist_and_needs_verification(tmp_path: Path) -> None:
    data = base()
    data["vipex"]["ca_bundle"] = "missing.pem"
    assert f"{tmp_path / 'missing.pem'} does not exist" in one_problem(
        data, tmp_path, "vipex.ca_bundle"
    )
    (tmp_path / "ca.pem").write_text("pem")
    data["vipex"].update(ca_bundle="ca.pem", verify_tls=False)
    assert "verify_tls = false" in one_problem(data, tmp_path, "vipex.ca_bundle")


# ---------------------------------------------------------------- [metrics]


@pytest.mark.parametrize(
    "listen", ["", "127.0.0.1:9717", "0.0.0.0:1", "[::1]:9717", "[::]:65535", "metrics.local:80"]
)
def test_metrics_listen_accepted(tmp_path: Path, listen: str) -> None:
    data = base()
    data["metrics"] = {"listen": listen}
    assert parse(data, tmp_path).metrics.listen == listen


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("9717", "is not host:port"),
        (":9717", "is not host:port"),
        ("127.0.0.1:", "is not a number from 1 to 65535"),
        ("127.0.0.1:0", "is not a number from 1 to 65535"),
        ("127.0.0.1:65536", "is not a number from 1 to 65535"),
        ("127.0.0.1:http", "is not a number"),
        ("::1:9717", "needs brackets"),
        ("[::1]9717", "is not host:port"),
        ("[nothost]:9717", "is not an IPv6 address"),
        ("bad host:9717", "is not a host name or IP address"),
    ],
)
def test_metrics_listen_refused(tmp_path: Path, listen: str, expected: str) -> None:
    data = base()
    data["metrics"] = {"listen": listen}
    assert expected in one_problem(data, tmp_path, "metrics.listen")


# ---------------------------------------------------------------- [database]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://sync@db/vipex", "postgresql+psycopg://sync@db/vipex"),
        ("postgresql+psycopg://sync@db:5433/vipex", "postgresql+psycopg://sync@db:5433/vipex"),
        ("postgres://sync@db/vipex", "postgresql+psycopg://sync@db/vipex"),
        ("sqlite:////srv/mirror.sqlite3", "sqlite:////srv/mirror.sqlite3"),
        ("sqlite+pysqlite:////srv/m.db", "sqlite+pysqlite:////srv/m.db"),
        ("sqlite://", "sqlite://"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
    ],
)
def test_database_url_accepted(tmp_path: Path, url: str, expected: str) -> None:
    data = base()
    data["database"] = {"url": url}
    assert parse(data, tmp_path).database.url == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://sync@db/vipex", "database 'mysql' is not supported; use sqlite or postgresql"),
        ("postgresql+psycopg2://u:" + PASSWORD + "@db/v", "driver 'psycopg2' is not installed"),
        ("sqlite+aiosqlite:///m.db", "SQLite driver 'aiosqlite' is not supported"),
        ("not a url " + PASSWORD, "is not a database URL"),
        ("", "must not be empty"),
    ],
)
def test_database_url_refused(tmp_path: Path, url: str, expected: str) -> None:
    data = base()
    data["database"] = {"url": url}
    assert expected in one_problem(data, tmp_path, "database.url")


def test_database_password_stays_out_of_reprs(tmp_path: Path) -> None:
    data = base()
    data["database"] = {"url": f"postgresql://sync:{PASSWORD}@db/vipex"}
    config = parse(data, tmp_path)
    assert config.database.url == f"postgresql+psycopg://sync:{PASSWORD}@db/vipex"
    assert config.database.redacted_url() == "postgresql+psycopg://sync:***@db/vipex"
    assert PASSWORD not in repr(config)
    assert PASSWORD not in str(config)


def test_sql_source_password_stays_out_of_reprs(tmp_path: Path) -> None:
    data = base()
    data["jobs"][0]["source"] = {
        "type": "sql",
        "url": f"postgresql+psycopg://reader:{PASSWORD}@crm/crm",
        "query": "SELECT 1",
        "key": "id",
    }
    config = parse(data, tmp_path)
    assert PASSWORD not in repr(config)


# ---------------------------------------------------------------- sources


@pytest.mark.parametrize(
    ("source", "key", "expected"),
    [
        ({"encoding": "latin-99"}, "encoding", "is not an encoding Python knows"),
        ({"delimiter": ";;"}, "delimiter", "must be exactly one character"),
        ({"delimiter": ""}, "delimiter", "must be exactly one character"),
        ({"path": ""}, "path", "must not be empty"),
    ],
)
def test_csv_source_refused(
    tmp_path: Path, source: dict[str, Any], key: str, expected: str
) -> None:
    data = base()
    data["jobs"][0]["source"].update(source)
    assert expected in one_problem(data, tmp_path, f"jobs[0].source.{key}")


def test_sql_source_refused(tmp_path: Path) -> None:
    data = base()
    data["jobs"][0]["source"] = {
        "type": "sql",
        "url": "::nonsense::",
        "query": "",
        "key": "id",
        "params": {"since": [1, 2], "ok": "x"},
    }
    found = problems(data, tmp_path)
    keys = sorted(problem.split(": ")[0] for problem in found)
    assert keys == [
        "jobs[0].source.params.since",
        "jobs[0].source.query",
        "jobs[0].source.url",
    ]
    assert any("expected a string, number or boolean, got an array" in p for p in found)


def http_data(**source: Any) -> dict[str, Any]:
    data = base()
    data["jobs"][0]["source"] = {
        "type": "http",
        "url": "https://crm.example.com/api",
        "key": "id",
        **source,
    }
    return data


@pytest.mark.parametrize(
    ("source", "key", "expected"),
    [
        ({"url": "crm.example.com/api"}, "url", "must be an http:// or https:// URL"),
        ({"page_size": 0}, "page_size", "must be at least 1"),
        ({"timeout_seconds": 0}, "timeout_seconds", "must be greater than 0"),
        ({"cursor_param": ""}, "cursor_param", "must not be empty"),
        ({"username": "sync"}, "password", "basic auth needs password_file or password"),
        ({"password": "pw"}, "username", "needs a username too"),
        (
            {"bearer_token": "t", "username": "u", "password": "p"},
            "bearer_token",
            "not both",
        ),
        ({"bearer_token": "t", "bearer_token_file": "f"}, "bearer_token", "not both"),
        ({"bearer_token_file": "missing"}, "bearer_token_file", "does not exist"),
    ],
)
def test_http_source_refused(
    tmp_path: Path, source: dict[str, Any], key: str, expected: str
) -> None:
    assert expected in one_problem(http_data(**source), tmp_path, f"jobs[0].source.{key}")


def test_http_source_basic_auth(tmp_path: Path) -> None:
    (tmp_path / "crm-password").write_text("basic-pw\r\n")
    config = parse(
        http_data(username="sync", password_file="crm-password", paging="offset"), tmp_path
    )
    source = config.jobs[0].source
    assert isinstance(source, HttpSourceConfig)
    assert (source.username, source.password) == ("sync", Secret("basic-pw"))
    assert source.bearer_token is None


def test_http_source_accepts_plain_http(tmp_path: Path) -> None:
    config = parse(http_data(url="http://crm.internal/api", verify_tls=False), tmp_path)
    assert config.jobs[0].source == HttpSourceConfig(
        url="http://crm.internal/api", key="id", verify_tls=False
    )


def test_csv_key_may_be_a_column_a_list_of_columns_or_left_out(tmp_path: Path) -> None:
    data = base()
    source = data["jobs"][0]["source"]
    assert parse(data, tmp_path).jobs[0].source.key_columns == ("id",)  # type: ignore[union-attr]
    source["key"] = ["First Name", "Last Name"]
    parsed = parse(data, tmp_path).jobs[0].source
    assert parsed.key_columns == ("First Name", "Last Name")  # type: ignore[union-attr]
    del source["key"]
    assert parse(data, tmp_path).jobs[0].source.key_columns == ()  # type: ignore[union-attr]


def test_vcard_key_must_not_be_empty(tmp_path: Path) -> None:
    data = base()
    data["jobs"][0]["source"] = {"type": "vcard", "path": "a.vcf", "key": ""}
    assert "must not be empty" in one_problem(data, tmp_path, "jobs[0].source.key")


# ---------------------------------------------------------------- paths


def test_relative_paths_follow_the_config_folder(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    (etc / "secrets").mkdir(parents=True)
    (etc / "secrets" / "vipex").write_text("from-file\n")
    (etc / "secrets" / "token").write_text("tok\n")
    (etc / "ca.pem").write_text("pem")
    data = base()
    data["vipex"].update(password_file="secrets/vipex", ca_bundle="ca.pem")
    data["database"] = {"url": "sqlite:///state/mirror.sqlite3"}
    data["jobs"][0]["source"]["path"] = "../data/crm.csv"
    data["jobs"].append(
        {
            "name": "cards",
            "vipex_id": "2",
            "source": {"type": "vcard", "path": "cards/"},
            "mapping": {"phone_fields": ["TEL"], "name": "{FN}"},
        }
    )
    data["jobs"].append(
        {
            "name": "web",
            "vipex_id": "3",
            "source": {
                "type": "http",
                "url": "https://x.example/api",
                "key": "id",
                "bearer_token_file": "secrets/token",
            },
            "mapping": {"phone_fields": ["phone"], "name": "{name}"},
        }
    )
    config = parse(data, etc)
    assert config.vipex.password == Secret("from-file")
    assert config.vipex.ca_bundle == etc / "ca.pem"
    assert config.database.url == f"sqlite:///{etc}/state/mirror.sqlite3"
    assert config.jobs[0].source == CsvSourceConfig(path=etc / "../data/crm.csv", key="id")
    assert config.jobs[1].source == VcardSourceConfig(path=etc / "cards")
    web = config.jobs[2].source
    assert isinstance(web, HttpSourceConfig)
    assert web.bearer_token == Secret("tok")


def test_absolute_and_home_paths_are_kept(tmp_path: Path) -> None:
    data = base()
    data["jobs"][0]["source"]["path"] = "/srv/crm/export.csv"
    data["jobs"].append(
        {
            "name": "cards",
            "vipex_id": "2",
            "source": {"type": "vcard", "path": "~/cards"},
            "mapping": {"phone_fields": ["TEL"], "name": "{FN}"},
        }
    )
    config = parse(data, tmp_path)
    assert config.jobs[0].source == CsvSourceConfig(path=Path("/srv/crm/export.csv"), key="id")
    assert config.jobs[1].source == VcardSourceConfig(path=Path("~/cards").expanduser())
