"""The VIPeX API client: typed methods, one retry layer, the wire's quirks absorbed.

The names below are loaded on first use: importing ``vipexsync.vipex.parse`` or
``.models`` (the quiet one-shot tick's one call, vipex/lean.py) must not import
requests, urllib3 and tenacity with the client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vipexsync.vipex.address import build_api_url
    from vipexsync.vipex.client import ENCODINGS, ApiObserver, Encoding, VipexClient
    from vipexsync.vipex.retry import SIDE_EFFECT_ACTIONS, RetryPolicy, parse_retry_after

__all__ = [
    "ENCODINGS",
    "SIDE_EFFECT_ACTIONS",
    "ApiObserver",
    "Encoding",
    "RetryPolicy",
    "VipexClient",
    "build_api_url",
    "parse_retry_after",
]

_HOME = {
    "ENCODINGS": "client",
    "ApiObserver": "client",
    "Encoding": "client",
    "VipexClient": "client",
    "build_api_url": "address",
    "SIDE_EFFECT_ACTIONS": "retry",
    "RetryPolicy": "retry",
    "parse_retry_after": "retry",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
