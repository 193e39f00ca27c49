"""Reading the configuration file: finding it, read errors, TOML errors, secrets.

Real files in tmp_path; the environment is passed explicitly, never read.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from support import write_minimal_config
from vipexsync.config import (
    Secret,
    load_config,
    parse_config,
    resolve_default_config_path,
)
from vipexsync.errors import ConfigError

PASSWORD = "Sup3r-Secret-Pa55"
REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "vipexsync.example.toml"


def load_error(path: Path | None, environ: dict[str, str]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=environ)
    assert PASSWORD not in str(caught.value)
    return caught.value


# ---------------------------------------------------------------- the example


def test_the_example_file_parses() -> None:
    config = load_config(EXAMPLE, environ={"VIPEXSYNC_VIPEX_PASSWORD": PASSWORD})
    assert config.path == EXAMPLE
    assert config.vipex.password == Secret(PASSWORD)
    (job,) = config.jobs
    assert job.name == "crm"
    assert job.source.type == "csv"
    assert job.mapping.phone_fields == ("phone", "mobile")
    assert dict(job.mapping.custom_fields) == {"Ügyfélkód": "{id}"}


def commented_source_examples() -> list[str]:
    """The commented-out [jobs.source] blocks at the end of the example file."""
    text = EXAMPLE.read_text(encoding="utf-8")
    blocks: list[str] = []
    current: list[str] | None = None
    for line in text.splitlines():
        if line == "# [jobs.source]":
            current = []
            blocks.append("")
        if current is not None:
            if line == "#" or not line.startswith("#"):
                blocks[-1] = "\n".join(current)
                current = None
                continue
            current.append(line.removeprefix("# ").removeprefix("#"))
            blocks[-1] = "\n".join(current)
    return blocks


def test_the_commented_source_examples_parse(tmp_path: Path) -> None:
    """The other source types, as documented, are valid configuration."""
    (tmp_path / "crm-token").write_text("token\n")
    (tmp_path / "carddav-password").write_text("secret\n")
    (tmp_path / "ca.pem").write_text("not checked by the configuration\n")
    example = EXAMPLE.read_text(encoding="utf-8")
    start = example.index("\n[jobs.source]\n")
    csv_block = example[start : example.index("\n[jobs.mapping]\n")]
    assert 'type = "csv"' in csv_block
    blocks = commented_source_examples()
    assert [re.search(r'type = "(\w+)"', block).group(1) for block in blocks] == [  # type: ignore[union-attr]
        "sql",
        "http",
        "vcard",
        "carddav",
    ]
    for block in blocks:
        block = block.replace("/etc/vipexsync/crm-token", str(tmp_path / "crm-token"))
        block = block.replace("/etc/vipexsync/carddav-password", str(tmp_path / "carddav-password"))
        block = block.replace("/etc/ssl/private-ca.pem", str(tmp_path / "ca.pem"))
        path = tmp_path / "vipexsync.toml"
        path.write_text(example.replace(csv_block, "\n" + block + "\n"))
        path.chmod(0o600)
        config = load_config(path, environ={"VIPEXSYNC_VIPEX_PASSWORD": PASSWORD})
        assert config.jobs[0].source.type in block


# ---------------------------------------------------------------- finding the file


def test_no_file_anywhere_lists_the_three_places(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if Path("/etc/vipexsync/vipexsync.toml").exists():
        pytest.skip("this machine has /etc/vipexsync/vipexsync.toml")
    monkeypatch.chdir(tmp_path)
    assert resolve_default_config_path({}) is None
    message = str(load_error(None, {}))
    assert "$VIPEXSYNC_CONFIG (not set)" in message
    assert f"./vipexsync.toml (in {tmp_path})" in message
    assert "/etc/vipexsync/vipexsync.toml" in message


def test_the_local_file_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_minimal_config(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert resolve_default_config_path({}) == path
    config = load_config(environ={"VIPEXSYNC_VIPEX_PASSWORD": PASSWORD})
    assert config.path == path
    assert config.jobs[0].source.path == tmp_path / "crm.csv"  # type: ignore[union-attr]


def test_the_environment_variable_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_minimal_config(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    path = write_minimal_config(elsewhere)
    monkeypatch.chdir(tmp_path)
    env = {"VIPEXSYNC_CONFIG": str(path), "VIPEXSYNC_VIPEX_PASSWORD": PASSWORD}
    assert resolve_default_config_path(env) == path
    assert load_config(environ=env).path == path


def test_the_environment_variable_naming_a_missing_file_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_minimal_config(tmp_path)  # ./vipexsync.toml exists, but is not silently used instead
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "typo.toml"
    message = str(load_error(None, {"VIPEXSYNC_CONFIG": str(missing)}))
    assert f"configuration file {missing} does not exist" in message


# ---------------------------------------------------------------- reading errors


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    message = str(load_error(missing, {}))
    assert f"configuration file {missing} does not exist" in message


def test_a_directory_is_not_a_file(tmp_path: Path) -> None:
    message = str(load_error(tmp_path, {}))
    assert f"{tmp_path} is a directory" in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a mode-000 file anyway; see integration")
def test_unreadable_file(tmp_path: Path) -> None:
    path = write_minimal_config(tmp_path, mode=0o000)
    message = str(load_error(path, {}))
    assert "permission denied" in message


def test_invalid_toml_names_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[vipex]\nurl = "https://x"\nusername = api_user\n')
    message = str(load_error(path, {}))
    assert f"configuration file {path} is not valid TOML" in message
    assert "line 3, column 12" in message


def test_duplicate_keys_are_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "dup.toml"
    path.write_text('[vipex]\nurl = "a"\nurl = "b"\n')
    assert "line 3" in str(load_error(path, {}))


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin.toml"
    path.write_bytes('[vipex]\nusername = "ügyfél"\n'.encode("cp1250"))
    message = str(load_error(path, {}))
    assert "is not valid UTF-8" in message
    assert "line 2" in message


def test_a_byte_order_mark_is_tolerated(tmp_path: Path) -> None:
    path = write_minimal_config(tmp_path)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert load_config(path, environ={"VIPEXSYNC_VIPEX_PASSWORD": PASSWORD}).jobs


# ---------------------------------------------------------------- password sources


def test_no_password_lists_the_four_ways(tmp_path: Path) -> None:
    path = write_minimal_config(tmp_path)
    error = load_error(path, {"CREDENTIALS_DIRECTORY": str(tmp_path / "no-such-dir")})
    (problem,) = error.problems
    assert problem.startswith("vipex.password: no VIPeX password found")
    for way in ("password_file", "$VIPEXSYNC_VIPEX_PASSWORD", "LoadCredential=", "chmod 600"):
        assert way in problem


def test_inline_password_refused_in_a_readable_file(tmp_path: Path) -> None:
    path = write_minimal_config(tmp_path, f'password = "{PASSWORD}"', mode=0o644)
    error = load_error(path, {"VIPEXSYNC_VIPEX_PASSWORD": "other"})
    (problem,) = error.problems
    assert problem.startswith("vipex.password: an inline password is accepted only")
    assert "mode 0644" in problem
    assert f"chmod 600 {path}" in problem


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660])
def test_inline_password_refused_for_group_or_others(tmp_path: Path, mode: int) -> None:
    path = write_minimal_config(tmp_path, f'password = "{PASSWORD}"', mode=mode)
    load_error(path, {})


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_inline_password_accepted_in_a_private_file(tmp_path: Path, mode: int) -> None:
    path = write_minimal_config(tmp_path, f'password = "{PASSWORD}"', mode=mode)
    config = load_config(path, environ={"VIPEXSYNC_VIPEX_PASSWORD": "env-loses"})
    assert config.vipex.password == Secret(PASSWORD)
    assert PASSWORD not in repr(config)


def test_inline_password_in_parsed_data_without_a_file(tmp_path: Path) -> None:
    data = {
        "vipex": {"url": "https://x.example", "username": "u", "password": PASSWORD},
        "jobs": [
            {
                "name": "a",
                "vipex_id": "1",
                "source": {"type": "vcard", "path": "c"},
                "mapping": {"phone_fields": ["TEL"], "name": "{FN}"},
            }
        ],
    }
    config = parse_config(data, base_dir=tmp_path, environ={})
    assert config.vipex.password == Secret(PASSWORD)


def test_password_file_comes_first(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(PASSWORD + "\n\n")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "vipex-password").write_text("from-credential")
    path = write_minimal_config(tmp_path, 'password_file = "pw"', mode=0o644)
    env = {"VIPEXSYNC_VIPEX_PASSWORD": "from-env", "CREDENTIALS_DIRECTORY": str(creds)}
    # only one trailing newline is dropped
    assert load_config(path, environ=env).vipex.password == Secret(PASSWORD + "\n")


def test_environment_comes_second(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "vipex-password").write_text("from-credential")
    path = write_minimal_config(tmp_path)
    env = {"VIPEXSYNC_VIPEX_PASSWORD": "from-env", "CREDENTIALS_DIRECTORY": str(creds)}
    assert load_config(path, environ=env).vipex.password == Secret("from-env")


def test_systemd_credential_comes_third(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "vipex-password").write_text("from-credential\n")
    path = write_minimal_config(tmp_path)
    env = {"VIPEXSYNC_VIPEX_PASSWORD": "", "CREDENTIALS_DIRECTORY": str(creds)}
    assert load_config(path, environ=env).vipex.password == Secret("from-credential")


@pytest.mark.parametrize(
    ("content", "expected"),
    [(None, "does not exist"), (b"", "is empty"), (b"\n", "is empty"), (b"\xff\xfe", "UTF-8")],
)
def test_bad_password_file(tmp_path: Path, content: bytes | None, expected: str) -> None:
    secret = tmp_path / "secrets" / "vipex-password"
    secret.parent.mkdir()
    if content is not None:
        secret.write_bytes(content)
    path = write_minimal_config(tmp_path, 'password_file = "secrets/vipex-password"')
    error = load_error(path, {"VIPEXSYNC_VIPEX_PASSWORD": "not-a-fallback"})
    (problem,) = error.problems
    assert problem.startswith(f"vipex.password_file: secret file {secret} ")
    assert expected in problem


def test_password_file_that_is_a_directory(tmp_path: Path) -> None:
    path = write_minimal_config(tmp_path, 'password_file = "."')
    (problem,) = load_error(path, {}).problems
    assert "is a directory" in problem


def test_unreadable_systemd_credential(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    (creds / "vipex-password").mkdir(parents=True)
    path = write_minimal_config(tmp_path)
    (problem,) = load_error(path, {"CREDENTIALS_DIRECTORY": str(creds)}).problems
    assert problem.startswith("vipex.password: systemd credential: secret file")


def test_password_and_password_file_together(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("x")
    path = write_minimal_config(tmp_path, f'password = "{PASSWORD}"\npassword_file = "pw"')
    (problem,) = load_error(path, {}).problems
    assert "set either password or password_file in [vipex], not both" in problem


def test_no_message_ever_contains_a_secret(tmp_path: Path) -> None:
    """A config with many problems and secrets everywhere: none leaks into the error."""
    (tmp_path / "pw").write_text(PASSWORD)
    path = tmp_path / "vipexsync.toml"
    path.write_text(
        f"""
[vipex]
url = "https://user:{PASSWORD}@cloud.example.hu"
username = "{PASSWORD}x"
password_file = "pw"
concurrency = "{PASSWORD}"
timeout_seconds = "{PASSWORD}"

[database]
url = "mysql://u:{PASSWORD}@db/x"

[[jobs]]
name = "crm"
vipex_id = "1"
[jobs.source]
type = "http"
url = "https://crm.example/api"
key = "id"
bearer_token = "{PASSWORD}"
username = "u"
password = "{PASSWORD}"
page_size = "{PASSWORD}"
[jobs.mapping]
phone_fields = ["phone"]
name = "{{name}}"
"""
    )
    path.chmod(0o644)
    error = load_error(path, {"VIPEXSYNC_VIPEX_PASSWORD": PASSWORD})
    assert len(error.problems) >= 6
    assert all(PASSWORD not in problem for problem in error.problems)
