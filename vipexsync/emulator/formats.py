"""The three answer formats of the VIPeX API: json, xml and php.

Every answer is the envelope ``{"onvipex_result": {...}}``.

- ``json`` (default): ``json.dumps`` with ``ensure_ascii=True``, so non-ASCII
  labels arrive escaped (``"H\\u00edvhat\\u00f3"``) as in the vendor's examples.
- ``php``: PHP ``serialize()`` of the array ``["onvipex_result" => [...]]``:
  ``i:`` ints, ``d:`` floats, ``b:`` booleans, ``N;`` null, ``s:LEN:"...";``
  strings with LEN in UTF-8 bytes, ``a:N:{...}`` arrays (lists get keys 0..N-1).
- ``xml``: the vendor does not show its XML, so this is our documented shape.
  The root element is ``onvipex_result``; a scalar becomes an element with
  its text; ``null`` becomes an empty element with ``nil="true"``; an object
  becomes an element with one child per key; an array becomes an element
  holding one repeated ``<item>`` child per array element. For example::

      <?xml version="1.0" encoding="UTF-8"?>
      <onvipex_result><result>1</result><exten>2000</exten>
        <extens_current_calls><item><id>114117854</id>...</item></extens_current_calls>
      </onvipex_result>
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Final

from vipexsync.wire import ENVELOPE_KEY

__all__ = ["FORMATS", "XML_ITEM", "php_serialize", "render", "to_xml"]

FORMATS: Final = ("json", "xml", "php")
XML_ITEM: Final = "item"

_CONTENT_TYPES: Final = {
    "json": "application/json; charset=utf-8",
    "xml": "application/xml; charset=utf-8",
    "php": "text/plain; charset=utf-8",
}


def render(result: Mapping[str, object], fmt: str) -> tuple[bytes, str]:
    """Wrap ``result`` in the envelope and render it; returns (body, Content-Type)."""
    envelope = {ENVELOPE_KEY: dict(result)}
    if fmt == "xml":
        body = to_xml(envelope[ENVELOPE_KEY], ENVELOPE_KEY)
    elif fmt == "php":
        body = php_serialize(envelope)
    else:
        body = json.dumps(envelope, ensure_ascii=True).encode("ascii")
    return body, _CONTENT_TYPES.get(fmt, _CONTENT_TYPES["json"])


# -- PHP serialize() ----------------------------------------------------------


def _php_string(text: str) -> str:
    return f's:{len(text.encode("utf-8"))}:"{text}";'


def _php(value: object) -> str:
    if value is None:
        return "N;"
    if isinstance(value, bool):
        return f"b:{int(value)};"
    if isinstance(value, int):
        return f"i:{value};"
    if isinstance(value, float):
        return f"d:{value!r};"
    if isinstance(value, str):
        return _php_string(value)
    if isinstance(value, Mapping):
        parts = [
            (_php(k) if isinstance(k, int) else _php_string(str(k))) + _php(v)
            for k, v in value.items()
        ]
        return f"a:{len(parts)}:{{{''.join(parts)}}}"
    if isinstance(value, Sequence):
        parts = [f"i:{i};{_php(v)}" for i, v in enumerate(value)]
        return f"a:{len(parts)}:{{{''.join(parts)}}}"
    raise TypeError(f"cannot PHP-serialize a {type(value).__name__}")


def php_serialize(value: object) -> bytes:
    """PHP ``serialize()`` of a JSON-like value, as UTF-8 bytes."""
    return _php(value).encode("utf-8")


# -- XML ----------------------------------------------------------------------


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _xml(value: object, tag: str, out: list[str]) -> None:
    if value is None:
        out.append(f'<{tag} nil="true"/>')
    elif isinstance(value, bool):
        out.append(f"<{tag}>{int(value)}</{tag}>")
    elif isinstance(value, str | int | float):
        out.append(f"<{tag}>{_xml_escape(str(value))}</{tag}>")
    elif isinstance(value, Mapping):
        out.append(f"<{tag}>")
        for key, item in value.items():
            _xml(item, str(key), out)
        out.append(f"</{tag}>")
    elif isinstance(value, Sequence):
        out.append(f"<{tag}>")
        for item in value:
            _xml(item, XML_ITEM, out)
        out.append(f"</{tag}>")
    else:
        raise TypeError(f"cannot render a {type(value).__name__} as XML")


def to_xml(value: object, root: str) -> bytes:
    """Render ``value`` as an XML document whose root element is ``root``."""
    out = ['<?xml version="1.0" encoding="UTF-8"?>\n']
    _xml(value, root, out)
    out.append("\n")
    return "".join(out).encode("utf-8")
