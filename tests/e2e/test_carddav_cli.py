"""`vipexsync check` and `vipexsync sync` as subprocesses, reading a real Radicale."""

from __future__ import annotations

from pathlib import Path

from radicale_server import PASSWORD, RunningRadicale, vcard, write_job_config
from support import run_cli as cli
from support import serve_empty_vipex

VIPEX_ID = "1643897"


def test_check_and_sync_read_the_address_book(radicale: RunningRadicale, tmp_path: Path) -> None:
    book = radicale.make_book()
    radicale.put(book, "a.vcf", vcard("a", "Alfa Anna", "+36 30 111 1111", "+36 1 111 2222"))
    radicale.put(book, "b.vcf", vcard("b", "Béta Béla", "+36 30 222 2222"))
    with serve_empty_vipex(VIPEX_ID) as vipex:
        # The password from $VIPEXSYNC_SOURCE_PASSWORD, not a file.
        config = write_job_config(tmp_path, vipex, book, dav_password=None)
        env = {"VIPEXSYNC_SOURCE_PASSWORD": PASSWORD}

        check = cli(config, "check", env=env)
        assert check.returncode == 0, check.stdout + check.stderr
        assert f"carddav address book {book}: 2 records -> 3 entries" in check.stdout

        sync = cli(config, "sync", env=env)
        assert sync.returncode == 0, sync.stdout + sync.stderr
        assert "create 3" in sync.stdout
        names = sorted(str(e["name"]) for e in vipex.state.entries(VIPEX_ID))
        assert names == ["Alfa Anna", "Alfa Anna", "Béta Béla"]

        # A wrong password: both commands fail, naming the address book, not the password.
        wrong = "Hibás-jelszó-5150"
        for args in (("check",), ("sync", "--full-resync")):
            result = cli(config, *args, env={"VIPEXSYNC_SOURCE_PASSWORD": wrong})
            output = result.stdout + result.stderr
            assert result.returncode == 1, output
            assert f"carddav address book {book}" in output
            assert "HTTP 401" in output
            assert wrong not in output
            assert "Traceback" not in output
        assert len(vipex.state.entries(VIPEX_ID)) == 3  # nothing deleted
