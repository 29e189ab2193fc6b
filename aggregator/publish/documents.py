"""The published documents as plain functions of (config, merged entries) -> bytes.

They run in the document worker's child process (aggregator.publish.build_worker), so they
must stay pure: no state, no I/O, only picklable arguments.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from aggregator.config import AggregatorConfig
from aggregator.reader.merge import Merged
from klynge.atom.writer import FeedMeta, write_feed
from klynge.ical.writer import write_calendar
from klynge.model import Event, FeedSource, Item, Notice, Place, Tombstone
from klynge.render_guard import rendered
from klynge.repeat_rule import parse_rrule

CALENDAR_PAST = timedelta(days=90)  # design.md: keep about 90 days of past events in the ICS
ATOM = "application/atom+xml"
ICS = "text/calendar"
OPML = "text/x-opml"

# A document's key: ("feed",) or ("ics", village, category).
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


def build(config: AggregatorConfig, merged: Merged, key: Key, now: datetime) -> bytes:
    """Return the document named by `key`: the merged feed or a (filtered) calendar.

    `now` comes from the serving process's clock (config.clock), which a child process
    started by a forkserver does not share when a test travels in time.
    """
    if key[0] == "feed":
        return build_feed(config, merged)
    _, village, category = key
    return build_calendar(config, merged, village, category, now)


def build_feed(config: AggregatorConfig, merged: Merged) -> bytes:
    """Return the merged Klynge Atom feed: every entry and relayed tombstone with atom:source."""
    base = config.url.rstrip("/")
    updated = max((i.updated for i in merged.items), default=datetime(2026, 1, 1, tzinfo=UTC))
    meta = FeedMeta(
        id=f"{base}/feed.atom",
        title=config.name,
        self_url=f"{base}/feed.atom",
        updated=updated,
        alternate_url=f"{base}/",
    )
    return write_feed(meta, merged.items, merged.tombstones)


def build_calendar(
    config: AggregatorConfig, merged: Merged, village: str, category: str, now: datetime
) -> bytes:
    """Return the cluster's events (recent and coming) at `now` as one iCalendar file."""
    cutoff = now - CALENDAR_PAST
    chosen = [e for e in merged.events if matches(e, village, category)]
    ends = rendered(chosen, lambda e: (e, e.series_end()), "the calendar")
    events = [event for event, end in ends if end >= cutoff]
    name = config.name if not village else f"{config.name}: {village}"
    url = f"{config.url.rstrip('/')}/calendar.ics"
    return write_calendar(events, name=name, url=url, now=now)


def build_opml(config: AggregatorConfig, sources: Iterable[tuple[str, str, str]]) -> bytes:
    """Return the polled feeds as an OPML 2.0 subscription list (url, title, kind).

    A few hundred string joins at most: built in the serving process, not worth a child.
    """
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


def warm_up() -> None:
    """Build the feed and calendar of one made-up event, notice and tombstone.

    The first build imports modules lazily and fills library caches: the document worker's
    child does it once when it starts, so the first real build after a change does not.
    """
    config = AggregatorConfig(data_dir=Path("."), name="Warm-up", url="https://warm-up.example")
    now = config.clock.now()
    source = FeedSource(id="urn:klynge:warm-up", title="Warm-up", updated=now)
    event = Event(
        id="urn:uuid:00000000-0000-4000-8000-000000000000",
        title="Warm-up",
        updated=now,
        start=now + timedelta(days=1),
        end=now + timedelta(days=1, hours=2),
        description="<p>Warm-up</p>",
        rrule=parse_rrule("FREQ=WEEKLY;COUNT=2"),
        place=Place(name="Hus", street="Vej 1", postcode="8000", locality="By"),
        link="https://warm-up.example/e",
        source=source,
    )
    notice = Notice(
        id="urn:uuid:00000000-0000-4000-8000-000000000001",
        title="Warm-up",
        updated=now,
        body="<p>Warm-up</p>",
        expires=now + timedelta(days=1),
        source=source,
    )
    tomb = Tombstone(id="urn:uuid:00000000-0000-4000-8000-000000000002", deleted=now)
    merged = Merged((event, notice), (replace(tomb, source=source),))
    build_feed(config, merged)
    build_calendar(config, merged, "", "", now)
