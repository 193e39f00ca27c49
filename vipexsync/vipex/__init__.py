"""The VIPeX API client: typed methods, one retry layer, the wire's quirks absorbed."""

from vipexsync.vipex.client import ENCODINGS, ApiObserver, Encoding, VipexClient, build_api_url
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
