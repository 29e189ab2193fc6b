"""Helpers for the aggregator tests: real feeds made with klynge.atom.writer, a real feed server."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from clock_support import utc_now
from patience import eventually as eventually  # re-exported

from aggregator.app import create_app
from aggregator.config import AggregatorConfig, Limits, Source
from aggregator.keys import MERGED, OUTPUTS, REFRESHER
from aggregator.publish import documents
from aggregator.publish.merged import MergedView
from aggregator.publish.paging import place_of
from aggregator.reader.fetcher import Fetcher, FetchLimits
from aggregator.reader.merge import Merged
from aggregator.reader.refresh import Refresher
from aggregator.store.sources import Store
from klynge.atom.writer import FeedMeta, write_feed
from klynge.model import Event, Item, Notice, Place, Tombstone, new_id

NOW = utc_now()
FAST = Limits(
    connect_timeout=2,
    total_timeout=3,
    max_compressed=1_000_000,
    max_decompressed=2_000_000,
    jitter=0,
)


def event(title: str = "Fællesspisning", *, days: int = 3, **kwargs: Any) -> Event:
    """Return an upcoming event `days` from now."""
    start = (NOW + timedelta(days=days)).replace(minute=0, second=0)
    values: dict[str, Any] = {
        "id": new_id(),
        "title": title,
        "updated": NOW - timedelta(hours=1),
        "start": start,
        "end": start + timedelta(hours=2),
        "category": "community",
        "place": Place(name="Forsamlingshuset", locality="Østerby"),
    }
    return Event(**(values | kwargs))


def notice(title: str = "Samkørsel til Aarhus", **kwargs: Any) -> Notice:
    """Return an unexpired notice."""
    values: dict[str, Any] = {
        "id": new_id(),
        "title": title,
        "updated": NOW - timedelta(hours=1),
        "body": "<p>Afgang kl. 7</p>",
        "category": "carpool",
        "expires": NOW + timedelta(days=10),
    }
    return Notice(**(values | kwargs))


def feed(
    name: str, items: Iterable[Item], tombstones: Iterable[Tombstone] = (), *, url: str = ""
) -> bytes:
    """Return a Klynge Atom feed of `items`, as a village node would publish it."""
    self_url = url or f"http://{name.lower()}.example/feed.atom"
    meta = FeedMeta(id=f"urn:klynge:{name.lower()}", title=name, self_url=self_url, updated=NOW)
    return write_feed(meta, items, tombstones)


@dataclass
class Route:
    """What the feed server answers on one path."""

    body: bytes = b""
    content_type: str = "application/atom+xml"
    status: int = 200
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]] | None = None


@dataclass
class FeedServer:
    """A real loopback server for feeds; routes can change between fetches."""

    server: TestServer
    routes: dict[str, Route] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)

    def url(self, path: str) -> str:
        """Return the absolute URL of `path`."""
        return str(self.server.make_url(path))

    def set(self, path: str, body: bytes, **kwargs: Any) -> str:
        """Serve `body` at `path` (with an ETag) and return its URL."""
        self.routes[path] = Route(body, **kwargs)
        return self.url(path)


async def _serve(server: FeedServer, request: web.Request) -> web.StreamResponse:
    server.hits[request.path] = server.hits.get(request.path, 0) + 1
    route = server.routes.get(request.path)
    if route is None:
        return web.Response(status=404, text="not found")
    if route.handler is not None:
        return await route.handler(request)
    etag = f'"{hashlib.sha1(route.body).hexdigest()}"'
    if route.status == 200 and request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers={"ETag": etag})
    return web.Response(
        body=route.body,
        status=route.status,
        content_type=route.content_type,
        headers={"ETag": etag} if route.status == 200 else {},
    )


@pytest.fixture
async def feed_server(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> FeedServer:
    """Start a real feed server on loopback."""
    app = web.Application()
    holder: list[FeedServer] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        return await _serve(holder[0], request)

    app.router.add_route("*", "/{tail:.*}", handle)
    server = FeedServer(await aiohttp_server(app))
    holder.append(server)
    return server


def config_for(tmp_path: Path, sources: Iterable[Source], **kwargs: Any) -> AggregatorConfig:
    """Return an aggregator config in `tmp_path` with test-friendly limits."""
    data = tmp_path / "agg"
    data.mkdir(exist_ok=True)
    values: dict[str, Any] = {
        "data_dir": data,
        "name": "Klynge Syd",
        "url": "http://syd.example",
        "limits": FAST,
    }
    return AggregatorConfig(sources=tuple(sources), **(values | kwargs))


@dataclass
class Harness:
    """A Refresher wired to a real store, fetcher and merged view, for tests below HTTP."""

    refresher: Refresher
    fetcher: Fetcher
    view: MergedView

    async def close(self) -> None:
        """Close everything."""
        await self.refresher.close()
        self.view.close()
        await self.fetcher.close()


async def harness(config: AggregatorConfig) -> Harness:
    """Return a loaded Refresher for `config`."""
    from aggregator.app import fetch_limits

    fetcher = Fetcher(fetch_limits(config))
    refresher = Refresher(config, Store(config.data_dir), fetcher)
    view = MergedView(ready=refresher.ready)
    refresher.on_change = view.changed
    await refresher.load()
    return Harness(refresher, fetcher, view)


@pytest.fixture
async def make_harness() -> AsyncIterator[Callable[[AggregatorConfig], Awaitable[Harness]]]:
    """Return a factory of Harnesses that are closed after the test."""
    made: list[Harness] = []

    async def make(config: AggregatorConfig) -> Harness:
        made.append(await harness(config))
        return made[-1]

    yield make
    for h in made:
        await h.close()


async def start_aggregator(
    aiohttp_client: Callable[..., Awaitable[Any]], config: AggregatorConfig
) -> Any:
    """Start the aggregator app (polling only through pings and explicit refreshes)."""
    client = await aiohttp_client(create_app(config, periodic=False))
    return client


def refresher_of(client: Any) -> Refresher:
    """Return the Refresher of a running aggregator test client."""
    return client.server.app[REFRESHER]


def view_of(client: Any) -> MergedView:
    """Return the merged view of a running aggregator test client."""
    return client.server.app[MERGED]


def outputs_of(client: Any) -> Any:
    """Return the Outputs of a running aggregator test client."""
    return client.server.app[OUTPUTS]


def merged_of(*items: Item, tombstones: Iterable[Tombstone] = ()) -> Merged:
    """Return a merged view of these very items and tombstones in the merge's order.

    Both newest first (aggregator.reader.merge.Merged), as the merged feed's pages read them.
    """
    ordered = sorted(items, key=place_of, reverse=True)
    return Merged(tuple(ordered), tuple(sorted(tombstones, key=place_of, reverse=True)))


__all__ = ["FetchLimits", "eventually", "feed_server", "make_harness"]


def calendar_bytes(*args: Any, **kwargs: Any) -> bytes:
    """Return the aggregator's calendar as one file (documents.calendar_chunks, joined)."""
    return b"".join(documents.calendar_chunks(*args, **kwargs))
