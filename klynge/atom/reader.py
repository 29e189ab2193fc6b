"""Read Klynge, plain Atom and RSS 2.0 feeds into validated model items.

Every document first goes through a defusedxml pass (`klynge.atom.scan`), which refuses what is
not a feed and reads tombstones, `atom:source` and feed links. Then:

* a **strict Klynge feed** (well-formed, the Klynge namespace bound to a prefix, and nothing
  outside docs/feed-format.md that feedparser would read differently) is read from that same
  parsed tree (`XmlView`). Measured on the aggregator bench's 50-entry feeds: feedparser with
  its defaults 47-54 ms a feed, with its sanitiser and URI resolution off 34-35 ms, the XML pass
  1.6 ms; feedparser re-parsed what the XML pass had already parsed and was 2/3 of a read.
* **everything else** (plain Atom, RSS, feeds that are not well-formed, a Klynge feed with
  foreign extensions, xml:base, Atom 0.3 names, a default-namespace Klynge binding, dates that
  are not RFC 3339 …) is read by feedparser, with its sanitiser and relative-URI resolution off
  (the model sanitises HTML with nh3 and validates every field).

Both readers feed the same mapping (`klynge.atom.entries.read_entry`), and the strict reader
steps aside (NotStrict) wherever it would not give what feedparser gives:
tests/test_feed_strict.py reads feeds both ways and compares the items.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal
from xml.etree.ElementTree import Element

from klynge.atom.entries import (
    Context,
    NotStrict,
    ParsedView,
    XmlView,
    entry_date,
    fix_uri,
    plain_text,
    read_entry,
    strict_text,
    text_construct,
)
from klynge.atom.names import ATOM_NS, KLYNGE_NS, TOMBSTONE_NS, FeedMeta
from klynge.atom.scan import (
    Outline,
    Problem,
    XmlEntry,
    as_utf8,
    cut_entries,
    exact_text,
    not_a_feed,
    parse_instant,
    scan,
)
from klynge.errors import FeedError
from klynge.messages import Message, define
from klynge.model import DEFAULT_TIMEZONE, Item, Tombstone

__all__ = ["FeedMeta", "ParsedFeed", "Problem", "read_feed"]

TOO_MANY_ENTRIES = define(
    "feed.too_many_entries",
    "The feed has more than %(limit)s entries; only the first %(limit)s were read.",
)
UNREADABLE = define("feed.unreadable", "the feed could not be read (%(detail)s)")
RECOVERED = define(
    "feed.recovered",
    "The feed is not well-formed XML (%(cause)s); read what could be recovered.",
)
FEEDPARSER_SAYS = define("feed.feedparser_says", "feedparser reports: %(detail)s")

Flavour = Literal["klynge", "atom", "rss"]
_A = f"{{{ATOM_NS}}}"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

# A publisher may bind the Klynge namespace to any prefix, or make it the default namespace
# (then feedparser gives bare keys such as `start`), see design.md.
_DEFAULT_DECLARATION = re.compile(
    rb"""xmlns\s*=\s*["']""" + re.escape(KLYNGE_NS.encode()) + rb"""/?["']"""
)
_PREFIX_DECLARATION = re.compile(
    rb"""xmlns:([A-Za-z_][\w.-]*)\s*=\s*["']""" + re.escape(KLYNGE_NS.encode()) + rb"""/?["']"""
)


@dataclass(frozen=True)
class ParsedFeed:
    """A feed read into the model: its meta, valid items, tombstones and problems.

    `complete` is False when the document was not well-formed and only part of it could be
    recovered: then no deletion may be inferred from entries missing in it. `paged` is True
    for a page of an RFC 5005 paged feed (a `first`, `next`, `previous` or `last` link):
    no deletion may be inferred from it either, and `next_url` names the next (older) page.
    """

    meta: FeedMeta
    items: tuple[Item, ...]
    tombstones: tuple[Tombstone, ...]
    problems: tuple[Problem, ...]
    flavour: Flavour
    complete: bool = True
    paged: bool = False
    next_url: str = ""


def read_feed(
    data: bytes,
    *,
    url: str = "",
    default_timezone: str = DEFAULT_TIMEZONE,
    strict: bool = True,
    max_entries: int | None = None,
) -> ParsedFeed:
    """Read a feed's bytes; raise FeedError when they are not a feed at all.

    `strict=False` reads every feed with feedparser (for tests comparing the two readers).
    `max_entries` reads only the first entries (and tombstones) of a longer feed, in document
    order, with a warning (`too_many_entries`): the rest of the document is not even parsed.
    """
    data, guessed = as_utf8(data)
    cut = cut_entries(data, max_entries) if max_entries is not None else None
    outline = scan(cut) if cut is not None else None
    if outline is not None and cut is not None and max_entries is not None:
        data = cut
        outline.problems.insert(0, too_many_entries(max_entries))
    else:
        outline = scan(data)
    if guessed is not None and outline is not None:
        outline.problems.insert(0, guessed)
    if strict and outline is not None:
        try:
            return read_strict(data, outline, url=url, default_timezone=default_timezone)
        except NotStrict:
            pass  # something feedparser reads its own way: let it
    return read_with_feedparser(
        data, outline, url=url, default_timezone=default_timezone, max_entries=max_entries
    )


def too_many_entries(limit: int) -> Problem:
    """Return the warning for a feed with more than `limit` entries."""
    return Problem("", "entries", Message(TOO_MANY_ENTRIES, {"limit": limit}), "warning")


def read_with_feedparser(
    data: bytes,
    outline: Outline | None,
    *,
    url: str,
    default_timezone: str,
    max_entries: int | None = None,
) -> ParsedFeed:
    """Read a feed with feedparser, completing it with what the XML pass found."""
    parsed = _feedparser(data, outline)
    if outline is None and not (parsed.get("version") and (any(parsed.entries) or parsed.feed)):
        raise not_a_feed(data)
    problems = _feed_problems(parsed, outline)
    keys = _klynge_keys(data, parsed.get("namespaces") or {})
    flavour = _flavour(parsed, keys)
    meta = _meta(parsed.feed, outline, url)
    ctx = Context(default_timezone, _feed_updated(parsed.feed), url or meta.self_url)
    xml_entries = outline.entries if outline is not None else []
    entries = parsed.entries
    if max_entries is not None and len(entries) > max_entries:
        if outline is None:  # else the cut has said so already
            problems.insert(0, too_many_entries(max_entries))
        entries = entries[:max_entries]
    items = _items(entries, keys, ctx, xml_entries, problems)
    tombstones = outline.tombstones if outline is not None else []
    if not _feed_updated(parsed.feed) and items:
        meta = replace(meta, updated=max(item.updated for item in items))
    return ParsedFeed(
        meta=meta,
        items=tuple(items),
        tombstones=tuple(tombstones),
        problems=tuple(problems),
        flavour=flavour,
        complete=outline is not None,
        paged=outline is not None and outline.paged,
        next_url=outline.next_url if outline is not None else "",
    )


def _feedparser(data: bytes, outline: Outline | None) -> Any:
    # Imported with the first feed the strict reader leaves to it: a tier that reads Klynge
    # feeds only never needs it, and it is 10 MB of the parse child's memory for its life.
    import feedparser

    # A file object, never bytes or str: feedparser would open a path or fetch a URL given as
    # a string, and it must not touch the network or the disk here.
    try:
        return feedparser.parse(io.BytesIO(data), sanitize_html=False, resolve_relative_uris=False)
    except Exception as e:
        # feedparser's loose parser crashes on some hostile bytes (found by tests/fuzz/: a
        # character reference to a lone surrogate, non-UTF-8 bytes in the declared encoding).
        if outline is None:
            raise not_a_feed(data) from e
        raise FeedError(Message(UNREADABLE, {"detail": f"{type(e).__name__}: {e}"})) from e


# --- the strict Klynge reader -------------------------------------------------------------

_XML_DECLARATION = re.compile(rb"<\?xml[^>]*?encoding\s*=\s*[\"']([^\"']*)[\"']")
_BASE_ATTRIBUTE = re.compile(rb"[\s:]base\s*=\s*[\"']")  # xml:base or feedparser's bare `base`
_FEED_SINGLE = {"id", "title", "subtitle", "updated", "author"}
_FEED_IGNORED = {"link", "entry", "rights", "generator", "icon", "logo", "category"}
_KLYNGE_TAG = f"{{{KLYNGE_NS}}}"
_TOMBSTONE = f"{{{TOMBSTONE_NS}}}deleted-entry"


def read_strict(
    data: bytes, outline: Outline, *, url: str = "", default_timezone: str = DEFAULT_TIMEZONE
) -> ParsedFeed:
    """Read a strict Klynge feed from the XML pass alone; raise NotStrict for any other feed."""
    _check_strict_document(data, outline)
    root = outline.root
    assert root is not None  # an Atom outline keeps its root
    single = _feed_children(root)
    feed_updated = _strict_date(single.get("updated"))
    meta = FeedMeta(
        id=fix_uri(strict_text(single["id"])),
        title=_strict_title(single.get("title")),
        self_url=outline.self_url or url,
        updated=feed_updated or datetime.now(UTC).replace(microsecond=0),
        author=_strict_author(single.get("author")),
        alternate_url=outline.alternate_url,
        hub_urls=tuple(outline.hub_urls),
        subtitle=_strict_title(single.get("subtitle")),
        language=(root.get(_XML_LANG) or "").replace("_", "-"),
    )
    ctx = Context(default_timezone, feed_updated, url or meta.self_url)
    problems = list(outline.problems)
    items: list[Item] = []
    for xml in outline.entries:
        item, entry_problems = read_entry(XmlView(xml.element), ctx, xml.source)
        problems.extend(entry_problems)
        if item is not None:
            items.append(item)
    if feed_updated is None and items:
        meta = replace(meta, updated=max(item.updated for item in items))
    return ParsedFeed(
        meta=meta,
        items=tuple(items),
        tombstones=tuple(outline.tombstones),
        problems=tuple(problems),
        flavour="klynge",
        paged=outline.paged,
        next_url=outline.next_url,
    )


def _check_strict_document(data: bytes, outline: Outline) -> None:
    if outline.kind != "atom" or outline.root is None:
        raise NotStrict("not Atom")
    keys = _klynge_keys(data, {})
    if len(keys) != 1 or keys == ("",):
        raise NotStrict("the Klynge namespace is not bound to exactly one prefix")
    if not data.startswith(b"<"):
        raise NotStrict("a byte order mark or leading space")
    declared = _XML_DECLARATION.match(data)
    if declared is not None and declared.group(1).lower() != b"utf-8":
        raise NotStrict("not declared as UTF-8")
    if _BASE_ATTRIBUTE.search(data):
        raise NotStrict("xml:base")
    if outline.root.get("lang") is not None:
        raise NotStrict("a bare lang attribute")


def _feed_children(root: Element) -> dict[str, Element]:
    single: dict[str, Element] = {}
    for child in root:
        tag = child.tag
        if tag.startswith(_A):
            name = tag[len(_A) :]
            if name in _FEED_SINGLE and name not in single:
                single[name] = child
            elif name not in _FEED_IGNORED:
                raise NotStrict(f"the feed has atom:{name} (again)")
        elif not (tag == _TOMBSTONE or tag.startswith(_KLYNGE_TAG)):
            raise NotStrict(f"the feed has a {tag} element")
    if "id" not in single or not strict_text(single["id"]):
        raise NotStrict("the feed has no id")
    return single


def _strict_date(element: Element | None) -> datetime | None:
    text = strict_text(element) if element is not None else ""
    if not text:
        return None
    try:
        return parse_instant(text)
    except ValueError as e:
        raise NotStrict("the feed's updated is not RFC 3339") from e


def _strict_title(element: Element | None) -> str:
    return plain_text(text_construct(element)[0]).strip() if element is not None else ""


def _strict_author(element: Element | None) -> str:
    if element is None:
        return ""
    names = [child for child in element if child.tag == f"{_A}name"]
    if len(names) != 1 or any(c.tag not in (f"{_A}name", f"{_A}uri") for c in element):
        raise NotStrict("the feed's author is not one name (and uri)")
    return plain_text(strict_text(names[0])).strip()


# --- the feedparser reader ----------------------------------------------------------------


def _feed_problems(parsed: Any, outline: Outline | None) -> list[Problem]:
    problems = list(outline.problems) if outline is not None else []
    if outline is None:
        cause = parsed.get("bozo_exception")
        message = Message(RECOVERED, {"cause": str(cause)})
        problems.append(Problem("", "feed", message, "warning"))
    elif parsed.get("bozo"):
        message = Message(FEEDPARSER_SAYS, {"detail": str(parsed.get("bozo_exception"))})
        problems.append(Problem("", "feed", message, "warning"))
    return problems


def _klynge_keys(data: bytes, namespaces: Mapping[str, str]) -> tuple[str, ...]:
    """Return the key prefixes under which feedparser stored Klynge elements."""
    prefixes = {p.lower() for p, uri in namespaces.items() if p and _is_klynge(uri)}
    prefixes.update(m.group(1).decode().lower() for m in _PREFIX_DECLARATION.finditer(data))
    keys = [f"{prefix}_" for prefix in sorted(prefixes)]
    if _DEFAULT_DECLARATION.search(data):
        keys.append("")
    return tuple(keys)


def _is_klynge(uri: str) -> bool:
    return uri.rstrip("/") == KLYNGE_NS


def _flavour(parsed: Any, keys: tuple[str, ...]) -> Flavour:
    if keys:
        return "klynge"
    version = str(parsed.get("version") or "")
    return "atom" if version.startswith("atom") else "rss"


def _meta(feed: Mapping[str, Any], outline: Outline | None, url: str) -> FeedMeta:
    self_url = outline.self_url if outline is not None else ""
    alternate = outline.alternate_url if outline is not None else ""
    root = outline.root if outline is not None else None

    def text(key: str) -> str:
        return plain_text(exact_text(str(feed.get(key) or ""), root, f"{{{ATOM_NS}}}{key}"))

    return FeedMeta(
        id=str(feed.get("id") or feed.get("link") or self_url or url).strip(),
        title=text("title").strip(),
        self_url=self_url or url,
        updated=_feed_updated(feed) or datetime.now(UTC).replace(microsecond=0),
        author=plain_text(
            exact_text(
                str(feed.get("author") or ""), root, f"{{{ATOM_NS}}}author/{{{ATOM_NS}}}name"
            )
        ).strip(),
        alternate_url=alternate or _rss_link(feed, outline),
        hub_urls=tuple(outline.hub_urls) if outline is not None else (),
        subtitle=text("subtitle").strip(),
        language=str(feed.get("language") or ""),
    )


def _rss_link(feed: Mapping[str, Any], outline: Outline | None) -> str:
    # In RSS the channel <link> is the site's page; an Atom feed's is in the outline already.
    if outline is not None and outline.kind == "atom":
        return ""
    return str(feed.get("link") or "").strip()


def _feed_updated(feed: Mapping[str, Any]) -> datetime | None:
    return entry_date(feed, "updated") or entry_date(feed, "published")


def _items(
    entries: Sequence[Mapping[str, Any]],
    keys: tuple[str, ...],
    ctx: Context,
    xml_entries: Sequence[XmlEntry],
    problems: list[Problem],
) -> list[Item]:
    by_id = {xml.id: xml for xml in xml_entries}
    aligned = len(xml_entries) == len(entries)
    items: list[Item] = []
    for index, entry in enumerate(entries):
        entry_id = str(entry.get("id") or "")
        if aligned and xml_entries[index].id == entry_id:
            xml: XmlEntry | None = xml_entries[index]
        else:
            xml = by_id.get(entry_id)
        view = ParsedView(entry, keys, xml.element if xml is not None else None)
        item, entry_problems = read_entry(view, ctx, xml.source if xml is not None else None)
        problems.extend(entry_problems)
        if item is not None:
            items.append(item)
    return items
