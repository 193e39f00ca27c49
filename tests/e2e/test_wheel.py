"""The wheel is the product: everything the source tree holds must be in it.

Packages are found automatically (``[tool.setuptools.packages.find]``), which
only sees folders with an ``__init__.py``; the first test makes a folder of
modules without one fail here rather than vanish from the wheel. The second
builds the wheel (or takes the one CI built, ``$VIPEXSYNC_TEST_WHEEL``) and
checks it holds every file of the package, data files (package-data) too.
CI then installs that wheel into a fresh venv and runs ``vipexsync demo`` and
``vipexsync db upgrade`` from it (.ci/wheel-smoke).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "vipexsync"
COPY_IGNORE = (
    ".git",
    ".venv",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
)


def source_files() -> set[str]:
    """Every file of the package in the checkout: modules and data alike."""
    return {
        path.relative_to(ROOT).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and path.suffix != ".pyc" and "__pycache__" not in path.parts
    }


def test_every_folder_of_modules_is_a_package() -> None:
    folders = {Path(name).parent for name in source_files() if name.endswith(".py")}
    missing = sorted(str(f) for f in folders if not (ROOT / f / "__init__.py").is_file())
    assert missing == [], f"add an __init__.py, or the wheel leaves these out: {missing}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    given = os.environ.get("VIPEXSYNC_TEST_WHEEL")
    if given:
        return Path(given)
    # From a clean copy: setuptools reuses a stale build/ folder of the checkout.
    source = tmp_path_factory.mktemp("source") / "vipexsync"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*COPY_IGNORE))
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    (built,) = out.glob("vipexsync-*.whl")
    return built


@pytest.mark.slow
def test_the_wheel_ships_every_source_file_the_license_and_the_entry_point(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (dist_info,) = {n.split("/")[0] for n in names if ".dist-info/" in n}
        metadata = Parser().parsestr(archive.read(f"{dist_info}/METADATA").decode())
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
    missing = sorted(source_files() - names)
    assert missing == [], f"left out of the wheel: {missing}"
    assert not [n for n in names if n.startswith(("tests/", "bench/", "deploy/"))]
    assert metadata["License-Expression"] == "MIT"
    assert f"{dist_info}/licenses/LICENSE" in names
    assert "vipexsync = vipexsync.cli:main" in entry_points
