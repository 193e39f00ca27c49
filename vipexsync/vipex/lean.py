"""One API call with the standard library: the quiet one-shot tick's custom-field look-up.

Importing the client (requests, urllib3, tenacity) cost a one-shot quiet tick
more CPU than all the rest of it (issue 13). This sends the form POST the
client sends (the same URL, Basic auth, TLS settings and timeout; no proxy
and no redirect, as the client) and reads the answer with the client's own
parser. It never retries: any failure raises, and the caller runs the tick
the normal way, whose client retries and reports.
"""

from __future__ import annotations

import base64
import http.client
import ssl
from datetime import UTC, datetime
from urllib.parse import urlencode, urlsplit

from vipexsync.config import VipexConfig
from vipexsync.errors import TransportError
from vipexsync.vipex import parse
from vipexsync.vipex.address import build_api_url
from vipexsync.vipex.models import CustomField
from vipexsync.wire import API_VERSION

ACTION = "get_phonebook_custom_field_list"


def _tls(cfg: VipexConfig) -> ssl.SSLContext:
    if cfg.ca_bundle is not None:
        return ssl.create_default_context(cafile=str(cfg.ca_bundle))
    context = ssl.create_default_context()
    if not cfg.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def custom_fields(cfg: VipexConfig, vipex_id: str) -> tuple[CustomField, ...]:
    """``get_phonebook_custom_field_list`` once; raises on any failure."""
    url = urlsplit(build_api_url(cfg.url))
    host = url.hostname or ""
    connection: http.client.HTTPConnection
    if url.scheme == "https":
        connection = http.client.HTTPSConnection(
            host, url.port, timeout=cfg.timeout_seconds, context=_tls(cfg)
        )
    else:
        connection = http.client.HTTPConnection(host, url.port, timeout=cfg.timeout_seconds)
    body = urlencode(
        {"action": ACTION, "version": API_VERSION, "format": "json", "vipex_id": vipex_id}
    )
    credentials = f"{cfg.username}:{cfg.password.value}".encode("latin-1")
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Authorization": "Basic " + base64.b64encode(credentials).decode("ascii"),
        "Accept": "*/*",
    }
    try:
        connection.request("POST", f"{url.path}?{url.query}", body=body, headers=headers)
        response = connection.getresponse()
        content = response.read()
        status = response.status
        answer_headers = dict(response.getheaders())
    except (OSError, http.client.HTTPException) as exc:
        raise TransportError(ACTION, type(exc).__name__, sent=True) from None
    finally:
        connection.close()
    result = parse.interpret_answer(ACTION, status, answer_headers, content, datetime.now(UTC))
    return parse.parse_custom_fields(ACTION, result)
