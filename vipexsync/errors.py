"""The one exception hierarchy of vipexsync.

Every error the daemon raises on purpose derives from :class:`VipexSyncError`,
and every message says what failed, on which record, key or call, and what to
do about it. Lower-level errors (requests, SQLAlchemy, OS errors) are mapped
once, at the boundary of the part that meets them.

    VipexSyncError
    ├── ConfigError                 bad or missing configuration        (exit 2)
    ├── UsageError                  bad command-line use                (exit 2)
    ├── ApiError                    anything that went wrong calling VIPeX
    │   ├── ApiResultError          the API answered ``result: 0`` with a reason
    │   ├── AuthError               401/403: wrong credentials or no permission
    │   └── RetryableApiError       worth another try (the retry layer decides)
    │       ├── RateLimitedError    429, maybe with ``Retry-After``
    │       ├── ServerError         5xx
    │       └── TransportError      timeout, connection failure, or a body
    │                               that is not the JSON we asked for
    ├── SourceError                 the CRM source could not be read completely
    ├── MirrorError                 the mirror database failed
    │   └── DatabaseVersionError    the database is from a newer vipexsync
    ├── LockHeldError               another process holds the job's lock (exit 4)
    └── StopRequested               a signal asked the run to stop early

Secrets never reach a message: the client builds messages from the action
name and the server's ``reason`` only, and URLs are logged without userinfo.
"""

from __future__ import annotations


class VipexSyncError(Exception):
    """Root of every error vipexsync raises on purpose."""


class ConfigError(VipexSyncError):
    """The configuration is missing, unreadable or invalid.

    ``problems`` lists every problem found, each naming its key, so that an
    operator can fix them all at once.
    """

    def __init__(self, message: str, problems: tuple[str, ...] = ()) -> None:
        self.problems = problems
        if problems:
            message = message + "\n" + "\n".join(f"  - {p}" for p in problems)
        super().__init__(message)


class UsageError(VipexSyncError):
    """The command line asked for something that cannot be done."""


class ApiError(VipexSyncError):
    """A call to the VIPeX API failed."""

    def __init__(self, action: str, message: str) -> None:
        self.action = action
        super().__init__(message)


class ApiResultError(ApiError):
    """VIPeX answered ``result: 0``; ``reason`` is its free-form explanation."""

    def __init__(self, action: str, reason: str) -> None:
        self.reason = reason
        super().__init__(
            action,
            f"VIPeX refused {action}: {reason or '(no reason given)'}. "
            "Check the parameters named in the reason; this is not retried.",
        )


class AuthError(ApiError):
    """401 or 403: the credentials are wrong or lack permission. Never retried."""

    def __init__(self, action: str, status: int) -> None:
        self.status = status
        super().__init__(
            action,
            f"VIPeX rejected the credentials for {action} (HTTP {status}). "
            "Check [vipex] username and the password source "
            "(password_file, $VIPEXSYNC_VIPEX_PASSWORD or the systemd credential).",
        )


class RetryableApiError(ApiError):
    """A failure that another attempt may cure (rate limit, 5xx, transport)."""


class RateLimitedError(RetryableApiError):
    """429 Too Many Requests; ``retry_after`` is the server's hint in seconds."""

    def __init__(self, action: str, retry_after: float | None) -> None:
        self.retry_after = retry_after
        hint = f" (Retry-After: {retry_after:g} s)" if retry_after is not None else ""
        super().__init__(
            action,
            f"VIPeX rate-limited {action}{hint}. Lower [vipex] concurrency if this happens often.",
        )


class ServerError(RetryableApiError):
    """The server answered 5xx."""

    def __init__(self, action: str, status: int) -> None:
        self.status = status
        super().__init__(
            action,
            f"VIPeX answered HTTP {status} to {action}. "
            "The service may be down or in maintenance; the call is retried, "
            "and the next run tries again.",
        )


class TransportError(RetryableApiError):
    """The request did not complete, or its answer was not usable JSON.

    ``sent`` says whether the request may have reached the server; actions
    with side effects (a dial, an IVR call, a status change) are retried only
    when it is False.
    """

    def __init__(self, action: str, detail: str, *, sent: bool) -> None:
        self.sent = sent
        super().__init__(
            action,
            f"calling VIPeX {action} failed: {detail}. "
            "Check [vipex] url, the network and timeout_seconds; "
            "the call is retried where that is safe.",
        )


class SourceError(VipexSyncError):
    """The CRM source could not be read completely; the run deletes nothing."""


class MirrorError(VipexSyncError):
    """The mirror database could not be reached or written."""


class DatabaseVersionError(MirrorError):
    """The database was migrated by a newer vipexsync than this one."""


class LockHeldError(VipexSyncError):
    """Another process (the daemon, a one-shot run, a replica) holds the job."""

    def __init__(self, job: str, where: str) -> None:
        self.job = job
        super().__init__(
            f"job {job!r} is being run by another process ({where}); skipped. "
            "Wait for it to finish, or stop the other process."
        )


class StopRequested(VipexSyncError):
    """A signal asked the current run to stop after the writes in flight."""


class ProbeError(VipexSyncError):
    """``vipexsync probe`` could not finish its experiment (its entry was cleaned up)."""
