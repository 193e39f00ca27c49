"""WSGI tools for the reliability tests: reading a request's parameters in middleware.

Tests wrap the emulator's WSGI app in middleware (auditing writes, corrupting
answers) and serve it over real HTTP on loopback with ``support.serve``, so the
client under test meets a real server, never a mock object.
"""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from werkzeug.wrappers import Request

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment


def buffer_request(environ: WSGIEnvironment) -> dict[str, object]:
    """Read the body once, put it back for the wrapped app, return the parameters.

    Parameters come from the query string plus a JSON, form or multipart body,
    as the emulator itself reads them.
    """
    body = Request(environ).get_data()
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    values: dict[str, object] = {
        k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()
    }
    kind = environ.get("CONTENT_TYPE", "")
    if body and "json" in kind:
        document = json.loads(body)
        if isinstance(document, dict):
            values.update(document)
    elif body and "multipart" in kind:
        copy = dict(environ)
        copy["wsgi.input"] = io.BytesIO(body)
        values.update(Request(copy).form.to_dict())
        environ["wsgi.input"] = io.BytesIO(body)
    elif body:
        values.update({k: v[-1] for k, v in parse_qs(body.decode("utf-8", "replace")).items()})
    return values
