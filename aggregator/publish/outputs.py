"""The aggregator's published documents: built once per change, served as cached bytes.

`/feed.atom` and `/calendar.ics` (per filter) are built in one builder thread on the first
request after a change, and then served from memory with a strong ETag, so a 304 costs no
building at all (design.md: aiohttp answers 304s about 2.5x faster than 200s). A build joins
each entry's kept pieces (aggregator.publish.pieces), so after one village changes it renders
that village's entries only; the first build after start renders them all, off the event loop.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from aiohttp import web

from aggregator.config import AggregatorConfig
from aggregator.publish import documents, piece_files
from aggregator.publish.documents import Key, content_type
from aggregator.publish.documents import matches as matches
from aggregator.publish.documents import slug as slug
from aggregator.publish.documents import village_of as village_of
from aggregator.publish.parts import Parts
from aggregator.publish.pieces import Pieces
from aggregator.reader.merge import Merged, is_upcoming
from klynge.carpool import carpool_doc
from klynge.model import Event, Item, Notice, Place, as_utc, format_when, zone
from klynge.recurrence import Occurrence, expand
from klynge.repeat_rule import rule_text

HORIZON = timedelta(days=548)  # 18 months of occurrences in the views and the JSON API
SERIES_LIMIT = 500
_BETWEEN = b", "  # between two rows of /api/events, as json.dumps writes a list
FILTER_CACHE = 32  # filtered calendars kept in memory (each key is village x category)


@dataclass(frozen=True)
class Cached:
    """A built document: its bytes as the pieces they are made of, with a strong ETag."""

    parts: Parts
    content_type: str

    @property
    def etag(self) -> str:
        """The document's strong ETag."""
        return self.parts.etag

    @property
    def body(self) -> bytes:
        """The document's bytes joined (a copy: serving writes the pieces)."""
        return self.parts.joined()


class Outputs:
    """Builds (in one builder thread) and caches the published documents of the merged view."""

    def __init__(
        self,
        config: AggregatorConfig,
        merged: Callable[[], Awaitable[Merged]],
        settle: Callable[[], None] = lambda: None,
    ) -> None:
        self.config = config
        self.merged = merged
        self.settle = settle  # called after each build, in its thread (aggregator.tuning)
        self.builds = 0  # documents built since start, for tests and the benchmark
        # Used by the builder thread only; the VEVENTs are also kept on disk for the next start.
        self.pieces = Pieces(occurrence_row, kept_in=config.data_dir / piece_files.DIRECTORY)
        self._cache: OrderedDict[Key, asyncio.Future[Cached]] = OrderedDict()
        self._builder = ThreadPoolExecutor(1, thread_name_prefix="klynge-build")

    def invalidate(self) -> None:
        """Forget every built document (the merged view changed)."""
        self._cache.clear()

    def close(self) -> None:
        """Stop the builder thread (a build under way finishes; no new one starts)."""
        self._builder.shutdown(wait=False, cancel_futures=True)

    async def get(self, key: Key) -> Cached:
        """Return the cached document for `key`, building it when needed."""
        future = self._cache.get(key)
        if future is None:
            future = asyncio.ensure_future(self._build(key))
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

    async def _build(self, key: Key) -> Cached:
        merged = await self.merged()
        self.builds += 1
        now = self.config.clock.now()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._builder, self._build_in_thread, merged, key, now)

    async def events_json(
        self, merged: Merged, lo: datetime, hi: datetime, village: str, category: str
    ) -> Parts:
        """Return the /api/events body of a window, as the kept rows in order (builder thread)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._builder, self._events_in_thread, merged, lo, hi, village, category
        )

    def _events_in_thread(
        self, merged: Merged, lo: datetime, hi: datetime, village: str, category: str
    ) -> Parts:
        self.pieces.take(merged)  # entries that left the view take their pieces along
        rows = self.pieces.rows.rows(occurrences(merged, lo, hi, village, category))
        body = Parts.of(events_chunks(lo, hi, rows))  # the ETag too, off the loop
        self.settle()  # the rows are kept
        return body

    def _build_in_thread(self, merged: Merged, key: Key, now: datetime) -> Cached:
        self.pieces.take(merged)  # entries that left the view take their pieces along
        # The ETag too: hashing a 24 MB calendar takes ~0.05 s, which must not hold the loop.
        chunks = documents.build(self.config, merged, key, now, self.pieces)
        doc = Cached(Parts.of(chunks), content_type(key))
        self.settle()  # the pieces are kept
        return doc

    async def feed(self) -> Cached:
        """Return the merged Atom feed."""
        return await self.get(("feed",))

    async def calendar(self, village: str = "", category: str = "") -> Cached:
        """Return the iCalendar file of the cluster, or of one village and/or category."""
        return await self.get(("ics", village, category))


def build_opml(config: AggregatorConfig, sources: Iterable[tuple[str, str, str]]) -> Cached:
    """Return the polled feeds as an OPML 2.0 subscription list (url, title, kind)."""
    return Cached(Parts.of([documents.build_opml(config, sources)]), documents.OPML)


def respond(request: web.Request, doc: Cached, *, max_age: int = 60) -> web.Response:
    """Answer with the document, or 304 when the client already has this ETag."""
    headers = {"ETag": doc.etag, "Cache-Control": f"public, max-age={max_age}"}
    if doc.etag in _etags(request.headers.get("If-None-Match", "")):
        return web.Response(status=304, headers=headers)
    mime = _mime(doc)
    return web.Response(body=doc.parts.body(mime), headers={**headers, "Content-Type": mime})


def _etags(header: str) -> set[str]:
    return {part.strip().removeprefix("W/") for part in header.split(",")} if header else set()


def _mime(doc: Cached) -> str:
    return f"{doc.content_type}; charset=utf-8"


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
    events = [e for e in merged.in_window(lo, hi) if matches(e, village, category)]
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
    out = {
        **_common_json(event),
        "title": occurrence.title,  # a changed date of a series has its own (docs/api.md)
        "start": format_when(occurrence.start),
        "end": format_when(occurrence.end),
        "all_day": event.all_day,
        "timezone": event.timezone,
        "status": occurrence.status,
        "rrule": rule_text(event.rrule),
        "description": occurrence.description,
        "location": place_json(occurrence.place),
    }
    if occurrence.original is not None:
        out["original_start"] = format_when(occurrence.original)
        out["moved"] = occurrence.moved
    return out


def occurrence_row(occurrence: Occurrence) -> bytes:
    """Return one occurrence's JSON object as UTF-8 bytes, as json.dumps writes it in a list."""
    return json.dumps(occurrence_json(occurrence), ensure_ascii=False).encode()


def events_chunks(lo: datetime, hi: datetime, rows: Iterable[bytes]) -> list[bytes]:
    """Return the /api/events body, what json.dumps of {from, to, events} writes, as the kept
    rows and what goes between them, in order."""
    head = json.dumps({"from": lo.isoformat(), "to": hi.isoformat()}, ensure_ascii=False)
    chunks = [head[:-1].encode() + b', "events": [']
    for row in rows:
        chunks += (row, _BETWEEN)
    if len(chunks) > 1:
        chunks.pop()  # no separator after the last row
    chunks.append(b"]}")
    return chunks


def notice_json(notice: Notice) -> dict[str, Any]:
    """Return one notice as the JSON API's notice object."""
    return {
        **_common_json(notice),
        "body": notice.body,
        "expires": format_when(notice.expires) if notice.expires else None,
        "related": notice.related,
        **({"carpool": carpool_doc(notice.carpool)} if notice.carpool else {}),
    }


def current_notices(
    merged: Merged, now: datetime, village: str = "", category: str = ""
) -> list[Notice]:
    """Return the notices unexpired at `now`, newest first, filtered."""
    return [n for n in merged.notices if is_upcoming(n, now) and matches(n, village, category)]


def find_event(merged: Merged, entry_id: str) -> Event | None:
    """Return the merged event with this id, if any."""
    found = merged.by_id.get(entry_id)
    return found if isinstance(found, Event) else None


def event_window(event: Event, now: datetime) -> tuple[datetime, datetime]:
    """Return a window covering an event's coming occurrences (or its only one)."""
    start = min(now, as_utc(event.start, event.timezone))
    return start, now + HORIZON
