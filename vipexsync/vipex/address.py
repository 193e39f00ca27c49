"""The API's address, shared by the client and the one-call path (vipex/lean.py)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from vipexsync.errors import ConfigError


def build_api_url(url: str) -> str:
    """The configured URL with ``rt=api`` in its query and no userinfo.

    The path and any other query parameters are kept. Credentials written into
    the URL are dropped: they would leak into every log line that shows it, and
    the client sends its own Basic auth.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"[vipex] url must be an http(s) URL with a host, like https://cloud.opennet.hu; "
            f"got one with scheme {parts.scheme!r}"
        )
    host = parts.hostname
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "rt"]
    query.insert(0, ("rt", "api"))
    return urlunsplit((parts.scheme, netloc, parts.path or "/", urlencode(query), ""))
