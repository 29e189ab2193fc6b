"""The village's published documents: the Atom feed and the ICS calendar, cached as bytes.

A document is rebuilt only when the data changed (the store's listeners invalidate it) or when
an entry's time in the window ran out; otherwise every request is served from the cached
bytes with a strong ETag, so conditional GETs (RFC 9110 §13.1) cost almost nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import TypeVar

from aiohttp import web

from klynge.atom.writer import FeedMeta, write_feed
from klynge.ical.writer import write_calendar
from klynge.model import Event, Item, Notice, Tombstone
from klynge.render_guard import rendered
from node.config import NodeConfig
from node.serialize import short_id
from node.store import Store

FEED_WINDOW = timedelta(days=30)  # design.md: ended events and tombstones stay 30 days
CALENDAR_WINDOW = timedelta(days=90)  # past events kept so subscribers' calendars keep them
FEED_TYPE = "application/atom+xml"
CALENDAR_TYPE = "text/calendar"
# `no-cache` lets caches store the feed but makes them revalidate: after a ping the aggregator
# must see the new version at once, and a 304 costs little.
CACHE_CONTROL = "public, no-cache"
NEVER = datetime.max.replace(tzinfo=UTC)
ItemT = TypeVar("ItemT", bound=Event | Notice)


@dataclass(frozen=True)
class Published:
    """One built document with its validators."""

    body: bytes
    etag: str
    last_modified: datetime
    valid_until: datetime
    version: int


def entry_link(config: NodeConfig, item: Item) -> str:
    """Return the public page URL of an event or notice."""
    section = "events" if item.kind == "event" else "notices"
    return f"{config.public_url}/{section}/{short_id(item.id)}"


def linked(config: NodeConfig, item: ItemT) -> ItemT:
    """Return the item with its public page link set."""
    return replace(item, link=entry_link(config, item))


def feed_window(store: Store, now: datetime) -> tuple[list[Item], list[Tombstone], datetime]:
    """Select what the feed holds now, and when that selection next changes by itself."""
    items: list[Item] = []
    until = NEVER
    for item, leaves in rendered(store.items(), _with_leaving, "the feed"):
        if leaves > now:
            items.append(item)
            until = min(until, leaves)
    tombs = [t for t in store.tombstones() if t.deleted + FEED_WINDOW > now]
    until = min([until, *(t.deleted + FEED_WINDOW for t in tombs)])
    return items, tombs, until


def _with_leaving(item: Item) -> tuple[Item, datetime]:
    # A notice leaves when it expires; an event 30 days after its last occurrence ends.
    return item, _leaves_feed(item) + (FEED_WINDOW if isinstance(item, Event) else timedelta())


def _leaves_feed(item: Item) -> datetime:
    if isinstance(item, Event):
        return item.series_end()
    return item.expires if item.expires is not None else NEVER - FEED_WINDOW


def calendar_window(store: Store, now: datetime) -> tuple[list[Event], datetime]:
    """Select the events the calendar holds now, and when that next changes by itself."""
    cutoff = now - CALENDAR_WINDOW
    ends = rendered(store.events(), lambda e: (e, e.series_end()), "the calendar")
    kept = [(event, end) for event, end in ends if end >= cutoff]
    until = min((end + CALENDAR_WINDOW for _, end in kept), default=NEVER)
    return [event for event, _ in kept], until


class Publisher:
    """Builds the feed and calendar on demand after a change and serves cached bytes."""

    def __init__(
        self, config: NodeConfig, store: Store, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock or config.clock.now
        self.version = 0
        self._cache: dict[str, Published] = {}
        self._lock = asyncio.Lock()
        store.listeners.append(self.invalidate)

    def invalidate(self) -> None:
        """Mark the cached documents as stale (called by the store after every change)."""
        self.version += 1

    async def feed(self) -> Published:
        """Return the current feed, rebuilding it only when stale."""
        return await self._get("feed", self._build_feed)

    async def calendar(self) -> Published:
        """Return the current calendar, rebuilding it only when stale."""
        return await self._get("calendar", self._build_calendar)

    def _fresh(self, name: str) -> Published | None:
        cached = self._cache.get(name)
        if cached and cached.version == self.version and self.clock() < cached.valid_until:
            return cached
        return None

    async def _get(self, name: str, build: Callable[[datetime, int], Published]) -> Published:
        cached = self._fresh(name)
        if cached is not None:
            return cached
        async with self._lock:  # one build at a time; waiters then find it fresh
            cached = self._fresh(name)
            if cached is None:
                cached = await asyncio.to_thread(build, self.clock(), self.version)
                self._cache[name] = cached
        return cached

    def _modified(self, name: str, now: datetime) -> datetime:
        # The data's last change, or the moment the window last moved (content changed then).
        previous = self._cache.get(name)
        moved = previous.valid_until if previous and previous.valid_until <= now else None
        changed = self.store.changed
        return max(changed, moved) if moved is not None else changed

    def _build_feed(self, now: datetime, version: int) -> Published:
        items, tombs, until = feed_window(self.store, now)
        items.sort(key=lambda i: (i.updated, i.id), reverse=True)
        modified = self._modified("feed", now)
        body = write_feed(self._meta(modified), self._linked(items, "the feed"), tombs)
        return _published(body, modified, until, version)

    def _linked(self, items: list[Item], output: str) -> list[Item]:
        return rendered(items, lambda item: linked(self.config, item), output)

    def _meta(self, modified: datetime) -> FeedMeta:
        return FeedMeta(
            id=self.config.feed_id,
            title=self.config.name,
            self_url=self.config.feed_url,
            updated=modified,
            author=self.config.name,
            alternate_url=f"{self.config.public_url}/",
            hub_urls=self.config.ping_urls,
        )

    def _build_calendar(self, now: datetime, version: int) -> Published:
        events, until = calendar_window(self.store, now)
        body = write_calendar(
            rendered(events, lambda e: linked(self.config, e), "the calendar"),
            name=self.config.name,
            url=f"{self.config.public_url}/calendar.ics",
            now=now,
        )
        return _published(body, self._modified("calendar", now), until, version)


def _published(body: bytes, modified: datetime, until: datetime, version: int) -> Published:
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return Published(body, etag, modified.replace(microsecond=0), until, version)


def not_modified(request: web.Request, doc: Published) -> bool:
    """Tell whether the client's copy is current: by its ETag only.

    If-Modified-Since is ignored (RFC 9110 §13.1.3 lets a server prefer the entity tag): its
    whole seconds cannot tell apart two edits in one second, so the client that fetched
    between them would get 304 for the second one and miss it until the next change.
    """
    if request.if_none_match is None:
        return False
    wanted = doc.etag.strip('"')
    return any(tag.value in (wanted, "*") for tag in request.if_none_match)


def respond(
    request: web.Request, doc: Published, content_type: str, links: str = ""
) -> web.Response:
    """Answer a GET of a published document: 304 when current, else the cached bytes."""
    headers = {
        "ETag": doc.etag,
        "Last-Modified": format_datetime(doc.last_modified.astimezone(UTC), usegmt=True),
        "Cache-Control": CACHE_CONTROL,
    }
    if links:
        headers["Link"] = links
    if not_modified(request, doc):
        return web.Response(status=304, headers=headers)
    headers["Content-Type"] = f"{content_type}; charset=utf-8"
    return web.Response(body=doc.body, headers=headers)


def feed_links(config: NodeConfig) -> str:
    """Return the HTTP Link header naming the feed's self URL and its hubs (WebSub §4)."""
    parts = [f'<{config.feed_url}>; rel="self"']
    parts += [f'<{url}>; rel="hub"' for url in config.ping_urls]
    return ", ".join(parts)
