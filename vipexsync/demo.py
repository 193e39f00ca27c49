"""``vipexsync demo``: the whole flow on this machine, with no network and no setup.

It starts the bundled emulator on a free loopback port with a subscription
that has custom fields and a few hand-made entries, copies the sample CRM
export (a Hungarian Excel CSV: ``;``-separated, Windows-1250) into a temporary
folder, writes a configuration there, and then:

1. runs a full resync and prints its report;
2. runs again, to show that nothing changed means no writes;
3. edits one CRM row and runs again, to show the edit flowing through.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from importlib import resources
from pathlib import Path

from vipexsync.config import load_config
from vipexsync.emulator.server import RunningEmulator, serve_in_thread
from vipexsync.emulator.state import EmulatorState
from vipexsync.logsetup import configure_logging
from vipexsync.runtime import Runtime
from vipexsync.sync.model import Mode
from vipexsync.sync.report import EXIT_OK, RunReport
from vipexsync.sync.runner import RunOptions

VIPEX_ID = "1643897"
SAMPLE = "crm-export.csv"

CONFIG_TEMPLATE = """\
# Written by `vipexsync demo`; `vipexsync init` writes a starter showing every key.
[vipex]
url = "{url}"
username = "{username}"
password_file = "vipex-password"
allow_http = true          # the emulator listens on loopback without TLS
concurrency = 4

[database]
url = "sqlite:///{folder}/mirror.sqlite3"

[metrics]
listen = ""

[logging]
level = "ERROR"            # the reports below say everything the warnings would

[[jobs]]
name = "crm"
vipex_id = "{vipex_id}"
default_region = "HU"
ownership_tag = "crm-sync"
delete = "owned"
max_delete_ratio = 0.5

[jobs.source]
type = "csv"
path = "crm-export.csv"
encoding = "cp1250"        # a Hungarian Excel export
delimiter = ";"
key = "Azonosító"

[jobs.mapping]
phone_fields = ["Telefon", "Mobil"]
name = "{{Vezetéknév}} {{Keresztnév}}"
comment = "{{Cég}}"
tags = ["{{Szegmens}}"]

[jobs.mapping.custom_fields]
"Ügyféltípus" = "{{Ügyféltípus}}"
"Irányítószám" = "{{Irányítószám}}"
"Ügyfélkód" = "CRM-{{Azonosító}}"
"""


def demo_state() -> EmulatorState:
    """A subscription with custom fields, a hand-made entry with a CRM number, and a foreign one."""
    state = EmulatorState()
    state.add_subscription(VIPEX_ID)
    state.add_custom_field(
        VIPEX_ID, 1, "Ügyféltípus", "menu", [(1, "Kiemelt"), (2, "Normál"), (3, "Új")]
    )
    state.add_custom_field(VIPEX_ID, 2, "Irányítószám", "number_sequence")
    state.add_custom_field(VIPEX_ID, 3, "Ügyfélkód", "text")
    state.add_custom_field(VIPEX_ID, 4, "Megjegyzés a recepciónak", "text")
    # Typed in by hand at the PBX: the CRM has this number too, so the sync adopts it.
    state.put_entry(VIPEX_ID, "3612223344", "Tóth G. (kézzel)", ["kézi"], "régi bejegyzés")
    # Nobody's CRM knows these; the sync must never touch them.
    state.put_entry(
        VIPEX_ID,
        "36301112233",
        "Pizzéria a sarkon",
        ["ebéd"],
        "",
        {4: "péntekenként"},
    )
    state.put_entry(VIPEX_ID, "3619996001", "Opennetworks ügyelet", ["szolgáltató"], "")
    return state


def sample_csv() -> bytes:
    """The sample CRM export shipped in the package (vipexsync/demo_data)."""
    return resources.files("vipexsync.demo_data").joinpath(SAMPLE).read_bytes()


def _edit_crm(path: Path) -> str:
    """Change one contact's company name, as a CRM user would."""
    text = path.read_bytes().decode("cp1250")
    old, new = "Nagy Gépészet Kft.", "Nagy Gépészet és Szerviz Kft."
    path.write_bytes(text.replace(old, new).encode("cp1250"))
    return f"record 1002: company {old!r} -> {new!r}"


def _show_phonebook(emulator: RunningEmulator) -> None:
    rows = emulator.state.entries(VIPEX_ID)
    print(f"VIPeX phonebook of subscription {VIPEX_ID} now holds {len(rows)} entries:")
    for row in rows:
        tags = ",".join(str(t) for t in row["tags"])  # type: ignore[attr-defined]
        print(f"  {row['phonenumber']:<14} {row['name']!s:<28} [{tags}] {row['comment']}")


def _step(title: str) -> None:
    print()
    print(f"### {title}")
    print()


def _run(runtime: Runtime, mode: Mode) -> RunReport:
    job = runtime.config.jobs[0]
    report = runtime.run_job(job, RunOptions(mode=mode))
    print(report.as_text())
    return report


def run_demo(*, keep: bool = False) -> int:
    folder = Path(tempfile.mkdtemp(prefix="vipexsync-demo-"))
    try:
        (folder / SAMPLE).write_bytes(sample_csv())
        with serve_in_thread(demo_state(), vipex_id=VIPEX_ID) as emulator:
            password_file = folder / "vipex-password"
            password_file.write_text(emulator.password + "\n", encoding="utf-8")
            password_file.chmod(0o600)
            config_path = folder / "vipexsync.toml"
            config_path.write_text(
                CONFIG_TEMPLATE.format(
                    url=emulator.url,
                    username=emulator.username,
                    folder=folder.as_posix(),
                    vipex_id=VIPEX_ID,
                ),
                encoding="utf-8",
            )
            config = load_config(config_path)
            configure_logging(config.logging)
            print(f"Emulator: {emulator.url} (subscription {VIPEX_ID})")
            print(f"Working folder: {folder}")
            print(f"CRM export: {folder / SAMPLE} (Windows-1250, ';'-separated)")
            with Runtime(config, stop=threading.Event()) as runtime:
                _step("1. Full resync: create, adopt the hand-made entry, report bad rows")
                _run(runtime, Mode.FULL)
                _show_phonebook(emulator)

                _step("2. Incremental run with no CRM change: no writes")
                before = emulator.app.request_counts()
                _run(runtime, Mode.INCREMENTAL)
                after = emulator.app.request_counts()
                writes = sum(
                    after.get(a, 0) - before.get(a, 0)
                    for a in ("set_phonebook_entry", "del_phonebook_entry")
                )
                print(f"VIPeX writes in this run: {writes}")

                _step("3. A CRM edit flows through")
                print("Edited", _edit_crm(folder / SAMPLE))
                _run(runtime, Mode.INCREMENTAL)
                entry = emulator.state.entry(VIPEX_ID, "3619996000")
                if entry is not None:
                    print(f"VIPeX now shows 3619996000 as {entry['name']} — {entry['comment']}")
        print()
        print("Done. Next: `vipexsync init --source csv` (or sql, http, ...) writes a starter")
        print("configuration; fill it in, run `vipexsync check`, then `vipexsync sync --dry-run`.")
        return EXIT_OK
    finally:
        if keep:
            print(f"Kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
