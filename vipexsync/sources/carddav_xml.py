"""WebDAV/CardDAV XML for the carddav source: request bodies and multistatus answers.

Pure functions over bytes. Answers are parsed by expat with a configuration
that refuses any document type declaration, so no entity (internal or
external) is ever defined or expanded: a DAV answer never needs one, and a
server (or a proxy) that sends one is treated as sending garbage. Truncated
or malformed XML raises :class:`XmlError`.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # builds trees; expat (configured below) parses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from xml.parsers import expat

DAV = "DAV:"
CARDDAV = "urn:ietf:params:xml:ns:carddav"


def tag(namespace: str, local: str) -> str:
    """The ElementTree (Clark) name: ``{namespace}local``."""
    return f"{{{namespace}}}{local}"


GETETAG = tag(DAV, "getetag")
RESOURCETYPE = tag(DAV, "resourcetype")
COLLECTION = tag(DAV, "collection")
SUPPORTED_REPORT_SET = tag(DAV, "supported-report-set")
SYNC_TOKEN = tag(DAV, "sync-token")
SYNC_COLLECTION = tag(DAV, "sync-collection")
ADDRESSBOOK = tag(CARDDAV, "addressbook")
ADDRESS_DATA = tag(CARDDAV, "address-data")
VALID_SYNC_TOKEN = tag(DAV, "valid-sync-token")

_STATUS_LINE = re.compile(r"^\s*HTTP/\d(?:\.\d)?\s+(\d{3})\b")


class XmlError(ValueError):
    """The answer is not well-formed XML, is cut short, or is not a multistatus."""


class _Refused(Exception):
    """Raised from an expat handler to stop at a construct we never accept."""


def parse_xml(data: bytes) -> ET.Element:
    """Parse a whole XML document; no DTD, no entities, nothing fetched."""
    builder = ET.TreeBuilder()
    parser = expat.ParserCreate(namespace_separator="}")
    parser.buffer_text = True
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)

    def clark(name: str) -> str:
        return "{" + name if "}" in name else name

    def refuse_doctype(*_args: object) -> None:
        raise _Refused("a document type declaration (DTD)")

    def refuse_entity(*_args: object) -> int:
        raise _Refused("an entity declaration")

    def start(name: str, attributes: dict[str, str]) -> None:
        builder.start(clark(name), {clark(k): v for k, v in attributes.items()})

    def end(name: str) -> None:
        builder.end(clark(name))

    parser.StartDoctypeDeclHandler = refuse_doctype
    parser.EntityDeclHandler = refuse_entity
    parser.UnparsedEntityDeclHandler = refuse_entity
    parser.ExternalEntityRefHandler = refuse_entity
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = builder.data
    try:
        parser.Parse(data, True)
    except _Refused as exc:
        raise XmlError(f"the XML holds {exc}, which a DAV answer never needs") from None
    except expat.ExpatError as exc:
        reason = expat.ErrorString(exc.code) if exc.code else str(exc)
        raise XmlError(
            f"the XML is malformed or cut short ({reason} at line {exc.lineno})"
        ) from None
    return builder.close()


def status_code(text: str | None) -> int | None:
    """The code of an ``HTTP/1.1 200 OK`` status line; None when there is no usable line."""
    if text is None:
        return None
    found = _STATUS_LINE.match(text)
    return int(found.group(1)) if found else None


@dataclass(frozen=True, slots=True)
class DavResponse:
    """One ``<D:response>`` of a multistatus.

    ``status`` is the response-level status (a member gone, a 507 on a
    truncated sync), or None when the response reports properties. ``props``
    holds the properties reported with a 2xx status, ``prop_errors`` the
    others (property name -> status code).
    """

    href: str
    status: int | None
    props: Mapping[str, ET.Element]
    prop_errors: Mapping[str, int]

    def text(self, name: str) -> str | None:
        """A 2xx property's text content (None when it was not reported)."""
        element = self.props.get(name)
        if element is None:
            return None
        return "".join(element.itertext())

    def children(self, name: str) -> frozenset[str]:
        """The tags of a 2xx property's child elements (e.g. a resourcetype's)."""
        element = self.props.get(name)
        return frozenset(child.tag for child in element) if element is not None else frozenset()


@dataclass(frozen=True, slots=True)
class Multistatus:
    responses: tuple[DavResponse, ...]
    sync_token: str | None  # the top-level <D:sync-token> of a sync-collection answer


def parse_multistatus(data: bytes) -> Multistatus:
    """A 207 body as responses; XmlError when it is not a usable multistatus."""
    root = parse_xml(data)
    if root.tag != tag(DAV, "multistatus"):
        raise XmlError(f"the answer's root element is {root.tag}, not DAV: multistatus")
    responses: list[DavResponse] = []
    for number, element in enumerate(root.findall(tag(DAV, "response")), start=1):
        href_element = element.find(tag(DAV, "href"))
        href = (href_element.text or "").strip() if href_element is not None else ""
        if not href:
            raise XmlError(f"response {number} of the multistatus has no href")
        status_element = element.find(tag(DAV, "status"))
        status: int | None = None
        if status_element is not None:
            status = status_code(status_element.text)
            if status is None:
                raise XmlError(f"the status line of {href} is not HTTP/1.1 NNN")
        props: dict[str, ET.Element] = {}
        errors: dict[str, int] = {}
        for propstat in element.findall(tag(DAV, "propstat")):
            code = status_code(propstat.findtext(tag(DAV, "status")))
            if code is None:
                raise XmlError(f"a propstat of {href} has no usable status line")
            prop = propstat.find(tag(DAV, "prop"))
            for child in prop if prop is not None else ():
                if 200 <= code < 300:
                    props[child.tag] = child
                else:
                    errors[child.tag] = code
        if status is None and not props and not errors:
            raise XmlError(f"the response for {href} has neither a status nor properties")
        responses.append(DavResponse(href, status, props, errors))
    token_element = root.find(SYNC_TOKEN)
    token = (token_element.text or "").strip() if token_element is not None else None
    return Multistatus(tuple(responses), token)


def error_conditions(data: bytes) -> frozenset[str]:
    """The precondition elements of a ``<D:error>`` body; empty when it is not one."""
    try:
        root = parse_xml(data)
    except XmlError:
        return frozenset()
    if root.tag != tag(DAV, "error"):
        return frozenset()
    return frozenset(child.tag for child in root)


def supported_reports(response: DavResponse) -> frozenset[str]:
    """The report names a collection advertises in its supported-report-set."""
    element = response.props.get(SUPPORTED_REPORT_SET)
    if element is None:
        return frozenset()
    return frozenset(
        report.tag for report_holder in element.iter(tag(DAV, "report")) for report in report_holder
    )


# -- request bodies ----------------------------------------------------------


def _document(root: ET.Element) -> bytes:
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def _prop(parent: ET.Element, names: Iterable[str]) -> None:
    prop = ET.SubElement(parent, tag(DAV, "prop"))
    for name in names:
        ET.SubElement(prop, name)


def propfind_body(names: Iterable[str]) -> bytes:
    root = ET.Element(tag(DAV, "propfind"))
    _prop(root, names)
    return _document(root)


def sync_collection_body(token: str, names: Iterable[str]) -> bytes:
    """RFC 6578 sync-collection: changes since ``token`` ("" = every member)."""
    root = ET.Element(SYNC_COLLECTION)
    ET.SubElement(root, SYNC_TOKEN).text = token
    ET.SubElement(root, tag(DAV, "sync-level")).text = "1"
    _prop(root, names)
    return _document(root)


def multiget_body(hrefs: Iterable[str], names: Iterable[str]) -> bytes:
    """RFC 6352 addressbook-multiget for these member hrefs."""
    root = ET.Element(tag(CARDDAV, "addressbook-multiget"))
    _prop(root, names)
    for href in hrefs:
        ET.SubElement(root, tag(DAV, "href")).text = href
    return _document(root)
