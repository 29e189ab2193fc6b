"""The aggregator's published documents: built once per change, served as cached bytes.

`/feed.atom`, `/calendar.ics` (per filter) and `/sources.opml` are built in a worker thread on
the first request after a change and then served from memory with a strong ETag, so a 304
costs no building at all (design.md: aiohttp answers 304s about 2.5x faster than 200s).
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import hashlib
import logging
import re
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from aiohttp import web

from aggregator.config import AggregatorConfig
from aggregator.reader.merge import Merged, is_upcoming
from klynge.atom.writer import FeedMeta, write_feed
from klynge.ical.writer import write_calendar
from klynge.model import (
    Event,
    FeedSource,
    Item,
    Notice,
    Place,
    Tombstone,
    as_utc,
    format_when,
    zone,
)
from klynge.recurrence import Occurrence, expand
from klynge.render_guard import rendered
from klynge.repeat_rule import parse_rrule, rule_text

log = logging.getLogger("klynge.aggregator")
CALENDAR_PAST = timedelta(days=90)  # design.md: keep about 90 days of past events in the ICS
HORIZON = timedelta(days=548)  # 18 months of occurrences in the views and the JSON API
SERIES_LIMIT = 500
FILTER_CACHE = 32  # filtered calendars kept in memory (each key is village x category)
ATOM = "application/atom+xml"
ICS = "text/calendar"
OPML = "text/x-opml"


@dataclass(frozen=True)
class Cached:
    """A built document and its strong ETag."""

    body: bytes
    etag: str
    content_type: str


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


class Outputs:
    """Builds and caches the published documents for the current merged view."""

    def __init__(self, config: AggregatorConfig, merged: Callable[[], Awaitable[Merged]]) -> None:
        self.config = config
        self.merged = merged
        self.builds = 0  # documents built since start, for tests and the benchmark
        self._cache: OrderedDict[tuple[str, ...], asyncio.Future[Cached]] = OrderedDict()
        self._builder: Executor = ThreadPoolExecutor(1, thread_name_prefix="klynge-build")

    def invalidate(self) -> None:
        """Forget every built document (the merged view changed)."""
        self._cache.clear()

    def close(self) -> None:
        """Stop the builder thread."""
        self._builder.shutdown(wait=False, cancel_futures=True)

    async def get(self, key: tuple[str, ...], build: Callable[[Merged], Cached]) -> Cached:
        """Return the cached document for `key`, building it off the loop when needed."""
        future = self._cache.get(key)
        if future is None:
            future = asyncio.ensure_future(self._build(build))
            self._cache[key] = future
            while len(self._cache) > FILTER_CACHE + 3:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        try:
            return await asyncio.shield(future)
        except Exception:
            if self._cache.get(key) is future:
                del self._cache[key]  # a failed build is not cached
            raise

    async def _build(self, build: Callable[[Merged], Cached]) -> Cached:
        merged = await self.merged()
        self.builds += 1
        job = partial(_build_and_trim, build, merged)
        return await asyncio.get_running_loop().run_in_executor(self._builder, job)

    async def warm_up(self) -> None:
        """Build a one-entry feed and calendar off the loop, before any data is loaded.

        The first build imports modules lazily and fills library caches; made in the middle
        of a big build, those long-lived objects pin the allocator's arenas of its garbage:
        measured 13.5 MB kept after building the calendar of 20,000 entries, 2.5 MB after a
        warm-up.
        """
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._builder, partial(warm_up, self.config))

    async def feed(self) -> Cached:
        """Return the merged Atom feed."""
        return await self.get(("feed",), lambda m: build_feed(self.config, m))

    async def calendar(self, village: str = "", category: str = "") -> Cached:
        """Return the iCalendar file of the cluster, or of one village and/or category."""
        return await self.get(
            ("ics", village, category), lambda m: build_calendar(self.config, m, village, category)
        )


def _build_and_trim(build: Callable[[Merged], Cached], merged: Merged) -> Cached:
    # A build makes hundreds of thousands of short-lived objects (icalendar components, lxml
    # proxies) that live until it ends: the cyclic collector then runs full collections over
    # them with the GIL held, measured 74-222 ms each while building the feed and calendar of
    # 10,000 entries, the event loop stalled meanwhile. They die by reference count when the
    # build ends, so the collector is paused for the build.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        doc = build(merged)
    finally:
        if was_enabled:
            gc.enable()
    # What the build left in reference cycles is all in the youngest generation now (nothing
    # was collected meanwhile): collect just that, then give the heap back.
    started = time.perf_counter()
    gc.collect(0)
    log.debug("collected a build's cycles in %.0f ms", 1000 * (time.perf_counter() - started))
    release_memory()
    return doc


def warm_up(config: AggregatorConfig) -> None:
    """Build the feed and calendar of one made-up event, notice and tombstone (see Outputs)."""
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
    build_calendar(config, merged, "", "")


def release_memory() -> None:
    """Hand freed heap back to the OS (glibc keeps it otherwise).

    Building the feed of 20,000 entries peaks at about +210 MB of lxml/feedgen objects; once
    freed, glibc keeps the pages: measured 347 MB RSS after the build, 137 MB after a trim.
    """
    if _LIBC is not None:
        _LIBC.malloc_trim(0)  # ctypes releases the GIL during the call


M_ARENA_MAX = -8  # glibc's mallopt parameter


def limit_malloc_arenas() -> None:
    """Make every thread allocate from glibc's main arena; call before starting threads.

    glibc gives each thread that allocates its own arena, which malloc_trim cannot shrink as
    well: with stores loaded and documents built in worker threads, measured 90 MB RSS loaded
    and 146-150 MB built at 20,000 entries; with one arena 76 and 126 MB (the GIL serialises
    nearly all allocation anyway).
    """
    if _LIBC is not None and hasattr(_LIBC, "mallopt"):
        _LIBC.mallopt(M_ARENA_MAX, 1)


def _glibc() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _glibc()


def cached(body: bytes, content_type: str) -> Cached:
    """Return a Cached document with a content-derived strong ETag."""
    return Cached(body, f'"{hashlib.blake2b(body, digest_size=12).hexdigest()}"', content_type)


def respond(request: web.Request, doc: Cached, *, max_age: int = 60) -> web.Response:
    """Answer with the document, or 304 when the client already has this ETag."""
    headers = {"ETag": doc.etag, "Cache-Control": f"public, max-age={max_age}"}
    if doc.etag in _etags(request.headers.get("If-None-Match", "")):
        return web.Response(status=304, headers=headers)
    return web.Response(body=doc.body, headers={**headers, "Content-Type": _mime(doc)})


def _etags(header: str) -> set[str]:
    return {part.strip().removeprefix("W/") for part in header.split(",")} if header else set()


def _mime(doc: Cached) -> str:
    return f"{doc.content_type}; charset=utf-8"


def build_feed(config: AggregatorConfig, merged: Merged) -> Cached:
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
    return cached(write_feed(meta, merged.items, merged.tombstones), ATOM)


def build_calendar(config: AggregatorConfig, merged: Merged, village: str, category: str) -> Cached:
    """Return the cluster's events (recent and coming) as one iCalendar file."""
    cutoff = config.clock.now() - CALENDAR_PAST
    chosen = [e for e in merged.events if matches(e, village, category)]
    ends = rendered(chosen, lambda e: (e, e.series_end()), "the calendar")
    events = [event for event, end in ends if end >= cutoff]
    name = config.name if not village else f"{config.name}: {village}"
    url = f"{config.url.rstrip('/')}/calendar.ics"
    body = write_calendar(events, name=name, url=url, now=config.clock.now())
    return cached(body, ICS)


def build_opml(config: AggregatorConfig, sources: Iterable[tuple[str, str, str]]) -> Cached:
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
    return cached(body.encode(), OPML)


# --- JSON -------------------------------------------------------------------------------


def window(
    start: date | None, end: date | None, tz: str, now: datetime
) -> tuple[datetime, datetime]:
    """Return the UTC window of the JSON API and views: `from` .. `to`, capped at 18 months."""
    earliest = now - HORIZON  # far-past dates would only cost work (and overflow at year 1)
    today = now.astimezone(zone(tz)).date()  # the cluster's day, not UTC's (00:30 on 1 January)
    lo = as_utc(max(start, earliest.date()) if start else today, tz)
    hi = as_utc(min(end, (now + HORIZON).date()), tz) if end else lo + timedelta(days=31)
    return lo, max(lo, min(hi, now + HORIZON))


def occurrences(
    merged: Merged, lo: datetime, hi: datetime, village: str = "", category: str = ""
) -> list[Occurrence]:
    """Return the occurrences of the merged events in a window, at most 500 per series."""
    events = [e for e in merged.events if matches(e, village, category)]
    return expand(events, lo, hi, limit=SERIES_LIMIT, output="the occurrences of a page")


def place_json(place: Place | None) -> dict[str, Any] | None:
    """Return a Place as JSON, or None."""
    if place is None or place.is_empty():
        return None
    return {
        "name": place.name,
        "street": place.street,
        "postcode": place.postcode,
        "locality": place.locality,
        "lat": place.lat,
        "lon": place.lon,
    }


def _common_json(item: Item) -> dict[str, Any]:
    source = village_of(item)
    return {
        "id": item.id,
        "kind": item.kind,
        "title": item.title,
        "category": item.category,
        "organizer": item.organizer,
        "organizer_url": item.organizer_url,
        "url": item.url,
        "link": item.link,
        "sequence": item.sequence,
        "updated": format_when(item.updated),
        "village": source.title,
        "village_key": slug(source.title),
        "source": {"id": source.id, "title": source.title, "self_url": source.self_url},
    }


def occurrence_json(occurrence: Occurrence) -> dict[str, Any]:
    """Return one occurrence as the JSON API's event object."""
    event = occurrence.event
    return {
        **_common_json(event),
        "start": format_when(occurrence.start),
        "end": format_when(occurrence.end),
        "all_day": event.all_day,
        "timezone": event.timezone,
        "status": event.status,
        "rrule": rule_text(event.rrule),
        "description": event.description,
        "location": place_json(event.place),
    }


def notice_json(notice: Notice) -> dict[str, Any]:
    """Return one notice as the JSON API's notice object."""
    return {
        **_common_json(notice),
        "body": notice.body,
        "expires": format_when(notice.expires) if notice.expires else None,
        "related": notice.related,
    }


def current_notices(
    merged: Merged, now: datetime, village: str = "", category: str = ""
) -> list[Notice]:
    """Return the notices unexpired at `now`, newest first, filtered."""
    return [n for n in merged.notices if is_upcoming(n, now) and matches(n, village, category)]


def find_event(merged: Merged, entry_id: str) -> Event | None:
    """Return the merged event with this id, if any."""
    return next((e for e in merged.events if e.id == entry_id), None)


def event_window(event: Event, now: datetime) -> tuple[datetime, datetime]:
    """Return a window covering an event's coming occurrences (or its only one)."""
    start = min(now, as_utc(event.start, event.timezone))
    return start, now + HORIZON
