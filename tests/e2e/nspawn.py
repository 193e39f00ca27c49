"""A throwaway Debian machine booted under ``systemd-nspawn --boot``, for the unit tests.

The Debian root (debootstrap from Debian's archive) is built once and cached
in ``/var/cache/vipexsync-tests/debian-root``; every boot puts an overlay on it
(or, where overlayfs is refused, a copy), so each run starts from the same
clean root and leaves the cache untouched. The container has systemd as PID 1,
its own network namespace with nothing but loopback (the VIPeX emulator runs
inside it too), and is driven with ``nsenter`` into its namespaces: the
host's PID 1 need not be systemd, so machinectl and ``systemd-run --machine``
are not relied on.

Whatever the machine cannot do (not root, a tool missing, no route to the
archive, a container that does not boot) raises :class:`Unavailable`, which
the tests turn into a skip naming the reason. Everything after a successful
boot is the project's own business and fails the tests.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

CACHE = Path(os.environ.get("VIPEXSYNC_NSPAWN_CACHE", "/var/cache/vipexsync-tests"))
SUITE = "bookworm"
# systemd-sysv gives /sbin/init; dbus is what systemctl and systemd-run talk
# through besides the private socket; python3-venv brings ensurepip, so the
# venv is made without the network.
PACKAGES = ("systemd", "systemd-sysv", "dbus", "python3", "python3-venv")
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PYTHON_TAG = "3.11"  # bookworm's python3


class Unavailable(Exception):
    """This machine cannot run the container; the tests skip with this reason."""


def require_host() -> None:
    if os.geteuid() != 0:
        raise Unavailable("systemd-nspawn needs root")
    for tool, package in (
        ("systemd-nspawn", "systemd-container"),
        ("debootstrap", "debootstrap"),
        ("nsenter", "util-linux"),
    ):
        if shutil.which(tool) is None:
            raise Unavailable(f"{tool} is not installed (Debian package {package})")


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.splitlines()[-lines:])


def cached_root() -> Path:
    """The Debian root with PACKAGES, bootstrapped on first use (minutes) and then reused."""
    root = CACHE / "debian-root"
    stamp = root / ".vipexsync-root"
    wanted = f"{SUITE} {' '.join(PACKAGES)}\n"
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / "debian-root.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder at a time; the others wait and reuse
        if stamp.is_file() and stamp.read_text() == wanted:
            return root
        building = CACHE / "debian-root.new"
        shutil.rmtree(building, ignore_errors=True)
        argv = [
            "debootstrap",
            "--variant=minbase",
            f"--include={','.join(PACKAGES)}",
            SUITE,
            str(building),
        ]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=1800, check=False)
        except subprocess.TimeoutExpired as exc:
            raise Unavailable(f"debootstrap {SUITE} did not finish in 30 min") from exc
        if done.returncode != 0:
            shutil.rmtree(building, ignore_errors=True)
            raise Unavailable(
                f"debootstrap {SUITE} failed (exit {done.returncode}); no Debian archive?\n"
                + _tail(done.stdout + done.stderr)
            )
        (building / stamp.name).write_text(wanted)
        shutil.rmtree(root, ignore_errors=True)
        building.rename(root)
        return root


# What a clean checkout would not hold: a stale build/ would leak into the wheel.
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"
)


def _project_wheel(project: Path, into: Path) -> Path:
    """$VIPEXSYNC_TEST_WHEEL (the wheel CI built and smoke-tested), else one built now."""
    given = os.environ.get("VIPEXSYNC_TEST_WHEEL")
    if given:
        return Path(shutil.copy2(given, into))
    with tempfile.TemporaryDirectory(prefix="vipexsync-src-") as folder:
        source = Path(folder) / "src"
        shutil.copytree(project, source, ignore=_NOT_SOURCE)
        build = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(into), str(source)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    # The project's own wheel must build: that is the product, never a reason to skip.
    assert build.returncode == 0, "building the wheel failed:\n" + _tail(build.stderr)
    wheels = sorted(into.glob("vipexsync-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def build_wheelhouse(project: Path, into: Path, constraints: Path) -> Path:
    """The project's wheel and, pinned by ``constraints``, its dependencies' wheels.

    The dependencies are downloaded for the container's Python and machine, so
    pip inside the container installs from this folder alone (no network there).
    """
    into.mkdir(parents=True, exist_ok=True)
    wheel = _project_wheel(project, into)
    shutil.copy2(constraints, into / "constraints.txt")
    machine = platform.machine()
    platforms = [f"manylinux{tag}_{machine}" for tag in ("2014", "_2_17", "_2_28")]
    deps = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "-d",
            str(into),
            "-c",
            str(constraints),
            "--only-binary=:all:",
            "--python-version",
            PYTHON_TAG,
            "--implementation",
            "cp",
            *(arg for p in platforms for arg in ("--platform", p)),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if deps.returncode != 0:
        raise Unavailable("downloading the dependencies' wheels failed:\n" + _tail(deps.stderr))
    return wheel


class Container:
    """One booted container; ``sh`` runs a shell command inside it as root."""

    def __init__(self, lower: Path, workdir: Path, name: str) -> None:
        self.lower = lower
        self.workdir = workdir
        self.name = name
        self.root = workdir / "root"
        self.console = workdir / "console.log"
        self._overlay = False
        self._nspawn: subprocess.Popen[bytes] | None = None
        self.leader = 0

    # -- the root --------------------------------------------------------------

    def _prepare_root(self) -> None:
        upper, work = self.workdir / "upper", self.workdir / "work"
        for folder in (self.root, upper, work):
            folder.mkdir(parents=True)
        options = f"lowerdir={self.lower},upperdir={upper},workdir={work}"
        mounted = subprocess.run(
            ["mount", "-t", "overlay", "overlay", "-o", options, str(self.root)],
            capture_output=True,
            text=True,
            check=False,
        )
        if mounted.returncode == 0:
            self._overlay = True
            return
        # No overlayfs here (a nested or unusual file system): a full copy, slower.
        self.root.rmdir()
        subprocess.run(["cp", "-a", str(self.lower), str(self.root)], check=True, timeout=900)

    # -- boot and shutdown -----------------------------------------------------

    def boot(self, timeout: float = 120.0) -> None:
        self._prepare_root()
        argv = [
            "systemd-nspawn",
            f"--directory={self.root}",
            f"--machine={self.name}",
            "--boot",
            # No machined on the host (its PID 1 may not be systemd): stay in our own
            # cgroup and register nowhere.
            "--register=no",
            "--keep-unit",
            # Loopback only: the emulator runs inside; nothing leaves the machine.
            "--private-network",
            "--console=pipe",
        ]
        with self.console.open("wb") as console:
            self._nspawn = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while not self.leader:
            if self._nspawn.poll() is not None:
                raise Unavailable(self._boot_failure("systemd-nspawn exited"))
            self.leader = self._find_leader()
            if time.monotonic() > deadline:
                raise Unavailable(self._boot_failure("no systemd appeared in the container"))
            time.sleep(0.2)
        while True:
            state = self.sh("systemctl is-system-running", check=False, timeout=30).stdout.strip()
            if state in ("running", "degraded"):
                break
            if self._nspawn.poll() is not None:
                raise Unavailable(self._boot_failure("the container stopped while booting"))
            if time.monotonic() > deadline:
                raise Unavailable(self._boot_failure(f"the container stayed {state!r}"))
            time.sleep(0.5)
        if state == "degraded":
            failed = self.sh("systemctl --failed --no-legend --plain", check=False).stdout
            raise Unavailable(f"the container booted degraded; failed units:\n{failed}")

    def _find_leader(self) -> int:
        assert self._nspawn is not None
        # nspawn's child is the container's PID 1 once it has exec'd systemd.
        children = Path(f"/proc/{self._nspawn.pid}/task/{self._nspawn.pid}/children")
        with contextlib.suppress(OSError):
            for pid in children.read_text().split():
                comm = Path(f"/proc/{pid}/comm").read_text().strip()
                if comm == "systemd":
                    return int(pid)
        return 0

    def _boot_failure(self, what: str) -> str:
        log = self.console.read_text(errors="replace") if self.console.exists() else ""
        return f"the container did not boot ({what}):\n{_tail(log)}"

    def shutdown(self) -> None:
        if self._nspawn is not None and self._nspawn.poll() is None:
            # nspawn passes SIGTERM on to the container's systemd as a shutdown request.
            self._nspawn.send_signal(signal.SIGTERM)
            try:
                self._nspawn.wait(timeout=90)
            except subprocess.TimeoutExpired:
                self._nspawn.kill()
                self._nspawn.wait(timeout=30)
        if self._overlay:
            subprocess.run(["umount", str(self.root)], check=False)
            self._overlay = False
        shutil.rmtree(self.workdir, ignore_errors=True)

    # -- inside ----------------------------------------------------------------

    def sh(
        self, command: str, *, check: bool = True, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """Run ``/bin/sh -c command`` in all of the container's namespaces, as its root."""
        argv = [
            "nsenter",
            f"--target={self.leader}",
            "--all",
            "--",
            "/usr/bin/env",
            "-i",
            f"PATH={CONTAINER_PATH}",
            "LANG=C.UTF-8",
            "SYSTEMD_PAGER=",
            "SYSTEMD_COLORS=0",
            "/bin/sh",
            "-c",
            command,
        ]
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"in the container, `{command}` exited {done.returncode}:\n"
                f"{done.stdout}{done.stderr}"
            )
        return done

    def path(self, inside: str) -> Path:
        """Where a path of the container is on the host (for writing files into it)."""
        return self.root / inside.lstrip("/")


@contextlib.contextmanager
def booted(name: str = "vipexsync-test") -> Iterator[Container]:
    """A freshly booted container on the cached root, torn down afterwards."""
    require_host()
    root = cached_root()
    workdir = Path(tempfile.mkdtemp(prefix="vipexsync-nspawn-"))
    container = Container(root, workdir, name)
    try:
        container.boot()
        yield container
    finally:
        container.shutdown()
