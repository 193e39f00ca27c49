"""Unreadable files, for real.

Root reads any file, so when the tests run as root the reader is a subprocess
started through ``setpriv`` without the two capabilities that let root ignore
file permissions (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH); it stays root, so it
can still run the interpreter, but a mode-000 file is closed to it. Not root:
the subprocess simply runs as us.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support import write_minimal_config

PASSWORD_FILE = 'password_file = "vipex-password"'

READER = """
import sys
from pathlib import Path
from vipexsync.config import load_config
from vipexsync.errors import ConfigError
try:
    load_config(Path(sys.argv[1]), environ={})
except ConfigError as exc:
    print(exc)
    sys.exit(2)
print("loaded")
"""


def read_without_privilege(path: Path) -> subprocess.CompletedProcess[str]:
    """Run load_config(path) in a subprocess that file permissions apply to."""
    command = [sys.executable, "-c", READER, str(path)]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv (util-linux) to drop CAP_DAC_*")
        drop = "-dac_override,-dac_read_search"
        command = [setpriv, "--bounding-set", drop, "--inh-caps", drop, *command]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def test_unreadable_config_file(tmp_path: Path) -> None:
    path = write_minimal_config(tmp_path, PASSWORD_FILE, mode=0o000)
    result = read_without_privilege(path)
    assert result.returncode == 2, result.stderr
    assert f"cannot read configuration file {path}: permission denied" in result.stdout
    assert "Traceback" not in result.stderr


def test_unreadable_password_file(tmp_path: Path) -> None:
    path = write_minimal_config(tmp_path, PASSWORD_FILE, mode=0o644)
    secret = tmp_path / "vipex-password"
    secret.write_text("s3cret\n")
    secret.chmod(0o000)
    result = read_without_privilege(path)
    assert result.returncode == 2, result.stderr
    assert f"vipex.password_file: cannot read secret file {secret}: permission denied" in (
        result.stdout
    )
    assert "s3cret" not in result.stdout


def test_readable_files_load_for_the_same_reader(tmp_path: Path) -> None:
    """The control: the same reader succeeds once the files are readable."""
    path = write_minimal_config(tmp_path, PASSWORD_FILE, mode=0o644)
    secret = tmp_path / "vipex-password"
    secret.write_text("s3cret\n")
    secret.chmod(0o644)
    result = read_without_privilege(path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "loaded"
