"""The carddav source's configuration keys: defaults, password sources, checks."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from vipexsync.config import (
    CarddavSourceConfig,
    Config,
    Secret,
    mapping_fingerprint,
    parse_config,
)
from vipexsync.errors import ConfigError

ENV = {"VIPEXSYNC_VIPEX_PASSWORD": "vipex-password"}

BOOK = "https://cloud.example.hu/remote.php/dav/addressbooks/users/sync/contacts/"
CARDDAV_PASSWORD = "Kártya-Jelszó-4411"


def with_source(**source: Any) -> dict[str, Any]:
    return {
        "vipex": {"url": "https://cloud.example.hu", "username": "api_user"},
        "jobs": [
            {
                "name": "crm",
                "vipex_id": "1643897",
                "source": {"type": "carddav", "url": BOOK, **source},
                "mapping": {"phone_fields": ["tel1"], "name": "{fn}"},
            }
        ],
    }


def parse(data: dict[str, Any], tmp_path: Path, environ: dict[str, str] | None = None) -> Config:
    return parse_config(
        data,
        base_dir=tmp_path,
        environ=ENV if environ is None else environ,
        source=str(tmp_path / "vipexsync.toml"),
        file_mode=0o600,
    )


def problems(data: dict[str, Any], tmp_path: Path) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        parse(data, tmp_path)
    assert CARDDAV_PASSWORD not in str(caught.value)
    return caught.value.problems


def carddav(data: dict[str, Any], tmp_path: Path, environ: dict[str, str] | None = None) -> Any:
    source = parse(data, tmp_path, environ).jobs[0].source
    assert isinstance(source, CarddavSourceConfig)
    return source


def test_defaults(tmp_path: Path) -> None:
    source = carddav(with_source(), tmp_path)
    assert source == CarddavSourceConfig(url=BOOK)
    assert (source.key, source.batch_size, source.sync_collection) == ("UID", 100, True)
    assert (source.verify_tls, source.ca_bundle, source.allow_http) == (True, None, False)
    assert source.username is None
    assert source.password is None


def test_every_key(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(CARDDAV_PASSWORD + "\n", encoding="utf-8")
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    data = with_source(
        url="http://127.0.0.1:5232/sync/contacts/",
        username="sync",
        password_file="pw",
        key="X-CRM-ID",
        ca_bundle="ca.pem",
        verify_tls=True,
        allow_http=True,
        timeout_seconds=5,
        batch_size=250,
        sync_collection=False,
    )
    source = carddav(data, tmp_path)
    assert source.password == Secret(CARDDAV_PASSWORD)
    assert source.ca_bundle == tmp_path / "ca.pem"
    assert (source.key, source.timeout_seconds, source.batch_size) == ("X-CRM-ID", 5, 250)
    assert source.sync_collection is False
    assert CARDDAV_PASSWORD not in repr(source)


def test_the_password_from_the_environment(tmp_path: Path) -> None:
    environ = {**ENV, "VIPEXSYNC_SOURCE_PASSWORD": CARDDAV_PASSWORD}
    source = carddav(with_source(username="sync"), tmp_path, environ)
    assert source.password == Secret(CARDDAV_PASSWORD)
    # a password_file wins over the environment
    (tmp_path / "pw").write_text("from-the-file\n", encoding="utf-8")
    source = carddav(with_source(username="sync", password_file="pw"), tmp_path, environ)
    assert source.password == Secret("from-the-file")
    # without a username the environment's password is not used
    assert carddav(with_source(), tmp_path, environ).password is None


@pytest.mark.parametrize(
    ("source", "key", "expected"),
    [
        ({"username": "sync"}, "password", "VIPEXSYNC_SOURCE_PASSWORD"),
        ({"password_file": "pw"}, "username", "needs a username"),
        ({"url": "http://dav.example.hu/book/"}, "url", "allow_http = true"),
        ({"url": "https://u:p@dav.example.hu/book/"}, "url", "must not contain a user name"),
        ({"url": "dav.example.hu/book/"}, "url", "address book's https:// URL"),
        ({"ca_bundle": "missing.pem"}, "ca_bundle", "does not exist"),
        ({"batch_size": 0}, "batch_size", "at least 1"),
        ({"batch_size": 5000}, "batch_size", "at most 1000"),
        ({"sync_collection": "yes"}, "sync_collection", "boolean"),
        ({"key": " "}, "key", "must not be empty"),
        ({"path": "x.vcf"}, "path", "valid keys"),
    ],
)
def test_problems(tmp_path: Path, source: dict[str, Any], key: str, expected: str) -> None:
    (tmp_path / "pw").write_text("secret\n", encoding="utf-8")
    found = problems(with_source(**source), tmp_path)
    assert len(found) == 1, found
    assert found[0].startswith(f"jobs[0].source.{key}: "), found
    assert expected in found[0]


def test_transport_settings_do_not_change_the_fingerprint(tmp_path: Path) -> None:
    job = parse(with_source(), tmp_path).jobs[0]
    source = job.source
    assert isinstance(source, CarddavSourceConfig)
    for changed in (
        dataclasses.replace(source, batch_size=7),
        dataclasses.replace(source, sync_collection=False),
        dataclasses.replace(source, verify_tls=False),
        dataclasses.replace(source, password=Secret("x")),
        dataclasses.replace(source, timeout_seconds=3),
    ):
        assert mapping_fingerprint(dataclasses.replace(job, source=changed)) == (
            mapping_fingerprint(job)
        )
    for different in (
        dataclasses.replace(source, url=BOOK + "other/"),
        dataclasses.replace(source, key="X-CRM-ID"),
        dataclasses.replace(source, username="other"),
    ):
        assert mapping_fingerprint(dataclasses.replace(job, source=different)) != (
            mapping_fingerprint(job)
        )


def test_a_carddav_job_may_leave_out_the_mapping(tmp_path: Path) -> None:
    data = with_source()
    del data["jobs"][0]["mapping"]
    mapping = parse(data, tmp_path).jobs[0].mapping
    assert mapping.phone_fields == ("tel_voice",)
    assert mapping.name == "{fn|n|org}"
