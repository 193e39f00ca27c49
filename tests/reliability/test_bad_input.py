"""Bad input from both sides: fuzzed CRM files and mapping inputs, and malformed VIPeX listings.

CRM side (hypothesis): reading and mapping either fails as a whole with a
SourceError that names the file, or every bad record comes back as a
RecordProblem naming the record and the field; nothing else escapes.
Formula-like values stay plain text all the way to the plan file.

VIPeX side: a real HTTP server proxies the real emulator and corrupts its
``get_phonebook_list`` answers. A full resync must then fail or finish
safely, and deletes nothing when the listing cannot be trusted.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from reliability.wsgi_helpers import buffer_request
from support import crm_row, serve, write_crm
from vipexsync.config import CsvSourceConfig, MappingConfig, VcardSourceConfig, load_config
from vipexsync.emulator.app import EmulatorApp
from vipexsync.emulator.state import EmulatorState
from vipexsync.errors import SourceError
from vipexsync.mapping import (
    CompiledMapping,
    MappingResult,
    clean_text,
    compile_mapping,
    map_records,
)
from vipexsync.runtime import Runtime
from vipexsync.sources.base import SourceRecord
from vipexsync.sources.csv_source import FIELD_SIZE_LIMIT, CsvSource
from vipexsync.sources.vcard_source import VcardSource
from vipexsync.sync.model import Mode
from vipexsync.sync.report import Outcome, RunReport
from vipexsync.sync.runner import RunOptions
from vipexsync.vipex.models import CustomField, CustomFieldOption

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

FORMULAS = ("=cmd|' /C calc'!A0", "+SUM(1)", "@x", "-2+3", '=HYPERLINK("http://x")')
COLUMNS = ("id", "last_name", "first_name", "company", "phone", "mobile", "segment", "kind")

CSV_MAPPING = compile_mapping(
    MappingConfig(
        phone_fields=("phone", "mobile"),
        name="{last_name} {first_name}",
        comment="{company}",
        tags=("{segment}",),
        custom_fields={"Típus": "{kind}", "Kódok": "{id}", "Megjegyzés": "{company}"},
    ),
    (
        CustomField(
            1, "Típus", "menu", (CustomFieldOption(1, "Kiemelt"), CustomFieldOption(2, "Normál"))
        ),
        CustomField(2, "Kódok", "number_sequence"),
        CustomField(3, "Megjegyzés", "text"),
    ),
    job="crm",
)
VCARD_MAPPING = compile_mapping(
    MappingConfig(
        phone_fields=("tel_cell", "tel_work", "tel1"),
        name="{fn}",
        comment="{org}",
        tags=("{categories}",),
    ),
    (),
    job="crm",
)


# -- what every read must satisfy ---------------------------------------------------


def check_mapped(result: MappingResult, mapping: CompiledMapping) -> None:
    """Every problem names its record and field; every desired entry is sendable."""
    fields = {"key", "record", "name", *mapping.phone_fields}  # "record": a row read short
    fields |= {f"tags[{i}]" for i in range(len(mapping.tags))}
    fields |= {c.field.field_name for c in mapping.custom_fields}
    for problem in (*result.problems, *result.notes):
        assert problem.record_key.strip(), problem
        assert problem.locator, problem
        if problem.code == "undecodable_value":
            assert problem.field in mapping.used_fields or problem.field == "key", problem
        elif problem.code not in ("source_repaired", "value_replaced", "number_not_synced"):
            # what the source found may be about any field of the record
            assert problem.field in fields, problem
        assert problem.code, problem
        assert problem.reason.strip(), problem
        named = problem.record_key in problem.reason or repr(problem.record_key) in problem.reason
        assert named, f"the reason does not name record {problem.record_key!r}: {problem.reason}"
    for number, desired in result.desired.items():
        entry = desired.entry
        assert number == entry.phonenumber
        assert number.isascii(), number
        assert number.isdigit(), number
        assert not number.startswith("0"), number
        assert entry.name, entry
        assert entry.name == clean_text(entry.name), entry
        assert all(tag and "," not in tag for tag in entry.tags), entry.tags
        assert desired.record_key.strip()
    assert result.records >= len({d.record_key for d in result.desired.values()})


def read_and_map(
    source: CsvSource | VcardSource, mapping: CompiledMapping, name: str, *, fuzzing: bool = False
) -> MappingResult | None:
    """Read + map; a SourceError must name the file and say something."""
    try:
        result = map_records(source.read(), mapping, region="HU", ownership_tag="crm-sync")
    except SourceError as exc:
        message = str(exc)
        assert name in message, message
        if fuzzing:
            event("the whole read failed (SourceError)")
        return None
    check_mapped(result, mapping)
    entries = "some" if result.desired else "no"
    problems = "some" if result.problems else "no"
    if fuzzing:
        event(f"read: {entries} entries, {problems} problems")
    return result


# -- CSV ----------------------------------------------------------------------------

cell_text = st.one_of(
    st.sampled_from(FORMULAS),
    st.text(max_size=30),
    st.text(alphabet="ÁÉÍÓÖŐÚÜŰáéíóöőúüű,;\"'\x00\n\r\t ", max_size=20),
)
phone_text = st.one_of(
    st.sampled_from(
        ["+36 1 999 6000", "06-30-123-4567", "+36 (1) 555-12-12 ext. 12", "12", "", " "]
    ),
    st.integers(1000000, 9999999).map(lambda n: f"+36 1 {n}"),
    st.text(alphabet="0123456789 +-()/", max_size=18),
)
key_text = st.one_of(st.integers(0, 40).map(str), st.sampled_from(["", " ", "\x00", "K-1"]))


def one_in(n: int) -> st.SearchStrategy[bool]:
    return st.integers(1, n).map(lambda x: x == 1)


@st.composite
def csv_files(draw: st.DrawFn) -> tuple[bytes, str]:
    """A CRM export, often gone wrong in one or more ways; returns (bytes, configured encoding)."""
    if draw(one_in(10)):
        return draw(st.binary(max_size=400)), "utf-8"
    header = list(COLUMNS)
    if draw(one_in(3)):
        header = draw(st.lists(st.sampled_from(COLUMNS), min_size=1, max_size=8, unique=True))
    if draw(one_in(6)) and "id" in header:
        header.remove("id")  # the key column is missing
    columns = {"id": key_text, "phone": phone_text, "mobile": phone_text}
    rows = []
    for _ in range(draw(st.integers(0, 12))):
        row = [draw(columns.get(name, cell_text)) for name in header]
        if draw(one_in(5)):  # ragged: cut short, or surplus cells
            row = row[: draw(st.integers(0, len(row)))] + draw(st.lists(cell_text, max_size=2))
        rows.append(row)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=draw(st.sampled_from(["\r\n", "\n"])))
    writer.writerow(header)
    writer.writerows(rows)
    text = out.getvalue()
    if draw(one_in(8)):
        text += '77,"unterminated,' + draw(cell_text)
    written, configured = draw(
        st.sampled_from(
            [("utf-8", "utf-8")] * 4
            + [("cp1250", "utf-8"), ("utf-8", "cp1250"), ("cp1250", "cp1250")]
        )
    )
    data = text.encode(written, errors="replace")
    if draw(one_in(6)):
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
    if draw(one_in(8)):
        data = data[: draw(st.integers(0, len(data)))]  # cut short anywhere
    return data, configured


@given(case=csv_files())
@FUZZ
def test_fuzzed_csv_reads_cleanly_or_fails_as_a_whole(
    tmp_path: Path, case: tuple[bytes, str]
) -> None:
    data, encoding = case
    path = tmp_path / "crm.csv"
    path.write_bytes(data)
    source = CsvSource(CsvSourceConfig(path=path, key="id", encoding=encoding))
    read_and_map(source, CSV_MAPPING, "crm.csv", fuzzing=True)


def csv_bytes(rows: list[dict[str, str]], header: Iterable[str] = COLUMNS) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(header), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def read_csv(
    tmp_path: Path, data: bytes, *, encoding: str = "utf-8", key: str = "id"
) -> MappingResult | None:
    path = tmp_path / "crm.csv"
    path.write_bytes(data)
    return read_and_map(
        CsvSource(CsvSourceConfig(path=path, key=key, encoding=encoding)), CSV_MAPPING, "crm.csv"
    )


def test_csv_failures_of_the_whole_file_are_source_errors(tmp_path: Path) -> None:
    good = [crm_row(1, "+36 1 999 6000", "Kiss Anna")]
    cases = {
        "missing key column": csv_bytes(good, [c for c in COLUMNS if c != "id"]),
        "huge field": csv_bytes(
            [crm_row(1, "+36 1 999 6000", "Kiss Anna", company="x" * (FIELD_SIZE_LIMIT + 1))]
        ),
        "unterminated quote": csv_bytes(good) + b'2,"Nagy,Bela,,+36 1 999 6001\r\n',
        "cp1250 read as utf-8": "id,last_name,phone\r\n1,Árvíztűrő,+36 1 999 6000\r\n".encode(
            "cp1250"
        ),
        "ragged row with extra values": csv_bytes(good)
        + b"2,Nagy,Bela,Kft,+36 1 999 6001,,,,surplus\r\n",
        "empty file": b"",
    }
    for name, data in cases.items():
        assert read_csv(tmp_path, data) is None, name


def test_csv_bad_records_are_rejected_one_by_one(tmp_path: Path) -> None:
    data = (
        csv_bytes(
            [
                crm_row(1, "+36 1 999 6000", "Kiss Anna"),
                crm_row(2, "nem szám", "Nagy Béla"),  # invalid phone
                {"id": "", "last_name": "Kulcs", "phone": "+36 1 999 6002"},  # no key
                crm_row(4, "", "Telefon Nélküli"),
                {"id": "5", "phone": "+36 1 999 6005"},  # empty name
                crm_row(6, "+36 1 999 6006", "Tag Vessző", segment="a,b", kind="Ismeretlen"),
                crm_row(7, "+36 1 999 6000", "Másik Anna"),  # the number of record 1
            ]
        )
        + b"8,Rongyos\r\n"
    )  # a ragged row: that record is rejected whole (issue 9 item 5), not padded
    result = read_csv(tmp_path, data)
    assert result is not None
    codes = {(p.record_key, p.field, p.code) for p in result.problems}
    assert codes >= {
        ("2", "phone", "invalid_phone"),
        ("crm.csv line 4", "key", "missing_key"),
        ("4", "phone", "no_phone"),
        ("5", "name", "empty_name"),
        ("6", "tags[0]", "comma_in_tag"),
        ("6", "Típus", "bad_custom_field"),
        ("7", "phone", "duplicate_number"),
        ("8", "record", "unreadable_record"),
    }
    assert set(result.desired) == {"3619996000", "3619996006"}


def test_cp1250_file_read_with_the_right_encoding(tmp_path: Path) -> None:
    data = "id;last_name;first_name;phone\r\n1;Árvíztűrő;Tükörfúrógép;+36 1 999 6000\r\n".encode(
        "cp1250"
    )
    path = tmp_path / "crm.csv"
    path.write_bytes(data)
    source = CsvSource(CsvSourceConfig(path=path, key="id", encoding="cp1250", delimiter=";"))
    result = read_and_map(source, CSV_MAPPING, "crm.csv")
    assert result is not None
    assert result.desired["3619996000"].entry.name == "Árvíztűrő Tükörfúrógép"


def test_formula_like_values_stay_plain_text_up_to_the_plan_file(
    tmp_path: Path, job_files: Any
) -> None:
    state = EmulatorState()
    state.add_subscription("1643897")
    with serve(EmulatorApp(state)) as url:
        vipex = SimpleNamespace(
            url=url, username="api_user", password="api_password", vipex_id="1643897"
        )
        rows = [
            crm_row(i, f"+36 1 {5550000 + i}", f"{formula} Ödön", company=formula, segment=formula)
            for i, formula in enumerate(FORMULAS, start=1)
        ]
        config = job_files(vipex, rows)
        plan_file = tmp_path / "plan.json"
        loaded = load_config(config)
        with Runtime(loaded) as runtime:
            report = runtime.run_job(
                loaded.jobs[0], RunOptions(mode=Mode.FULL, dry_run=True, plan_out=plan_file)
            )
    assert report.outcome is Outcome.SUCCESS, report.error
    assert report.planned.get("create") == len(FORMULAS)
    plan = json.loads(plan_file.read_text(encoding="utf-8"))
    after = {row["phonenumber"]: row["after"] for row in plan}
    for i, formula in enumerate(FORMULAS, start=1):
        entry = after[f"361{5550000 + i}"]
        assert entry["name"] == f"{formula} Ödön"
        assert entry["comment"] == formula
        assert formula in entry["tags"]
    json.dumps(report.as_json())  # the report serialises too
    assert state.entries("1643897") == []  # a dry run


# -- vCard --------------------------------------------------------------------------

vcard_value = st.one_of(
    st.sampled_from(FORMULAS),
    st.text(max_size=25),
    st.sampled_from(["+36 1 999 6000", "tel:+36-30-123-4567", "06 20 555 1212", "x"]),
)


@st.composite
def vcard_files(draw: st.DrawFn) -> bytes:
    """Cards with random properties, broken structure, wrong encodings or noise."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=400))
    lines: list[str] = []
    for number in range(draw(st.integers(0, 5))):
        lines.append("BEGIN:VCARD")
        lines.append(draw(st.sampled_from(["VERSION:3.0", "VERSION:2.1", "VERSION:4.0", ""])))
        if not draw(one_in(5)):
            lines.append(f"UID:{draw(st.sampled_from(['', str(number), 'u-1', 'Ü,;']))}")
        if not draw(one_in(5)):
            lines.append(f"FN:{draw(vcard_value)}")
        if not draw(one_in(5)):
            lines.append(f"TEL;TYPE=CELL:{draw(phone_text)}")
        for _ in range(draw(st.integers(0, 6))):
            name = draw(
                st.sampled_from(
                    [
                        "FN",
                        "N",
                        "TEL;TYPE=CELL",
                        "TEL;TYPE=work,voice",
                        "TEL",
                        "ORG",
                        "CATEGORIES",
                        "NOTE;ENCODING=QUOTED-PRINTABLE;CHARSET=ISO-8859-2",
                        "X-CRM",
                        "item1.TEL",
                        "PHOTO;ENCODING=b",
                    ]
                )
            )
            lines.append(f"{name}:{draw(vcard_value)}")
        if not draw(one_in(8)):
            lines.append("END:VCARD")  # else: a card without END
    if draw(one_in(4)):
        lines.insert(draw(st.integers(0, len(lines))), " folded continuation")
    text = "\r\n".join(lines) + "\r\n"
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "cp1250", "utf-8-sig"]))
    data = text.encode(encoding, errors="replace")
    if draw(one_in(5)):
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=6)) + data[at:]
    return data


@given(data=vcard_files())
@FUZZ
def test_fuzzed_vcard_reads_cleanly_or_fails_as_a_whole(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "contacts.vcf"
    path.write_bytes(data)
    read_and_map(
        VcardSource(VcardSourceConfig(path=path)), VCARD_MAPPING, "contacts.vcf", fuzzing=True
    )


def test_vcard_huge_field_and_nul_bytes(tmp_path: Path) -> None:
    huge = "x" * (FIELD_SIZE_LIMIT + 10)
    text = (
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:1\r\nFN:Kiss\x00 Anna\r\n"
        f"TEL;TYPE=CELL:+36 30 123 4567\r\nNOTE:{huge}\r\nORG:=cmd|' /C calc'!A0\r\nEND:VCARD\r\n"
    )
    path = tmp_path / "big.vcf"
    path.write_bytes(text.encode("utf-8"))
    result = read_and_map(VcardSource(VcardSourceConfig(path=path)), VCARD_MAPPING, "big.vcf")
    assert result is not None
    entry = result.desired["36301234567"].entry
    assert entry.name == "Kiss Anna"
    assert entry.comment == "=cmd|' /C calc'!A0"


# -- the mapping on its own ----------------------------------------------------------

records = st.lists(
    st.builds(
        lambda key, fields, n: SourceRecord(key=key, fields=fields, locator=f"fuzz row {n}"),
        st.one_of(st.text(max_size=8), st.integers(0, 30).map(str)),
        st.dictionaries(
            st.sampled_from(COLUMNS),
            st.one_of(
                st.text(max_size=40),
                st.sampled_from(FORMULAS),
                st.text(alphabet="0123456789 +-()/#extx.,", max_size=25),
                st.sampled_from(
                    ["a,b", ",", "Kiemelt", "kiemelt ", "1, 2,3", "12,,3", "+36 1 999 6000"]
                ),
            ),
        ),
        st.integers(0, 1000),
    ),
    max_size=25,
)


@given(batch=records)
@settings(max_examples=300, deadline=None)
def test_fuzzed_mapping_never_raises_and_explains_every_problem(batch: list[SourceRecord]) -> None:
    result = map_records(batch, CSV_MAPPING, region="HU", ownership_tag="crm-sync")
    check_mapped(result, CSV_MAPPING)
    assert result.records == len(batch)
    for desired in result.desired.values():
        assert "crm-sync" in desired.entry.tags


# -- malformed VIPeX listings ----------------------------------------------------------

VIPEX_ID = "1643897"
SYNCED = 450  # three pages of 200
REMOVED = range(1, 6)  # dropped from the CRM after the first sync: five deletions are due
FOREIGN = "36301112233"

Document = dict[str, Any]


def _rows(doc: Document) -> list[Any]:
    rows = doc["onvipex_result"]["phonebook_list"]
    assert isinstance(rows, list)
    return rows


def _meta(doc: Document) -> dict[str, Any]:
    meta = doc["onvipex_result"]["metadata"]
    assert isinstance(meta, dict)
    return meta


def _edit(change: Callable[[Document], object]) -> Callable[[bytes], bytes]:
    def corrupt(body: bytes) -> bytes:
        doc = json.loads(body)
        change(doc)
        return json.dumps(doc).encode("utf-8")

    return corrupt


def _set_count(delta: int) -> Callable[[Document], object]:
    return lambda d: _meta(d).update(full_count=str(int(_meta(d)["full_count"]) + delta))


def _bigger_page(doc: Document) -> None:
    rows = _rows(doc)
    for i in range(5):
        rows.append(
            {
                "phonenumber": 36709990000 + i,
                "name": "Szellem",
                "tags": "crm-sync",
                "comment": "",
                "custom_field_options": [],
            }
        )
    _meta(doc)["list_count"] = len(rows)


def _drop_rows(doc: Document) -> None:
    del _rows(doc)[-3:]
    _meta(doc)["list_count"] = len(_rows(doc))


def _repeat_rows(doc: Document) -> None:
    rows = _rows(doc)
    rows[-3:] = [dict(r) for r in rows[:3]]


@dataclass(frozen=True)
class Corruption:
    name: str
    corrupt: Callable[[bytes], bytes]
    pages: str  # "first" (offset 0), "later" (offset > 0) or "all"
    trusted: bool = False  # the parser tolerates it: the listing is still complete


CORRUPTIONS = [
    Corruption("truncated json", lambda b: b[: len(b) // 2], "later"),
    Corruption("empty body", lambda b: b"", "first"),
    Corruption("json array", lambda b: b"[1, 2, 3]", "all"),
    Corruption("result missing", _edit(lambda d: d["onvipex_result"].pop("result")), "later"),
    Corruption(
        "result zero", _edit(lambda d: d["onvipex_result"].update(result=0, reason="Hiba")), "later"
    ),
    Corruption(
        "name as a number", _edit(lambda d: _rows(d)[0].update(name=12345)), "all", trusted=True
    ),
    Corruption(
        "tags as a list",
        _edit(lambda d: _rows(d)[1].update(tags=["crm-sync", "x"])),
        "all",
        trusted=True,
    ),
    Corruption("tags as an object", _edit(lambda d: _rows(d)[1].update(tags={"a": 1})), "later"),
    Corruption("phonenumber missing", _edit(lambda d: _rows(d)[2].pop("phonenumber")), "later"),
    Corruption(
        "phonenumber negative", _edit(lambda d: _rows(d)[2].update(phonenumber=-1)), "first"
    ),
    Corruption("row not an object", _edit(lambda d: _rows(d).__setitem__(0, "sor")), "later"),
    Corruption("no metadata", _edit(lambda d: d["onvipex_result"].pop("metadata")), "later"),
    Corruption(
        "no phonebook_list", _edit(lambda d: d["onvipex_result"].pop("phonebook_list")), "first"
    ),
    Corruption(
        "phonebook_list an object",
        _edit(lambda d: d["onvipex_result"].update(phonebook_list={})),
        "later",
    ),
    Corruption("full_count garbage", _edit(lambda d: _meta(d).update(full_count="sok")), "first"),
    Corruption("full_count too high", _edit(_set_count(+7)), "all"),
    Corruption("full_count too low", _edit(_set_count(-7)), "all"),
    Corruption("full_count changes", _edit(_set_count(+1)), "later"),
    Corruption("list_count wrong", _edit(lambda d: _meta(d).update(list_count=3)), "later"),
    Corruption("page larger than asked", _edit(_bigger_page), "first"),
    Corruption("rows dropped", _edit(_drop_rows), "later"),
    Corruption("rows repeated", _edit(_repeat_rows), "later"),
]


class CorruptingProxy:
    """WSGI app: the real emulator, with chosen get_phonebook_list answers corrupted."""

    def __init__(self, inner: EmulatorApp, corruption: Corruption | None) -> None:
        self.inner = inner
        self.corruption = corruption

    def _applies(self, offset: int) -> bool:
        c = self.corruption
        if c is None:
            return False
        return c.pages == "all" or (c.pages == "first") == (offset == 0)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        params = buffer_request(environ)
        if params.get("action") != "get_phonebook_list":
            return self.inner(environ, start_response)
        seen: dict[str, Any] = {}

        def capture(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], object]:
            seen["status"], seen["headers"] = status, headers
            return lambda _data: None

        answer = self.inner(environ, capture)
        try:
            body = b"".join(answer)
        finally:
            getattr(answer, "close", lambda: None)()
        if self._applies(int(str(params.get("offset", "0")))):
            assert self.corruption is not None
            body = self.corruption.corrupt(body)
        headers = [(k, v) for k, v in seen["headers"] if k.lower() != "content-length"]
        start_response(seen["status"], [*headers, ("Content-Length", str(len(body)))])
        return [body]


def number(i: int) -> str:
    return f"361{6000000 + i}"


def crm(keys: Iterable[int]) -> list[dict[str, str]]:
    return [crm_row(i, f"+36 1 {6000000 + i}", f"Ügyfél{i} Anna") for i in keys]


@dataclass(frozen=True)
class Baseline:
    state: dict[str, object]
    mirror: Path


@pytest.fixture(scope="module")
def synced(tmp_path_factory: pytest.TempPathFactory) -> Baseline:
    """One phonebook synced from SYNCED CRM records (plus a foreign entry), kept as a snapshot."""
    folder = tmp_path_factory.mktemp("baseline")
    state = EmulatorState()
    state.add_subscription(VIPEX_ID)
    state.put_entry(VIPEX_ID, FOREIGN, "Pizzéria", ["ebéd"], "")
    with serve(EmulatorApp(state)) as url:
        config = _config(folder, url, crm(range(1, SYNCED + 1)))
        report = _full_resync(config)
    assert report.outcome is Outcome.SUCCESS, report.error
    assert report.applied == {"create": SYNCED}
    return Baseline(state=state.to_json(), mirror=folder / "mirror.sqlite3")


def _config(folder: Path, url: str, rows: list[dict[str, str]]) -> Path:
    from support import JOB_TOML

    write_crm(folder / "crm.csv", rows)
    secret = folder / "vipex-password"
    secret.write_text("api_password\n", encoding="utf-8")
    secret.chmod(0o600)
    config = folder / "vipexsync.toml"
    config.write_text(
        JOB_TOML.format(
            url=url,
            username="api_user",
            timeout=5,
            concurrency=4,
            retry_deadline=0.4,
            database=f"sqlite:///{folder / 'mirror.sqlite3'}",
            job="crm",
            vipex_id=VIPEX_ID,
            ownership_tag="crm-sync",
            delete="owned",
            max_deletes=100,
            max_delete_ratio=1.0,
            min_source_records=1,
            custom_fields="",
        ),
        encoding="utf-8",
    )
    return config


def _full_resync(config: Path) -> RunReport:
    loaded = load_config(config)
    with Runtime(loaded) as runtime:
        return runtime.run_job(loaded.jobs[0], RunOptions(mode=Mode.FULL))


@pytest.mark.parametrize(
    "corruption", [None, *CORRUPTIONS], ids=["control", *(c.name for c in CORRUPTIONS)]
)
def test_malformed_listing_never_leads_to_deletions(
    synced: Baseline, tmp_path: Path, corruption: Corruption | None
) -> None:
    state = EmulatorState.from_json(synced.state)
    shutil.copyfile(synced.mirror, tmp_path / "mirror.sqlite3")
    app = EmulatorApp(state)
    remaining = [i for i in range(1, SYNCED + 1) if i not in REMOVED]
    with serve(CorruptingProxy(app, corruption)) as url:
        report = _full_resync(_config(tmp_path, url, crm(remaining)))

    deletes = app.request_counts().get("del_phonebook_entry", 0)
    book = {str(e["phonenumber"]) for e in state.entries(VIPEX_ID)}
    assert FOREIGN in book
    assert {number(i) for i in remaining} <= book  # nothing the CRM has was lost
    assert report.outcome in (Outcome.SUCCESS, Outcome.FAILURE, Outcome.GUARDED), report
    if corruption is None or corruption.trusted:
        # The control: with a listing that can be trusted the five deletions are made,
        # so the zero below is the engine's caution, not a set-up that never deletes.
        assert report.outcome is Outcome.SUCCESS, report.error
        assert deletes == len(REMOVED)
        assert not book & {number(i) for i in REMOVED}
    else:
        assert deletes == 0, f"{corruption.name}: {deletes} deletions on an untrustworthy listing"
        assert report.outcome is Outcome.FAILURE or report.remote_problems, report
