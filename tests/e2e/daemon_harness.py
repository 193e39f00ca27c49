"""Running `vipexsync run` as a subprocess in tests: start, scrape, signal, read its logs.

Waiting is by polling a condition with a generous deadline (a failure bound,
never a speed assertion). The daemon's stdout/stderr go to files, not pipes,
so a chatty daemon can never block on a full pipe.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TypeVar

import requests
from prometheus_client.parser import text_string_to_metric_families

from support import cli_environ

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(check: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def daemon_config(
    config: Path,
    *,
    port: int,
    interval: int = 10,
    log_format: str = "text",
    database: str | None = None,
) -> Path:
    """Turn a `job_files` config into a daemon's: metrics on ``port``, a short interval."""
    text = config.read_text(encoding="utf-8")
    text = text.replace('listen = ""', f'listen = "127.0.0.1:{port}"')
    text = text.replace("interval_seconds = 60", f"interval_seconds = {interval}")
    text = text.replace('level = "INFO"', f'level = "INFO"\nformat = "{log_format}"')
    if database is not None:
        start = text.index('[database]\nurl = "') + len('[database]\nurl = "')
        end = text.index('"', start)
        text = text[:start] + database + text[end:]
    config.write_text(text, encoding="utf-8")
    return config


class NotifySocket:
    """A bound AF_UNIX datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.messages: list[str] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append(data.decode("utf-8"))

    def fields(self) -> list[dict[str, str]]:
        """Each datagram as its KEY=value assignments."""
        return [
            dict(line.split("=", 1) for line in message.splitlines() if "=" in line)
            for message in list(self.messages)
        ]

    def has(self, key: str, value: str | None = None) -> bool:
        return any(key in f and (value is None or value in f[key]) for f in self.fields())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()


class Daemon:
    """One `python -m vipexsync --config C run` process."""

    def __init__(self, config: Path, port: int, *, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.port = port
        self.stdout_path = config.with_suffix(".stdout")
        self.stderr_path = config.with_suffix(".stderr")
        environ = cli_environ()
        environ.pop("NOTIFY_SOCKET", None)
        environ.pop("WATCHDOG_USEC", None)
        environ.update(env or {})
        self._out: IO[bytes] = self.stdout_path.open("wb")
        self._err: IO[bytes] = self.stderr_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "vipexsync", "--config", str(config), "run"],
            stdout=self._out,
            stderr=self._err,
            env=environ,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def get(self, path: str) -> requests.Response | None:
        try:
            return requests.get(self.url + path, timeout=5)
        except requests.RequestException:
            return None

    def samples(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
        """Every sample of /metrics, or None while the endpoint does not answer."""
        answer = self.get("/metrics")
        if answer is None or answer.status_code != 200:
            return None
        found: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(answer.text):
            for sample in family.samples:
                found[(sample.name, frozenset(sample.labels.items()))] = sample.value
        return found

    def value(self, name: str, **labels: str) -> float | None:
        samples = self.samples()
        if samples is None:
            return None
        return samples.get((name, frozenset(labels.items())))

    def runs(self, job: str, outcome: str, mode: str = "incremental") -> float:
        value = self.value("vipexsync_runs_total", sync_job=job, mode=mode, outcome=outcome)
        return value or 0.0

    def send(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(
                f"the daemon did not exit within {timeout:.0f} s; stderr:\n{self.stderr()[-3000:]}"
            ) from exc

    def close(self) -> None:
        """Kill it if still running (test cleanup), and close the log files."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._out.close()
        self._err.close()
