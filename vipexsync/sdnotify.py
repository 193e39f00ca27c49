"""systemd service notification (``sd_notify``) without a dependency.

The protocol is one datagram of ``KEY=value`` lines to the AF_UNIX socket named
by ``$NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace). Outside
systemd the variable is unset and every call is a no-op, so the daemon calls
these unconditionally. Sending never raises: a lost status line must not stop
a sync run.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Talks to the service manager named by ``NOTIFY_SOCKET``, if any."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = _socket_address(env.get("NOTIFY_SOCKET", ""))
        self._watchdog_usec = env.get("WATCHDOG_USEC", "")
        self._watchdog_pid = env.get("WATCHDOG_PID", "")
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """True when systemd (or a test) is listening."""
        return self._address is not None

    def ready(self, status: str | None = None) -> bool:
        """Startup finished: systemd marks a ``Type=notify`` unit active."""
        if status is None:
            return self.notify(READY="1")
        return self.notify(READY="1", STATUS=status)

    def status(self, text: str) -> bool:
        """A one-line status shown by ``systemctl status``."""
        return self.notify(STATUS=text)

    def watchdog(self) -> bool:
        """Proof of life; must come more often than ``WatchdogSec=``."""
        return self.notify(WATCHDOG="1")

    def stopping(self, status: str | None = None) -> bool:
        """Shutdown began, so systemd does not mistake the wait for a hang."""
        if status is None:
            return self.notify(STOPPING="1")
        return self.notify(STOPPING="1", STATUS=status)

    def notify(self, **fields: str) -> bool:
        """Send ``KEY=value`` lines in one datagram; True when it was sent."""
        if self._address is None or not fields:
            return False
        # A newline inside a value would start a new (bogus) assignment.
        message = "".join(
            f"{key}={' '.join(str(value).splitlines())}\n" for key, value in fields.items()
        )
        try:
            with self._lock:
                if self._socket is None:
                    self._socket = socket.socket(
                        socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                    )
                self._socket.sendto(message.encode("utf-8"), self._address)
        except OSError as exc:
            log.debug("systemd notification %r not sent: %s", sorted(fields), exc)
            return False
        return True

    def watchdog_interval(self) -> float | None:
        """``WatchdogSec=`` in seconds if the watchdog watches this process, else None.

        Ping at half of it or more often, as sd_watchdog_enabled(3) advises.
        """
        if self._watchdog_pid:
            try:
                if int(self._watchdog_pid) != os.getpid():
                    return None
            except ValueError:
                return None
        try:
            usec = int(self._watchdog_usec)
        except ValueError:
            return None
        if usec <= 0:
            return None
        return usec / 1_000_000

    def close(self) -> None:
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None


def _socket_address(value: str) -> str | bytes | None:
    """``@name`` is the abstract namespace (a leading NUL byte); only absolute paths else."""
    if value.startswith("@") and len(value) > 1:
        return b"\0" + value[1:].encode("utf-8")
    if value.startswith("/"):
        return value
    if value:
        log.debug("ignoring NOTIFY_SOCKET %r: neither a path nor an abstract name", value)
    return None
