"""The mutation check: re-plant each known defect and show the state machine catches it.

Each ``NN-name.patch`` beside this file re-plants one defect of issue 9 into
the engine. For each patch, in turn, this script copies the tree (the
package, the tests and pyproject.toml) into a temporary folder, applies the
patch there with ``git apply`` (never to the worktree), and runs the
hypothesis state machine against the copy with ``PYTHONPATH`` pointing at it,
so the in-process runs and the forked sync process both use the mutant. The
machine must FAIL on every mutant; a mutant it misses means the model is too
weak.

Usage (from the repository root): ``.venv/bin/python tests/mutants/run.py
[NN ...]`` or ``make mutants``. Exit status 0 when every mutant was caught.
The profile is ``mutant``: the ``ci`` examples without shrinking, stopping at
the first failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
COPIED = ("vipexsync", "tests", "pyproject.toml")
MACHINE = "tests/reliability/test_state_machine.py"
# A failure of the machine itself, not a broken copy: hypothesis shows the steps.
TIME_LIMIT = 900  # seconds per mutant; a machine that needs longer is too weak anyway
CAUGHT = re.compile(r"Falsifying example|state\.teardown\(\)|AssertionError|Failed: DID NOT RAISE")


@dataclass(frozen=True)
class Result:
    patch: str
    caught: bool
    seconds: float
    detail: str


def copy_tree(into: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".hypothesis", "mutants")
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, into / name, ignore=ignore)
        else:
            shutil.copy2(source, into / name)


def first_line(text: str, pattern: str) -> str:
    for line in text.splitlines():
        if re.search(pattern, line):
            return line.strip()[:160]
    return ""


def run_one(patch: Path) -> Result:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"vipexsync-mutant-{patch.stem}-") as folder:
        copy = Path(folder)
        copy_tree(copy)
        applied = subprocess.run(
            ["git", "apply", str(patch)],
            cwd=copy,
            capture_output=True,
            text=True,
            check=False,
        )
        if applied.returncode != 0:
            detail = f"patch does not apply: {applied.stderr.strip()[:200]}"
            return Result(patch.name, False, time.monotonic() - started, detail)
        env = {k: v for k, v in os.environ.items() if not k.startswith("VIPEXSYNC_")}
        env["PYTHONPATH"] = os.pathsep.join([str(copy), str(copy / "tests")])
        env["VIPEXSYNC_RELIABILITY_PROFILE"] = "mutant"
        which = subprocess.run(
            [sys.executable, "-c", "import vipexsync; print(vipexsync.__file__)"],
            cwd=copy,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if not which.startswith(str(copy)):
            raise SystemExit(f"the mutant copy is not the package imported: {which}")
        try:
            test = run_machine(copy, env)
        except subprocess.TimeoutExpired:
            detail = f"not caught within {TIME_LIMIT} s"
            return Result(patch.name, False, time.monotonic() - started, detail)
        output = test.stdout + test.stderr
        seconds = time.monotonic() - started
        caught = test.returncode == 1 and CAUGHT.search(output) is not None
        if caught:
            detail = first_line(output, r"^E\s+(AssertionError|Failed)") or first_line(
                output, r"AssertionError"
            )
        elif test.returncode == 0:
            detail = "the state machine passed"
        else:
            detail = f"pytest exit {test.returncode}: " + output.strip().splitlines()[-1][:160]
        return Result(patch.name, caught, seconds, detail)


def run_machine(copy: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The state machine on the copy; raises TimeoutExpired after TIME_LIMIT."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            MACHINE,
            "-x",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:logging",
            "-o",
            "timeout=0",
        ],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=TIME_LIMIT,
    )


def main(argv: list[str]) -> int:
    patches = sorted(HERE.glob("*.patch"))
    if argv:
        patches = [p for p in patches if any(p.name.startswith(a) for a in argv)]
    if not patches:
        print("no mutant patches found", file=sys.stderr)
        return 2
    results = []
    for patch in patches:
        result = run_one(patch)
        results.append(result)
        verdict = "caught" if result.caught else "MISSED"
        print(f"{result.patch:40s} {verdict:7s} {result.seconds:7.1f} s  {result.detail}")
        sys.stdout.flush()
    total = sum(r.seconds for r in results)
    caught = sum(r.caught for r in results)
    print(f"\n{caught} of {len(results)} mutants caught in {total:.0f} s")
    return 0 if caught == len(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
