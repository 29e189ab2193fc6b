"""The published documents as functions of (config, merged entries, pieces) -> bytes.

The only state is the pieces cache (aggregator.publish.pieces): each entry's rendered bytes,
so a document costs the entries that changed since the last one, plus a join.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from xml.sax.saxutils import escape, quoteattr

from aggregator.config import AggregatorConfig
from aggregator.publish.paging import page_url
from aggregator.publish.pieces import Pieces
from aggregator.reader.merge import Merged
from klynge.atom.writer import FeedMeta, join_feed, write_parts
from klynge.ical import writer as ical_writer
from klynge.model import FeedSource, Item

CALENDAR_PAST = timedelta(days=90)  # design.md: keep about 90 days of past events in the ICS
ATOM = "application/atom+xml"
ICS = "text/calendar"
OPML = "text/x-opml"

# A document's key: ("feed",), ("feed", cursor) for a later page, or ("ics", village, category).
Key = tuple[str, ...]


def slug(text: str) -> str:
    """Return a URL-friendly key for a village name (`Østerby` -> `osterby`)."""
    text = text.lower().replace("æ", "ae").replace("ø", "o").replace("å", "aa")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


def village_of(item: Item) -> FeedSource:
    """Return the FeedSource an entry comes from (every merged entry has one)."""
    return item.source or FeedSource(id="")


def matches(item: Item, village: str, category: str) -> bool:
    """Tell whether an entry passes the `village` (key or name) and `category` filters."""
    if category and item.category != category.lower():
        return False
    if not village:
        return True
    source = village_of(item)
    return village in (slug(source.title), source.title, source.id)


def content_type(key: Key) -> str:
    """Return the media type of the document with this key."""
    return ATOM if key[0] == "feed" else ICS


def build(
    config: AggregatorConfig, merged: Merged, key: Key, now: datetime, pieces: Pieces
) -> list[bytes]:
    """Return the document named by `key`, the merged feed or a (filtered) calendar, to join."""
    if key[0] == "feed":
        return [build_feed(config, merged, pieces, after=key[1] if len(key) > 1 else "")]
    _, village, category = key
    return calendar_chunks(config, merged, village, category, now, pieces)


def build_feed(
    config: AggregatorConfig, merged: Merged, pieces: Pieces | None = None, *, after: str = ""
) -> bytes:
    """Return a page of the merged Klynge Atom feed: the first, or the one after a cursor.

    A page holds entries and relayed tombstones with atom:source, newest change first, and
    links to the first page and the next (aggregator.publish.paging, RFC 5005 §3).
    """
    pieces = pieces or Pieces()
    page = pieces.changes.page(merged, after)
    feed_url = config.feed_url
    base = config.url.rstrip("/")
    updated = max((i.updated for i in merged.items), default=datetime(2026, 1, 1, tzinfo=UTC))
    meta = FeedMeta(
        id=feed_url,
        title=config.name,
        self_url=page_url(feed_url, after),
        updated=updated,
        alternate_url=f"{base}/",
        first_url=feed_url,
        next_url=page_url(feed_url, page.next_cursor) if page.next_cursor else "",
    )
    head, _ = write_parts(meta, (), page.tombstones)
    if after:
        # An older page, read by a region's first walk (or a daily whole walk): its pieces are
        # not kept. Kept, a walk of every page held every entry's piece: 60 MB at 50,000.
        entries = pieces.atom.unkept(page.items)
    else:
        entries = pieces.atom.pieces(page.items)
        pieces.atom.keep_only(page.items)  # what left the first page is rendered when asked
    return join_feed(head, (piece for _, piece in entries))


def calendar_chunks(
    config: AggregatorConfig,
    merged: Merged,
    village: str,
    category: str,
    now: datetime,
    pieces: Pieces | None = None,
) -> list[bytes]:
    """Return the cluster's events (recent and coming) at `now` as one iCalendar file's bytes,
    listed as the kept pieces they are joined from, in order (served unjoined: parts.py)."""
    cutoff = now - CALENDAR_PAST
    # In start order already (the merge keeps it): no sort of every event per build.
    chosen = merged.events_by_start
    if village or category:
        chosen = tuple(e for e in chosen if matches(e, village, category))
    made = (pieces or Pieces()).ics.pieces(chosen)
    events = [(event, (body, zones)) for event, (body, zones, end) in made if end >= cutoff]
    name = config.name if not village else f"{config.name}: {village}"
    url = f"{config.url.rstrip('/')}/calendar.ics"
    return ical_writer.calendar_chunks(events, name=name, url=url, now=now, ordered=True)


def build_opml(config: AggregatorConfig, sources: Iterable[tuple[str, str, str]]) -> bytes:
    """Return the polled feeds as an OPML 2.0 subscription list (url, title, kind)."""
    outlines = "".join(
        f"    <outline type={quoteattr('rss')} text={quoteattr(title)} "
        f"title={quoteattr(title)} xmlUrl={quoteattr(url)} category={quoteattr(kind)}/>\n"
        for url, title, kind in sources
    )
    body = (
        '<?xml version="1.0" encoding="utf-8"?>\n<opml version="2.0">\n'
        f"  <head><title>{escape(config.name)}</title></head>\n"
        f"  <body>\n{outlines}  </body>\n</opml>\n"
    )
    return body.encode()
