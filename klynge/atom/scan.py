"""The defusedxml pass over a feed: refuse what is not a feed, read what feedparser drops.

feedparser does not surface RFC 6721 tombstones, and reads `atom:source` only in part
(design.md, "The feed format"), so this pass reads them, and the feed-level self and hub
links, with a hardened ElementTree parser before feedparser sees the bytes.
"""

from __future__ import annotations

import codecs
import contextlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal
from xml.etree.ElementTree import Element, ParseError
from xml.parsers import expat

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from klynge.atom.names import ATOM_NS, TOMBSTONE_NS
from klynge.errors import FeedError, ValidationError
from klynge.messages import Message, define
from klynge.model import FeedSource, Tombstone

RSS10_NS = "http://purl.org/rss/1.0/"
ATOM03_NS = "http://purl.org/atom/ns#"
RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
XHTML_NS = "http://www.w3.org/1999/xhtml"

_A = f"{{{ATOM_NS}}}"
_DELETED = f"{{{TOMBSTONE_NS}}}deleted-entry"
# Why a document is no feed, and what is wrong inside one (Danish in klynge/locale).
EMPTY = define("feed.empty", "the document is empty, not a feed")
HTML = define("feed.html", "the document is HTML, not a feed")
DTD = define("feed.dtd", "the feed contains a DTD/entity declaration, which Klynge refuses")
NOT_XML = define("feed.not_xml", "the document is not XML, so not a feed")
NOT_WELL_FORMED = define(
    "feed.not_well_formed", "the document is not well-formed XML and no feed could be recovered"
)
OTHER_ROOT = define(
    "feed.other_root", "the document is XML but not an Atom or RSS feed (its root is <%(root)s>)"
)
OTHER_NAMESPACE = define(
    "feed.other_namespace",
    "the document's root is <%(root)s> in the namespace %(namespace)s, "
    "not in Atom 1.0's (http://www.w3.org/2005/Atom): not a feed Klynge reads",
)
COMPRESSED = define("feed.compressed", "the document is compressed (%(kind)s); decompress it first")
UNKNOWN_ENCODING = define(
    "feed.unknown_encoding",
    "The feed declares the encoding %(name)s, which is unknown; it was read as %(used)s.",
)
UNDECODABLE = define(
    "feed.undecodable",
    "the feed declares the encoding %(name)s, which is unknown, and its bytes are neither "
    "UTF-8 nor windows-1252",
)
TOMBSTONE_WHEN = define("feed.tombstone_when", "A tombstone needs a valid `when` time.")

_HTML_START = re.compile(rb"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html[\s>])", re.I | re.S)


@dataclass(frozen=True)
class Problem:
    """Something wrong in a feed: the entry it concerns, the field, a message, a severity."""

    entry_id: str
    field: str
    message: Message
    severity: Literal["error", "warning"] = "error"


@dataclass(frozen=True)
class XmlEntry:
    """An atom:entry as the XML pass saw it: its id, its atom:source and the element itself."""

    id: str
    source: FeedSource | None
    element: Element


@dataclass
class Outline:
    """What the XML pass learned: the feed's kind, links, tombstones and entry sources."""

    kind: Literal["atom", "rss"]
    self_url: str = ""
    alternate_url: str = ""
    hub_urls: list[str] = field(default_factory=list)
    next_url: str = ""  # RFC 5005 §3: the next (older) page of a paged feed
    paged: bool = False  # the document has a first, next, previous or last link (RFC 5005)
    tombstones: list[Tombstone] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    entries: list[XmlEntry] = field(default_factory=list)
    root: Element | None = None


def scan(data: bytes) -> Outline | None:
    """Return the outline of a well-formed feed, None if it is not well-formed XML.

    Raises FeedError for a document that is no feed at all: empty, HTML, an XML bomb or
    external entity (any DTD is refused), or XML with another root element.
    """
    if not data.strip():
        raise FeedError(Message(EMPTY))
    if _HTML_START.match(data[:2048]):
        raise FeedError(Message(HTML))
    try:
        root = SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as e:
        raise FeedError(Message(DTD)) from e
    except (ParseError, ValueError, LookupError):
        # expat refuses multi-byte encodings and unknown or malformed encoding names with
        # ValueError/LookupError (`as_utf8` has transcoded every encoding Python can read).
        return None
    return _outline(root)


_ENTRY_NAMES = {"entry", "item", "deleted-entry"}
_PARENT_NAMES = {"feed", "channel", "RDF"}


class _Refused(Exception):
    """Stops the pre-pass: a DTD (for `scan` to refuse), or the entry past the limit."""


def cut_entries(data: bytes, limit: int) -> bytes | None:
    """Return the document cut before its entry number `limit + 1`, or None if not that long.

    Entries, RSS items and tombstones count alike. The cut is found by expat with no tree and
    stops at the cut, so a feed of 100,000 entries costs what `limit` entries cost: the XML
    pass (`scan`) builds Python objects for every element, about 45 µs each (measured), and is
    not cut short. A document that is not well-formed, has a DTD or is not in an ASCII-based
    encoding is left whole for `scan` and feedparser to judge.
    """
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in data[:200]:
        return None
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    stack: list[str] = []
    seen = [0, -1]  # entries so far, the byte index of the first one past the limit

    def start(name: str, _attrs: object) -> None:
        parent = stack[-1].rsplit(":", 1)[-1] if stack else ""
        if parent in _PARENT_NAMES and name.rsplit(":", 1)[-1] in _ENTRY_NAMES:
            seen[0] += 1
            if seen[0] > limit:
                seen[1] = parser.CurrentByteIndex
                raise _Refused
        stack.append(name)

    def refuse(*_args: object) -> None:
        raise _Refused

    parser.StartElementHandler = start
    parser.EndElementHandler = lambda _name: stack.pop()
    parser.StartDoctypeDeclHandler = refuse
    with contextlib.suppress(_Refused, expat.ExpatError):
        parser.Parse(data, True)
    if seen[1] < 0:
        return None
    closing = "".join(f"</{name}>" for name in reversed(stack))
    return data[: seen[1]] + closing.encode()


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16: it starts with the UTF-16 LE mark
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# XML 1.0 Appendix F: without a byte order mark the first "<" tells UTF-16 and UTF-32 apart.
_UNMARKED = (
    (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00\x00\x00<", "utf-32-be"),
    (b"<\x00", "utf-16-le"),
    (b"\x00<", "utf-16-be"),
)
_DECLARED = re.compile(rb"^<\?xml[^>]*?encoding\s*=\s*[\"']([^\"']*)[\"']")
_DECLARATION = re.compile(r"^<\?xml[^>]*\?>")
# Python codecs that are no character set a publisher means; some are slow on long input.
_NOT_CHARSETS = {"idna", "punycode", "unicode-escape", "raw-unicode-escape"}


def as_utf8(data: bytes) -> tuple[bytes, Problem | None]:
    """Return a document in another encoding Python can read as UTF-8, and a warning if guessed.

    expat reads only UTF-8, UTF-16 and single-byte encodings (Big5, EUC-KR, GB2312, Shift_JIS
    raise ValueError), and the readers' namespace checks look at ASCII bytes, so everything
    is read as UTF-8. An unknown encoding name is read as UTF-8, else windows-1252, as
    feedparser does, with a warning; bytes that are neither are refused (FeedError).
    Undecodable bytes in a known encoding are left for the XML pass to refuse and feedparser
    to recover from.
    """
    name = _encoding(data)
    if name is None:
        return data, None
    try:
        codec = codecs.lookup(name).name
    except (LookupError, ValueError):  # unknown, or malformed ("utf-8\0")
        return _unknown_encoding(data, name)
    if codec in ("utf-8", *_NOT_CHARSETS):
        return data, None
    try:
        return _transcoded(data.decode(codec)), None
    except (LookupError, ValueError):  # undecodable bytes
        return data, None


def _unknown_encoding(data: bytes, name: str) -> tuple[bytes, Problem]:
    for used in ("utf-8", "windows-1252"):
        try:
            text = data.decode(used)
        except ValueError:
            continue
        params = {"name": repr(name[:40]), "used": used}
        return _transcoded(text), Problem(
            "", "encoding", Message(UNKNOWN_ENCODING, params), "warning"
        )
    raise FeedError(Message(UNDECODABLE, {"name": repr(name[:40])}))


def _transcoded(text: str) -> bytes:
    declared = _DECLARATION.sub('<?xml version="1.0" encoding="utf-8"?>', text.lstrip("\ufeff"), 1)
    return declared.encode("utf-8")


def _encoding(data: bytes) -> str | None:
    for mark, name in _BOMS:
        if data.startswith(mark):
            return name
    for start, name in _UNMARKED:
        if data.startswith(start):
            return name
    declared = _DECLARED.match(data)
    return declared.group(1).decode("ascii", "replace") if declared else None


_COMPRESSED = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\x78\x9c", "zlib"),
    (b"\x78\xda", "zlib"),
)


def not_a_feed(data: bytes) -> FeedError:
    """Return the error for bytes that neither the XML pass nor feedparser could read."""
    head = data.lstrip()[:1]
    for magic, kind in _COMPRESSED:
        if data.startswith(magic):
            return FeedError(Message(COMPRESSED, {"kind": kind}))
    if head != b"<":
        return FeedError(Message(NOT_XML))
    return FeedError(Message(NOT_WELL_FORMED))


def _outline(root: Element) -> Outline:
    tag = root.tag
    namespace, _, name = tag[1:].partition("}") if tag.startswith("{") else ("", "", tag)
    if tag == f"{_A}feed":
        return _atom_outline(root)
    if namespace == ATOM03_NS and name == "feed":
        # Atom 0.3: feedparser reads it; the XML pass has nothing to add (no tombstones).
        return Outline(kind="atom")
    if name == "rss" or tag == f"{{{RDF_NS}}}RDF":
        # RSS 2.0 also comes in the userland namespaces (http://backend.userland.com/rss2 …),
        # which feedparser reads as plain RSS 2.0.
        return _rss_outline(root, namespace if name == "rss" else "")
    if name == "html" and namespace in ("", XHTML_NS):
        raise FeedError(Message(HTML))
    if name == "feed":
        params = {"root": name, "namespace": repr(namespace) if namespace else "(none)"}
        raise FeedError(Message(OTHER_NAMESPACE, params))
    raise FeedError(Message(OTHER_ROOT, {"root": name}))


def _atom_outline(root: Element) -> Outline:
    outline = Outline(kind="atom", root=root)
    _read_links(root, outline)
    for child in root:
        if child.tag == f"{_A}entry":
            source = _source(child.find(f"{_A}source"))
            outline.entries.append(XmlEntry(_text(child, "id"), source, child))
        elif child.tag == _DELETED:
            _read_tombstone(child, outline)
    return outline


def _rss_outline(root: Element, namespace: str) -> Outline:
    outline = Outline(kind="rss")
    channel = root.find(f"{{{namespace}}}channel" if namespace else "channel")
    if channel is None:
        channel = root.find(f"{{{RSS10_NS}}}channel")
    if channel is not None:
        _read_links(channel, outline)
        for child in channel.iter(_DELETED):
            _read_tombstone(child, outline)
    return outline


_PAGING = {"first", "next", "previous", "prev", "last"}  # RFC 5005 §3 (and "prev", RFC 8288)


def _read_links(parent: Element, outline: Outline) -> None:
    for link in parent.iterfind(f"{_A}link"):
        href = (link.get("href") or "").strip()
        rel = link.get("rel") or "alternate"
        if not href:
            continue
        if rel == "self" and not outline.self_url:
            outline.self_url = href
        elif rel == "alternate" and not outline.alternate_url:
            outline.alternate_url = href
        elif rel == "hub":
            outline.hub_urls.append(href)
        elif rel in _PAGING:
            outline.paged = True
            if rel == "next" and not outline.next_url:
                outline.next_url = href


def _read_tombstone(element: Element, outline: Outline) -> None:
    ref = (element.get("ref") or "").strip()
    try:
        deleted = parse_instant(element.get("when") or "")
    except ValueError:
        outline.problems.append(Problem(ref, "when", Message(TOMBSTONE_WHEN)))
        return
    try:
        tombstone = Tombstone(id=ref, deleted=deleted, source=_source(element.find(f"{_A}source")))
    except ValidationError as e:
        for name, message in e.fields.items():
            outline.problems.append(Problem(ref, name, message))
        return
    outline.tombstones.append(tombstone)


def _source(element: Element | None) -> FeedSource | None:
    if element is None:
        return None
    updated_text = _text(element, "updated")
    try:
        updated = parse_instant(updated_text) if updated_text else None
    except ValueError:
        updated = None
    self_url = ""
    for link in element.iterfind(f"{_A}link"):
        if link.get("rel") == "self":
            self_url = (link.get("href") or "").strip()
            break
    author = element.find(f"{_A}author")
    return FeedSource(
        id=_text(element, "id"),
        title=_text(element, "title"),
        updated=updated,
        self_url=self_url,
        author=_text(author, "name") if author is not None else "",
    )


def _text(parent: Element, name: str) -> str:
    child = parent.find(f"{_A}{name}")
    if child is None:
        return ""
    return "".join(child.itertext()).strip()


def exact_text(value: str, element: Element | None, path: str) -> str:
    """Return `value`, or when it is not ASCII the text at `path` below `element`.

    feedparser "repairs" UTF-8 text that looks like mojibake ("Â¡" becomes "¡") in every
    value it returns; any non-ASCII value may have been changed that way, so it is read again
    from the XML pass, which is exact.
    """
    if value.isascii() or element is None:
        return value
    child = element.find(path)
    if child is None or child.get("type") == "xhtml":
        return value
    return "".join(child.itertext()).strip()


def parse_instant(value: str) -> datetime:
    """Parse an RFC 3339 date-time with an offset (a bare date counts as midnight UTC)."""
    text = value.strip()
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        if len(text) > 10:
            raise ValueError(f"{value!r} has no time zone offset")
        parsed = parsed.replace(tzinfo=UTC)
    return parsed
