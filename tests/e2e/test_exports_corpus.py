"""The export corpus (tests/fixtures/exports): files as real tools write them, synced end to end.

Outlook 2003/2007 vCard 2.1 (CHARSET=Windows-1250, quoted-printable soft breaks, raw 8-bit,
a 2.1 PHOTO), iPhone (CR CR LF, folded lines, item1.TEL), Android (QP UTF-8, grouped TEL,
a company-only card, a duplicate number), Thunderbird 4.0, Windows Contacts UTF-16 with and
without BOM, a card with a broken NOTE, a card whose FN is not UTF-8, ISO-8859-2 raw values;
Google Contacts, Outlook (cp1250) and Thunderbird CSV exports without an id column.

Through the CLI against the emulator: every voice number lands, no file fails as a whole,
and every rejection is listed with its location in the --rejects-out CSV and the report.
The expected numbers are the fixtures' voice numbers, written out by hand from the files.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import run_cli as cli
from support import serve_empty_vipex
from vipexsync.emulator.server import RunningEmulator

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "exports"
IDS = {"vcards": "7001", "google": "7002", "outlook": "7003", "thunderbird": "7004"}

CONFIG = """\
[vipex]
url = "{url}"
username = "{username}"
password_file = "vipex-password"
allow_http = true
timeout_seconds = 5

[database]
url = "sqlite:///{db}"

[metrics]
listen = ""

# Every vCard export in one folder, with no key and no mapping: the defaults.
[[jobs]]
name = "vcards"
vipex_id = "7001"
full_resync_cron = ""
max_delete_ratio = 1.0  # only the unreadable file may hold deletions back
[jobs.source]
type = "vcard"
path = "{corpus}/vcards"

# Google Contacts CSV: no id column, so no key (the row digest); " ::: " between numbers.
[[jobs]]
name = "google"
vipex_id = "7002"
full_resync_cron = ""
[jobs.source]
type = "csv"
path = "{corpus}/google-contacts.csv"
[jobs.mapping]
phone_fields = ["Phone 1 - Value", "Phone 2 - Value"]
name = "{{Name|Organization 1 - Name}}"
comment = "{{Organization 1 - Name}}"

# Outlook CSV: Windows-1250, a composite key.
[[jobs]]
name = "outlook"
vipex_id = "7003"
full_resync_cron = ""
[jobs.source]
type = "csv"
path = "{corpus}/outlook.csv"
encoding = "cp1250"
key = ["First Name", "Last Name", "Company"]
[jobs.mapping]
phone_fields = ["Business Phone", "Business Phone 2", "Home Phone", "Mobile Phone"]
name = "{{Last Name|Company}} {{First Name}}"

# Thunderbird CSV: UTF-8, a composite key, two numbers on two lines of one cell.
[[jobs]]
name = "thunderbird"
vipex_id = "7004"
full_resync_cron = ""
[jobs.source]
type = "csv"
path = "{corpus}/thunderbird.csv"
key = ["Display Name", "Primary Email"]
[jobs.mapping]
phone_fields = ["Work Phone", "Home Phone", "Mobile Number"]
name = "{{Display Name}}"
"""

# Every voice number of the corpus, per job (fax, pager and modem numbers are not voice).
VOICE = {
    "vcards": {
        # outlook2003.vcf: work, home, cell; the company-only card (extension dropped)
        "3619996000",
        "3612223333",
        "36301234567",
        "3615551212",
        # outlook2007.vcf: work, cell (the pager is not synced)
        "3696234567",
        "36205550101",
        # iphone.vcf: folded item1.TEL, iPhone cell, home, a London number
        "36301234568",
        "36205550102",
        "3613334444",
        "442079460958",
        # android.vcf: cell, grouped item1.TEL, the company-only card
        "36701234567",
        "3614445555",
        "3616667777",
        # thunderbird.vcf
        "3617778888",
        "36307778888",
        # windows-utf16-bom.vcf, windows-utf16-nobom.vcf
        "3618889999",
        "36308889999",
        # broken-note.vcf: the card with the broken NOTE (the other card's FN is not UTF-8)
        "3613214321",
        # raw-8bit-latin2.vcf (the modem is not synced)
        "3612468024",
    },
    "google": {
        "36301112222",
        "36201112222",
        "3611112222",  # " ::: " and a second column
        "3612221111",  # company-only
        "3613332222",
        "36303332222",
        "36703332222",  # "/12" extension; "a, b" in one cell
    },
    "outlook": {"3612341111", "36302341111", "3612342222", "3612342223", "3612343333"},
    "thunderbird": {"3614561111", "3614561112", "36304561111", "3614562222"},
}

# (code, where the rejected record is) that each job must list; nothing else is fatal.
REJECTED = {
    "vcards": {
        ("undecodable_value", "vcards/broken-note.vcf card 2 (line 10"),
        ("duplicate_number", "vcards/android.vcf card"),
    },
    "google": {("invalid_phone", "google-contacts.csv line 6")},
    "outlook": set(),
    "thunderbird": set(),
}


@pytest.fixture
def vipex() -> Iterator[RunningEmulator]:
    with serve_empty_vipex(*IDS.values()) as running:
        yield running


@pytest.fixture
def config(vipex: RunningEmulator, tmp_path: Path) -> Path:
    secret = tmp_path / "vipex-password"
    secret.write_text(vipex.password + "\n", encoding="utf-8")
    secret.chmod(0o600)
    path = tmp_path / "vipexsync.toml"
    path.write_text(
        CONFIG.format(
            url=vipex.url,
            username=vipex.username,
            db=tmp_path / "mirror.sqlite3",
            corpus=CORPUS.as_posix(),
        ),
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize("job", list(IDS))
def test_corpus_syncs_every_voice_number_and_lists_every_rejection(
    vipex: RunningEmulator, config: Path, tmp_path: Path, job: str
) -> None:
    rejects = tmp_path / f"{job}-rejects.csv"
    result = cli(config, "sync", "--job", job, "--full-resync", "--rejects-out", str(rejects))

    assert result.returncode == 0, result.stdout + result.stderr  # no file failed as a whole
    landed = {str(e["phonenumber"]) for e in vipex.state.entries(IDS[job])}
    assert landed == VOICE[job]

    with rejects.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert list(reader.fieldnames or ())[:6] == [
        "key",
        "location",
        "display name",
        "field",
        "value",
        "reason",
    ]
    assert all(row["key"] and row["location"] and row["reason"] for row in rows), rows
    fatal = {(row["code"], row["location"]) for row in rows if row["fatal"] == "yes"}
    for code, where in REJECTED[job]:
        assert any(c == code and loc.startswith(where) for c, loc in fatal), (code, where, fatal)
    assert len(fatal) == len(REJECTED[job]), fatal
    for code, where in REJECTED[job]:  # the report and the log name each, with its location
        assert code in result.stdout
        assert where in result.stdout
        assert where in result.stderr


def test_corpus_report_names_key_rules_and_unsynced_numbers(
    vipex: RunningEmulator, config: Path, tmp_path: Path
) -> None:
    plan = tmp_path / "plan.json"
    result = cli(config, "sync", "--job", "vcards", "--dry-run", "--plan-out", str(plan))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Record keys:" in result.stdout
    assert "by digest of FN, N, ORG and numbers (card has no UID)" in result.stdout
    assert "by the configured key" in result.stdout  # thunderbird.vcf has a UID

    rows = json.loads(plan.read_text(encoding="utf-8"))
    rejected = [r for r in rows if r["action"] == "reject"]
    unsynced = {(r["field"], r["value"]) for r in rejected if r["code"] == "number_not_synced"}
    assert unsynced == {
        ("TEL;TYPE=FAX,WORK", "+36 (1) 999-6001"),
        ("TEL;TYPE=PAGER", "+36 96 234 500"),
        ("TEL;TYPE=FAX,WORK", "+36 1 777 0000"),
        ("TEL;TYPE=MODEM", "+36 1 246 8000"),
    }
    assert all(r["location"] for r in rejected)
    assert {r["action"] for r in rows} == {"create", "reject"}


def test_a_bad_file_in_the_folder_costs_that_file_and_deletes_nothing(
    vipex: RunningEmulator, config: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "vcards"
    shutil.copytree(CORPUS / "vcards", folder)
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace(f"{CORPUS.as_posix()}/vcards", folder.as_posix()), "utf-8")
    assert cli(config, "sync", "--job", "vcards", "--full-resync").returncode == 0

    iphone = folder / "iphone.vcf"
    iphone.write_bytes(iphone.read_bytes()[:300])  # cut short mid-card
    (folder / "new.vcf").write_bytes(b"BEGIN:VCARD\nFN:Uj Ember\nTEL:+36 1 999 1234\nEND:VCARD\n")
    result = cli(config, "sync", "--job", "vcards")

    assert result.returncode == 3, result.stdout + result.stderr  # deletions withheld
    assert "unreadable_file" in result.stdout
    assert "vcards/iphone.vcf" in result.stdout
    landed = {str(e["phonenumber"]) for e in vipex.state.entries(IDS["vcards"])}
    assert landed == VOICE["vcards"] | {"3619991234"}  # iPhone's numbers kept, the new one in
