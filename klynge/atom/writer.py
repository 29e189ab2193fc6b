"""Write Klynge feeds: Atom 1.0 (RFC 4287) plus the Klynge namespace, built with feedgen.

feedgen 1.0 drops `rel`/`type` on entry links and writes an incomplete `atom:source`
(design.md, "The feed format"), so links, `atom:source`, the Klynge elements, GeoRSS and the
RFC 6721 tombstones are written by feedgen extensions registered on the generator.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from lxml import etree

from klynge import __version__

# The names the writer shares with the reader (klynge.atom.names), given by it too.
from klynge.atom.names import ATOM_NS as ATOM_NS
from klynge.atom.names import GEORSS_NS as GEORSS_NS
from klynge.atom.names import KLYNGE_NS as KLYNGE_NS
from klynge.atom.names import TOMBSTONE_NS as TOMBSTONE_NS
from klynge.atom.names import FeedMeta as FeedMeta
from klynge.carpool import Carpool
from klynge.model import (
    CATEGORIES,
    Event,
    FeedSource,
    Item,
    Notice,
    Place,
    Tombstone,
    category_label,
    format_when,
)
from klynge.render_guard import each_entry
from klynge.repeat_rule import rule_text
from klynge.series_text import changes_text, dates_text

NAMESPACES = {"klynge": KLYNGE_NS, "georss": GEORSS_NS, "at": TOMBSTONE_NS}
ATOM_TYPE = "application/atom+xml"
# feedgen builds Atom elements without a namespace and declares the Atom namespace as the
# document's default with a plain `xmlns` attribute; our Atom elements must do the same or
# lxml would give them an `ns0:` prefix.
_ATOM = ""

# XML 1.0 forbids these code points (§2.2); lxml refuses them, so strip them on the way out.
_FEED_END = b"</feed>"
_ENTRY_START = b"<entry>"
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def write_feed(
    meta: FeedMeta, items: Iterable[Item], tombstones: Iterable[Tombstone] = ()
) -> bytes:
    """Return a Klynge Atom feed (UTF-8 bytes) with the items in the given order.

    An item that cannot be written is left out and logged (klynge.render_guard): its values
    are all computed here, so writing the XML afterwards only copies strings.
    """
    head, pieces = write_parts(meta, items, tombstones)
    return join_feed(head, [piece for _, piece in pieces])


def write_parts(
    meta: FeedMeta, items: Iterable[Item], tombstones: Iterable[Tombstone] = ()
) -> tuple[bytes, list[tuple[Item, bytes]]]:
    """Return the feed's head (up to its first entry) and each written item's `<entry>` bytes.

    An entry's bytes do not depend on the feed around it (feedgen writes Atom entries
    without attributes and every namespace is declared on the root), so a caller may keep
    them and join them later with another head (`join_feed`): that is how the aggregator
    rebuilds its merged feed at the cost of the entries that changed.
    """
    fg = _generator(meta)
    fg.register_extension("klynge", _FeedExtension, _EntryExtension, atom=True, rss=False)
    fg.klynge.tombstones = tuple(tombstones)
    written = list(each_entry(items, lambda item: _add_entry(fg, item), "the feed"))
    data: bytes = fg.atom_str(pretty=False, encoding="UTF-8", xml_declaration=True)
    # Text is escaped, so "<entry>" in the bytes can only be an entry's start tag.
    head, *entries = data.removesuffix(_FEED_END).split(_ENTRY_START)
    if len(entries) != len(written):
        raise AssertionError(f"{len(entries)} <entry> tags for {len(written)} entries")
    return head, list(zip(written, (_ENTRY_START + entry for entry in entries), strict=True))


def join_feed(head: bytes, pieces: Iterable[bytes]) -> bytes:
    """Return the feed made of a head from `write_parts` and entry bytes, in this order."""
    return b"".join([head, *pieces, _FEED_END])


def _add_entry(fg: Any, item: Item) -> Item:
    entry = fg.add_entry(order="append")  # feedgen prepends by default
    try:
        _fill_entry(entry, item)
        entry.klynge.item = item
        entry.klynge.values = klynge_values(item)
    except Exception:
        fg.remove_entry(entry)
        raise
    return item


def xml_text(value: str) -> str:
    """Return `value` without the code points that XML 1.0 cannot carry."""
    return _XML_ILLEGAL.sub("", value)


def _generator(meta: FeedMeta) -> Any:
    fg = FeedGenerator()
    fg.id(xml_text(meta.id))
    fg.title(xml_text(meta.title))
    fg.updated(meta.updated)
    # RFC 4287 §4.1.1: a feed needs an author unless every entry has one.
    fg.author({"name": xml_text(meta.author or meta.title)})
    fg.link(href=xml_text(meta.self_url), rel="self", type=ATOM_TYPE)
    if meta.alternate_url:
        fg.link(href=xml_text(meta.alternate_url), rel="alternate", type="text/html")
    for hub in meta.hub_urls:
        fg.link(href=xml_text(hub), rel="hub")
    for rel, url in (("first", meta.first_url), ("next", meta.next_url)):
        if url:
            fg.link(href=xml_text(url), rel=rel, type=ATOM_TYPE)
    if meta.subtitle:
        fg.subtitle(xml_text(meta.subtitle))
    if meta.language:
        fg.language(meta.language)
    fg.generator("Klynge", version=__version__)
    return fg


def _fill_entry(entry: Any, item: Item) -> None:
    entry.id(xml_text(item.id))
    entry.title(xml_text(item.title))
    entry.updated(item.updated)
    if item.created is not None:
        entry.published(item.created)
    if item.organizer:
        author = {"name": xml_text(item.organizer)}
        if item.organizer_url:
            author["uri"] = xml_text(item.organizer_url)
        entry.author(author)
    if item.category:
        category = {"term": item.category}
        if item.category in CATEGORIES:
            category["label"] = category_label(item.category, "da")
        entry.category(category)
    text = item.description if isinstance(item, Event) else item.body
    # Always present (possibly empty), so an entry without a page link is still valid Atom
    # (RFC 4287 §4.1.1: an entry needs a rel=alternate link or atom:content).
    entry.content(xml_text(text), type="html")


class _FeedExtension(BaseExtension):  # type: ignore[misc]
    """Declares the namespaces and writes the RFC 6721 tombstones before the entries."""

    def __init__(self) -> None:
        self.tombstones: tuple[Tombstone, ...] = ()

    def extend_ns(self) -> dict[str, str]:
        return dict(NAMESPACES)

    def extend_atom(self, feed: Any) -> Any:
        # RFC 4287's schema puts foreign elements before the first atom:entry.
        for tombstone in self.tombstones:
            _tombstone(feed, tombstone)
        return feed


class _EntryExtension(BaseEntryExtension):  # type: ignore[misc]
    """Writes an entry's links, Klynge elements, GeoRSS point and atom:source."""

    def __init__(self) -> None:
        self.item: Item | None = None
        self.values: list[tuple[str, str]] = []

    def extend_atom(self, entry: Any) -> Any:
        if self.item is not None:
            _links(entry, self.item)
            for name, value in self.values:
                _sub(entry, KLYNGE_NS, name, value)
            _point(entry, self.item)
            if self.item.source is not None:
                _source(entry, self.item.source)
        return entry


def klynge_values(item: Item) -> list[tuple[str, str]]:
    """Return the Klynge elements of an item as (local name, text) pairs.

    Empty values and the defaults `allday` false, `status` confirmed and `sequence` 0 are left
    out: feedparser costs about 35 µs per element, so fewer elements read faster.
    """
    common = [
        ("organizer", item.organizer),
        ("organizerurl", item.organizer_url),
        ("sequence", str(item.sequence) if item.sequence else ""),
    ]
    if isinstance(item, Notice):
        expires = format_when(item.expires) if item.expires is not None else ""
        pairs = [("kind", "notice"), ("expires", expires), ("related", item.related), *common]
        pairs += carpool_values(item.carpool)
    else:
        pairs = [("kind", "event"), *_event_values(item), *common]
        pairs += [("carpooling", "true" if item.carpooling else "")]
    return [(name, value) for name, value in pairs if value]


def carpool_values(carpool: Carpool | None) -> list[tuple[str, str]]:
    """Return a carpool notice's own elements (docs/feed-format.md, "Carpools")."""
    if carpool is None:
        return []
    departure = format_when(carpool.departure) if carpool.departure is not None else ""
    return [
        ("direction", carpool.direction),
        ("seats", str(carpool.seats)),
        ("from", carpool.origin),
        ("departure", departure),
        ("contact", carpool.contact),
        ("phone", carpool.phone),
        ("email", carpool.email),
    ]


def _event_values(event: Event) -> list[tuple[str, str]]:
    place = event.place or Place()
    return [
        ("start", format_when(event.start)),
        ("end", format_when(event.end) if event.end is not None else ""),
        ("allday", "true" if event.all_day else ""),
        ("tzid", event.timezone),
        ("rrule", rule_text(event.rrule)),
        # A series' exceptions (docs/feed-format.md): a reader that ignores them still
        # shows the rule's dates.
        ("exdate", dates_text(event.exdates)),
        ("rdate", dates_text(event.rdates)),
        ("changes", changes_text(event.changes) if event.changes else ""),
        ("status", "" if event.status == "confirmed" else event.status),
        ("location", place.name),
        ("street", place.street),
        ("postcode", place.postcode),
        ("locality", place.locality),
    ]


def _links(entry: Any, item: Item) -> None:
    if item.link:
        _link(entry, item.link, "alternate", "text/html")
        if isinstance(item, Event):
            # Not a second "alternate": feed readers (newsboat) open the last alternate as the
            # entry's link, which downloaded the .ics instead of showing the event page.
            _link(entry, item.link + ".ics", "related", "text/calendar")
    if item.url:
        _link(entry, item.url, "related", "")


def _link(parent: Any, href: str, rel: str, mime: str) -> None:
    link = etree.SubElement(parent, "link", href=xml_text(href), rel=rel)
    if mime:
        link.set("type", mime)


def _sub(parent: Any, namespace: str, name: str, text: str) -> Any:
    element = etree.SubElement(parent, f"{{{namespace}}}{name}" if namespace else name)
    element.text = xml_text(text)
    return element


def _point(entry: Any, item: Item) -> None:
    place = item.place if isinstance(item, Event) else None
    if place is not None and place.lat is not None and place.lon is not None:
        # GeoRSS Simple: "latitude longitude"; repr() round-trips a float exactly.
        _sub(entry, GEORSS_NS, "point", f"{float(place.lat)!r} {float(place.lon)!r}")


def _source(parent: Any, source: FeedSource) -> None:
    """Write a full atom:source (RFC 4287 §4.2.11): id, title, updated, self link, author."""
    element = etree.SubElement(parent, "source")
    _sub(element, _ATOM, "id", source.id)
    if source.title:
        _sub(element, _ATOM, "title", source.title)
    if source.updated is not None:
        _sub(element, _ATOM, "updated", source.updated.isoformat())
    if source.self_url:
        _link(element, source.self_url, "self", ATOM_TYPE)
    if source.author:
        author = etree.SubElement(element, "author")
        _sub(author, _ATOM, "name", source.author)


def _tombstone(feed: Any, tombstone: Tombstone) -> None:
    element = etree.SubElement(
        feed,
        f"{{{TOMBSTONE_NS}}}deleted-entry",
        ref=xml_text(tombstone.id),
        when=tombstone.deleted.isoformat(),
    )
    if tombstone.source is not None:
        _source(element, tombstone.source)
