"""The key declarations drive validation, defaults, the example file and `vipexsync init`.

Every test walks the declarations (vipexsync.config_schema.keys_of), so a key
added tomorrow is checked the same way without a new test.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from vipexsync.config import (
    CARD_SOURCE_TYPES,
    SOURCE_TYPES,
    DatabaseConfig,
    JobConfig,
    LoggingConfig,
    MappingConfig,
    MetricsConfig,
    VipexConfig,
    load_config,
    mapping_fingerprint,
    parse_config,
)
from vipexsync.config_render import render_example, render_starter, toml_value, write_starter
from vipexsync.config_schema import Key, keys_of
from vipexsync.errors import ConfigError, UsageError

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "vipexsync.example.toml"
ENV = {"VIPEXSYNC_VIPEX_PASSWORD": "Sup3r-Secret-Pa55"}

BASE: dict[str, Any] = {
    "vipex": {"url": "https://cloud.example.hu", "username": "api_user"},
    "jobs": [
        {
            "name": "crm",
            "vipex_id": "1643897",
            "source": {"type": "csv", "path": "crm.csv", "key": "id"},
            "mapping": {"phone_fields": ["phone"], "name": "{last_name}"},
        }
    ],
}
SOURCE_MINIMAL: dict[str, dict[str, Any]] = {
    "csv": {"path": "crm.csv", "key": "id"},
    "sql": {"url": "sqlite:////srv/crm.sqlite3", "query": "SELECT 1", "key": "id"},
    "http": {"url": "https://crm.example.com/api", "key": "id"},
    "vcard": {"path": "cards"},
    "carddav": {"url": "https://dav.example.hu/alice/contacts/"},
}
# Where each class's table sits in the document.
PATHS: dict[type[Any], tuple[str | int, ...]] = {
    VipexConfig: ("vipex",),
    DatabaseConfig: ("database",),
    MetricsConfig: ("metrics",),
    LoggingConfig: ("logging",),
    JobConfig: ("jobs", 0),
    MappingConfig: ("jobs", 0, "mapping"),
}
DECLARED = (*PATHS, *SOURCE_TYPES.values())


def table_at(data: dict[str, Any], cls: type[Any]) -> dict[str, Any]:
    table: Any = data
    for part in PATHS.get(cls, ("jobs", 0, "source")):
        table = table.setdefault(part, {}) if isinstance(part, str) else table[part]
    return table  # type: ignore[no-any-return]


def data_for(cls: type[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A valid document whose table for ``cls`` is minimal, and that table."""
    data = copy.deepcopy(BASE)
    kind = next((k for k, c in SOURCE_TYPES.items() if c is cls), None)
    if kind is not None:
        data["jobs"][0]["source"] = {"type": kind, **copy.deepcopy(SOURCE_MINIMAL[kind])}
    return data, table_at(data, cls)


def parse(data: dict[str, Any], tmp_path: Path) -> Any:
    return parse_config(data, base_dir=tmp_path, environ=ENV)


def value_of(config: Any, cls: type[Any]) -> Any:
    if cls is VipexConfig:
        return config.vipex
    if cls is DatabaseConfig:
        return config.database
    if cls is MetricsConfig:
        return config.metrics
    if cls is LoggingConfig:
        return config.logging
    if cls is JobConfig:
        return config.jobs[0]
    if cls is MappingConfig:
        return config.jobs[0].mapping
    return config.jobs[0].source


def all_keys() -> list[tuple[type[Any], Key]]:
    return [(cls, key) for cls in DECLARED for key in keys_of(cls)]


def key_id(item: tuple[type[Any], Key]) -> str:
    return f"{item[0].__name__}.{item[1].name}"


# ---------------------------------------------------------------- declarations vs objects


def test_every_field_of_a_config_object_is_a_declared_key() -> None:
    """Only the structural fields (a source's type, a job's tables) are not settings."""
    structural = {"type", "source", "mapping"}
    for cls in DECLARED:
        declared = {key.name for key in keys_of(cls)}
        fields = {spec.name for spec in dataclasses.fields(cls)}
        assert fields - declared <= structural, cls.__name__
        assert declared <= fields


@pytest.mark.parametrize("item", all_keys(), ids=key_id)
def test_a_left_out_key_takes_its_declared_default(
    item: tuple[type[Any], Key], tmp_path: Path
) -> None:
    cls, key = item
    data, table = data_for(cls)
    if key.required:
        assert key.name in table or key.secret or key.custom, "the minimal table sets it"
        return
    table.pop(key.name, None)
    section = value_of(parse(data, tmp_path), cls)
    assert getattr(section, key.name) == key.default


@pytest.mark.parametrize("item", all_keys(), ids=key_id)
def test_the_declared_range_is_enforced_at_its_bounds(
    item: tuple[type[Any], Key], tmp_path: Path
) -> None:
    cls, key = item
    if key.kind not in ("integer", "number") or (key.minimum is None and key.maximum is None):
        if key.positive:
            data, table = data_for(cls)
            table[key.name] = 0
            with pytest.raises(ConfigError) as caught:
                parse(data, tmp_path)
            assert caught.value.problems[0].endswith(f".{key.name}: must be greater than 0, got 0")
        return
    step = 1 if key.kind == "integer" else 0.001
    cast = int if key.kind == "integer" else float
    for bound, outside in ((key.minimum, -step), (key.maximum, step)):
        if bound is None:
            continue
        data, table = data_for(cls)
        table[key.name] = cast(bound)
        assert getattr(value_of(parse(data, tmp_path), cls), key.name) == bound
        table[key.name] = cast(bound) + outside
        with pytest.raises(ConfigError) as caught:
            parse(data, tmp_path)
        (problem,) = caught.value.problems
        assert re.match(rf"^[\w.\[\]]*\b{key.name}: must be at (least|most) ", problem), problem


@pytest.mark.parametrize("item", all_keys(), ids=key_id)
def test_every_declared_choice_is_accepted_and_a_typo_gets_a_hint(
    item: tuple[type[Any], Key], tmp_path: Path
) -> None:
    cls, key = item
    if not key.choices:
        return
    for choice in key.choices:
        data, table = data_for(cls)
        table[key.name] = choice
        assert getattr(value_of(parse(data, tmp_path), cls), key.name) == choice
    data, table = data_for(cls)
    table[key.name] = key.choices[-1][:-1] + "x"  # one letter off
    with pytest.raises(ConfigError) as caught:
        parse(data, tmp_path)
    (problem,) = caught.value.problems
    assert f"(did you mean {key.choices[-1]!r}?)" in problem


@pytest.mark.parametrize("cls", DECLARED, ids=lambda c: c.__name__)
def test_a_misspelt_key_names_the_declared_one(cls: type[Any], tmp_path: Path) -> None:
    for key in keys_of(cls):
        data, table = data_for(cls)
        typo = key.name + "s"
        table[typo] = table.get(key.name, "x")
        with pytest.raises(ConfigError) as caught:
            parse(data, tmp_path)
        assert any(
            f"unknown key {typo!r}" in p and "did you mean" in p for p in caught.value.problems
        ), caught.value.problems


def test_a_wrong_type_is_refused_for_every_key(tmp_path: Path) -> None:
    """A table (never a valid scalar) for every scalar key: each is reported, at once."""
    expected: list[str] = []
    data = copy.deepcopy(BASE)
    for cls in (VipexConfig, JobConfig, MappingConfig):
        table = table_at(data, cls)
        for key in keys_of(cls):
            if key.kind not in ("table", "secret"):
                table[key.name] = {"nested": 1}
                expected.append(key.name)
    with pytest.raises(ConfigError) as caught:
        parse(data, tmp_path)
    named = {problem.split(": ")[0].rsplit(".", 1)[-1] for problem in caught.value.problems}
    assert set(expected) <= named


# ---------------------------------------------------------------- the example file


def test_the_example_file_is_what_the_declarations_generate() -> None:
    assert EXAMPLE.read_text(encoding="utf-8") == render_example(), (
        "config/vipexsync.example.toml is generated from the declarations in "
        "vipexsync/config.py: run `make example` and commit the result"
    )


def test_the_example_documents_every_key() -> None:
    text = render_example()
    for cls, key in all_keys():
        name = f"{key.name}_file" if key.secret else key.name
        pattern = rf"^(#  # |# |#)?(\[[\w.]+\.)?{re.escape(name)}\b"
        assert re.search(pattern, text, re.MULTILINE), f"{cls.__name__}.{name}"


def test_the_example_loads_with_the_declared_example_values(tmp_path: Path) -> None:
    config = load_config(EXAMPLE, environ=ENV)
    for cls in (VipexConfig, MetricsConfig, LoggingConfig, JobConfig, MappingConfig):
        section = value_of(config, cls)
        for key in keys_of(cls):
            if key.shown and not key.custom and key.kind not in ("secret", "path"):
                expected = key.shown_value
                if key.kind == "strings":
                    expected = tuple(expected)
                assert getattr(section, key.name) == expected, key.name


@pytest.mark.parametrize(
    ("value", "toml"),
    [
        (True, "true"),
        (15.0, "15"),
        (0.1, "0.1"),
        ('a "quoted" {x}', '"a \\"quoted\\" {x}"'),
        ("Ügyfélkód", '"Ügyfélkód"'),
        ("  SELECT 1\n", '"""\n  SELECT 1\n"""'),
        ("\nfirst line empty", '"""\n\nfirst line empty"""'),
        ("tab\there\n", '"""\ntab\there\n"""'),
        ("back\\slash\n", '"back\\\\slash\\n"'),
        (["a", "b"], '["a", "b"]'),
    ],
)
def test_toml_values_read_back_as_themselves(value: Any, toml: str) -> None:
    assert toml_value(value) == toml
    assert tomllib.loads(f"x = {toml}")["x"] == value


# ---------------------------------------------------------------- vipexsync init


def fill_in(text: str) -> str:
    """What an operator does with a starter: give every Required value (the e.g. one)."""
    filled = re.sub(r'^(\w+) = (?:""|\[\])  # e\.g\. (.+)$', r"\1 = \2", text, flags=re.M)
    return filled.replace('query = ""', 'query = "SELECT id, phone FROM contacts"')


@pytest.mark.parametrize("source_type", list(SOURCE_TYPES))
def test_the_starter_names_what_to_fill_in_then_loads(source_type: str, tmp_path: Path) -> None:
    path = write_starter(tmp_path / "vipexsync.toml", source_type)
    text = path.read_text(encoding="utf-8")
    tomllib.loads(text)

    # as written: exactly the required keys are reported, each by its path
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=ENV)
    reported = {problem.split(": ")[0] for problem in caught.value.problems}
    required = {
        f"{prefix}.{key.name}"
        for prefix, cls in (
            ("vipex", VipexConfig),
            ("jobs[0]", JobConfig),
            ("jobs[0].source", SOURCE_TYPES[source_type]),
            ("jobs[0].mapping", MappingConfig),
        )
        for key in keys_of(cls)
        if key.required and not key.secret
    }
    if source_type in CARD_SOURCE_TYPES:  # a card job's mapping has defaults for every key
        required -= {"jobs[0].mapping.phone_fields", "jobs[0].mapping.name"}
    assert reported == required

    # filled in: it loads, reads the chosen source and keeps every other default
    path.write_text(fill_in(text), encoding="utf-8")
    config = load_config(path, environ=ENV)
    (job,) = config.jobs
    assert job.source.type == source_type
    for cls, section in (
        (VipexConfig, config.vipex),
        (JobConfig, job),
        (MetricsConfig, config.metrics),
        (LoggingConfig, config.logging),
        (SOURCE_TYPES[source_type], job.source),
    ):
        for key in keys_of(cls):
            if not key.required and not key.custom:
                assert getattr(section, key.name) == key.default, key.name
    if source_type in CARD_SOURCE_TYPES:
        assert job.mapping.phone_fields == ("tel_voice",)
        assert job.mapping.name == "{fn|n|org}"


def test_the_starter_shows_every_key_of_its_source_and_no_other(tmp_path: Path) -> None:
    for source_type, cls in SOURCE_TYPES.items():
        text = render_starter(source_type)
        assert f'type = "{source_type}"' in text
        for key in keys_of(cls):
            name = f"{key.name}_file" if key.secret else key.name
            assert re.search(rf"^(# )?(\[jobs\.source\.)?{name}\b", text, re.M), name
        others = [kind for kind in SOURCE_TYPES if kind != source_type]
        assert not any(f'type = "{kind}"' in text for kind in others)


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    path = tmp_path / "vipexsync.toml"
    path.write_text("# mine\n")
    with pytest.raises(UsageError, match="already exists; pass --force"):
        write_starter(path, "csv")
    assert path.read_text() == "# mine\n"
    write_starter(path, "http", force=True)
    assert 'type = "http"' in path.read_text()


def test_init_into_a_missing_folder_says_so(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        write_starter(tmp_path / "nope" / "vipexsync.toml", "csv")


def test_unknown_source_type_lists_the_valid_ones() -> None:
    with pytest.raises(UsageError, match="use one of: " + ", ".join(SOURCE_TYPES)):
        render_starter("xls")


def test_a_missing_file_points_at_init(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"`vipexsync init .*vipexsync\.toml`"):
        load_config(tmp_path / "vipexsync.toml", environ=ENV)


# ---------------------------------------------------------------- fingerprint


FINGERPRINTED: dict[str, Any] = {
    "vipex": {"url": "https://cloud.example.hu", "username": "api_user"},
    "jobs": [
        {
            "name": "csv",
            "vipex_id": "1",
            "default_region": "at",
            "ownership_tag": "x",
            "source": {
                "type": "csv",
                "path": "crm.csv",
                "key": "id",
                "encoding": "cp1250",
                "delimiter": ";",
            },
            "mapping": {
                "phone_fields": ["phone", "mobile"],
                "name": "{a} {b}",
                "comment": "{c}",
                "tags": ["{t}"],
                "custom_fields": {"Ügyfélkód": "{id}"},
            },
        },
        {
            "name": "sql",
            "vipex_id": "2",
            "source": {
                "type": "sql",
                "url": "postgresql+psycopg://u:pw@h/db",
                "query": "SELECT 1",
                "key": "id",
                "params": {"r": "HU", "n": 3},
            },
            "mapping": {"phone_fields": ["phone"], "name": "{a}"},
        },
        {
            "name": "http",
            "vipex_id": "3",
            "source": {
                "type": "http",
                "url": "https://crm.example.com/api?k=v",
                "key": "id",
                "records_path": "data",
                "paging": "cursor",
                "page_size": 50,
                "bearer_token": "tok",
                "timeout_seconds": 5,
                "verify_tls": False,
            },
            "mapping": {"phone_fields": ["phone"], "name": "{a}"},
        },
        {
            "name": "vcard",
            "vipex_id": "4",
            "source": {"type": "vcard", "path": "/srv/cards"},
            "mapping": {"phone_fields": ["tel"], "name": "{fn}"},
        },
    ],
}
# Recorded with the parser as it was before the declarations (three places per
# key): an unchanged file must keep its fingerprint, or every mirror would see
# a "changed mapping" after the upgrade and withhold deletions.
RECORDED = {
    "csv": "b76b18e966d3653440882d1b43b3bf85ddad51532b5e2a8c132491776ddd667f",
    "sql": "a7568a73207157d0b3c2eb9b63d071d4cfa1cd6e6b38d5697c05ce99ddc62809",
    "http": "f3ae42aaf32f89c14b55bd960df90c5f7a4ea4923c6293194310e37e3963e445",
    "vcard": "91927715aaa65c91f5cda28aa3c428b7c6fc2857735a2c641d0d5149d4717cd6",
}


def test_a_parsed_file_keeps_the_fingerprint_it_had_before() -> None:
    config = parse_config(FINGERPRINTED, base_dir=Path("/srv/crm"), environ=ENV)
    assert {job.name: mapping_fingerprint(job) for job in config.jobs} == RECORDED


def test_a_key_added_later_enters_the_fingerprint_only_when_set() -> None:
    """vcard encoding came after the fingerprint's first version (fingerprint="unless-default")."""
    data = copy.deepcopy(FINGERPRINTED)
    source = data["jobs"][3]["source"]
    source["encoding"] = "utf-8"  # the default, written out
    config = parse_config(data, base_dir=Path("/srv/crm"), environ=ENV)
    assert mapping_fingerprint(config.jobs[3]) == RECORDED["vcard"]
    source["encoding"] = "cp1250"
    config = parse_config(data, base_dir=Path("/srv/crm"), environ=ENV)
    assert mapping_fingerprint(config.jobs[3]) != RECORDED["vcard"]
