"""The paged merged feed (RFC 5005 §3) and a region reading it: real cluster and region servers.

A cluster's `/feed.atom` is the first page of its newest changes; a region walks the pages once,
then reads the first page only, and never infers a deletion from a page.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import aggregator_support as support
import aiohttp
import feedparser
import pytest
from aggregator_support import NOW, FeedServer, config_for, event, feed, notice
from aiohttp import web
from aiohttp.test_utils import TestServer

from aggregator.app import create_app
from aggregator.config import Source
from aggregator.keys import MERGED, REFRESHER
from aggregator.publish import documents
from aggregator.publish.paging import PAGE_SIZE
from aggregator.publish.pieces import Pieces
from aggregator.reader.merge import Content, Merged
from aggregator.reader.refresh import Outcome, Refresher, ingest
from aggregator.reader.walk import MAX_PAGES, WHOLE_WALK_EVERY
from klynge.atom.writer import FeedMeta, write_feed
from klynge.clock import Clock
from klynge.model import Event, FeedSource, Item, Tombstone

feed_server = support.feed_server  # fixtures
make_harness = support.make_harness
Serve = Callable[..., Awaitable[TestServer]]
VILLAGES = 5
ENTRIES = 50  # per village: 250 changes are three pages


def village_items(n: int) -> list[Item]:
    """Return village `n`'s entries, each edited at its own minute."""
    return [
        event(
            f"Arrangement {i} i landsby {n}",
            days=1 + i,
            updated=NOW - timedelta(minutes=n * 100 + i),
        )
        for i in range(ENTRIES)
    ]


@dataclass
class Tiers:
    """A cluster over the village feeds and a region over the cluster, both real servers."""

    villages: dict[str, list[Item]]
    cluster: TestServer
    region: TestServer
    requests: list[str]  # the paths (with queries) the region asked the cluster for
    serve: Serve
    region_dir: Path

    def village_url(self, n: int) -> str:
        return next(url for url in self.villages if url.endswith(f"/v{n}.atom"))

    async def refresh(self) -> list[Outcome]:
        """Refresh the cluster, then the region (whose requests are counted afresh)."""
        await _refresher(self.cluster).refresh_all()
        self.requests.clear()
        return await _refresher(self.region).refresh_all()

    def region_content(self) -> Content:
        refresher = _refresher(self.region)
        return next(iter(refresher.states.values())).content


def _refresher(server: TestServer) -> Refresher:
    return server.app[REFRESHER]


def _counting(requests: list[str]) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def count(
        request: web.Request, handler: Callable[..., Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path == "/feed.atom":
            requests.append(request.path_qs)
        return await handler(request)

    return count


async def _region(serve: Serve, directory: Path, cluster_url: str) -> TestServer:
    source = Source(f"{cluster_url}/feed.atom", "Klynge Syd", "aggregator")
    config = config_for(directory, [source], name="Region Midt", url="http://region.example")
    return await serve(create_app(config, periodic=False))


@pytest.fixture
async def tiers(
    feed_server: FeedServer,
    tmp_path: Path,
    aiohttp_server: Serve,
    unused_tcp_port_factory: Callable[[], int],
) -> Tiers:
    villages = {}
    for n in range(1, VILLAGES + 1):
        items = village_items(n)
        url = feed_server.set(f"/v{n}.atom", feed(f"Landsby{n}", items))
        villages[url] = items
    port = unused_tcp_port_factory()
    cluster_url = f"http://127.0.0.1:{port}"
    (tmp_path / "cluster").mkdir()
    (tmp_path / "region").mkdir()
    sources = [Source(url, f"Landsby {n}") for n, url in enumerate(villages, 1)]
    cluster_app = create_app(
        config_for(tmp_path / "cluster", sources, url=cluster_url), periodic=False
    )
    requests: list[str] = []
    cluster_app.middlewares.append(_counting(requests))
    cluster = await aiohttp_server(cluster_app, port=port)
    region = await _region(aiohttp_server, tmp_path / "region", cluster_url)
    return Tiers(villages, cluster, region, requests, aiohttp_server, tmp_path / "region")


def _copies(content: Content) -> dict[str, tuple[str, object, str]]:
    return {
        i: (item.title, item.updated, item.source.self_url if item.source else "")
        for i, item in content.entries.items()
    }


async def test_a_region_reads_every_page_once_and_gets_what_the_unpaged_feed_gives(
    tiers: Tiers,
) -> None:
    outcomes = await tiers.refresh()
    assert [o.ok for o in outcomes] == [True]
    assert len(tiers.requests) == 3 and tiers.requests[0] == "/feed.atom"
    assert all("?after=" in path for path in tiers.requests[1:])
    cluster = tiers.cluster.app[MERGED].merged()
    region = tiers.region.app[MERGED].merged()
    assert len(region.items) == VILLAGES * ENTRIES == len({i.id for i in region.items})
    assert {i.id for i in region.items} == {i.id for i in cluster.items}
    # The whole merged feed in one document, as before paging, read as a complete feed.
    source = next(iter(_refresher(tiers.region).config.sources))
    whole = write_feed(
        FeedMeta(id=source.url, title="Klynge Syd", self_url=source.url, updated=NOW),
        cluster.items,
        cluster.tombstones,
    )
    unpaged = ingest(whole, source, "Europe/Copenhagen", Content(), NOW).content
    assert _copies(tiers.region_content()) == _copies(unpaged)


async def test_a_change_and_deletions_reach_the_region_on_the_first_page_alone(
    tiers: Tiers, feed_server: FeedServer
) -> None:
    await tiers.refresh()
    url = tiers.village_url(1)
    items = tiers.villages[url]
    edited = replace(items[0], title="Loppemarked (flyttet)", updated=NOW)
    vanished, buried = items[1], items[2]
    rest = [edited, *items[3:]]
    tomb = Tombstone(buried.id, NOW, None)
    feed_server.set("/v1.atom", feed("Landsby1", rest, [tomb]))
    outcomes = await tiers.refresh()
    assert [o.ok for o in outcomes] == [True]
    assert tiers.requests == ["/feed.atom"]  # the first page only
    titles = {i.id: i.title for i in tiers.region.app[MERGED].merged().items}
    assert titles[edited.id] == "Loppemarked (flyttet)"
    assert vanished.id not in titles and buried.id not in titles
    assert len(titles) == VILLAGES * ENTRIES - 2
    # The vanished entry travels as a tombstone the cluster inferred; the region stores both.
    assert {vanished.id, buried.id} <= set(tiers.region_content().tombstones)

    # A restarted region reads its stored state and again takes the first page only.
    await tiers.region.close()
    region = await _region(
        tiers.serve, tiers.region_dir, str(tiers.cluster.make_url("")).rstrip("/")
    )
    tiers.region = region
    again = replace(rest[3], title="Strikkecafé (ny tid)", updated=NOW + timedelta(seconds=5))
    feed_server.set("/v1.atom", feed("Landsby1", [*rest[:3], again, *rest[4:]], [tomb]))
    outcomes = await tiers.refresh()
    assert [o.ok for o in outcomes] == [True] and tiers.requests == ["/feed.atom"]
    titles = {i.id: i.title for i in region.app[MERGED].merged().items}
    assert titles[again.id] == "Strikkecafé (ny tid)" and len(titles) == VILLAGES * ENTRIES - 2


# --- a hostile paged source --------------------------------------------------------------


def page(server: FeedServer, path: str, items: list[Item], next_path: str = "") -> bytes:
    """Return a page of a paged feed served by the feed server, linking to `next_path`."""
    first = server.url("/feed.atom")
    meta = FeedMeta(
        id="urn:klynge:fjendtlig",
        title="Fjendtlig",
        self_url=server.url(path),
        updated=NOW,
        first_url=first,
        next_url=server.url(next_path) if next_path.startswith("/") else next_path,
    )
    return write_feed(meta, items)


def _fresh(title: str) -> list[Item]:
    return [event(title, updated=NOW)]


def _loop(server: FeedServer) -> None:
    server.set("/feed.atom", page(server, "/feed.atom", _fresh("Side 1"), "/p2"))
    server.set("/p2", page(server, "/p2", _fresh("Side 2"), "/feed.atom"))


def _endless(server: FeedServer) -> None:
    async def deep(request: web.Request) -> web.StreamResponse:
        n = int(request.query.get("n", "1"))
        body = page(server, f"/deep?n={n}", _fresh(f"Side {n}"), f"/deep?n={n + 1}")
        return web.Response(body=body, content_type="application/atom+xml")

    server.set("/feed.atom", page(server, "/feed.atom", _fresh("Side 0"), "/deep?n=1"))
    server.routes["/deep"] = support.Route(handler=deep)  # 10,000 pages and more


def _huge(server: FeedServer) -> None:
    padding = b"<!--" + b"x" * 3_000_000 + b"-->"  # past the 2 MB cap of the test limits
    server.set("/feed.atom", page(server, "/feed.atom", _fresh("Side 1"), "/p2"))
    server.set("/p2", page(server, "/p2", _fresh("Side 2")) + padding)


def _missing(server: FeedServer) -> None:
    server.set("/feed.atom", page(server, "/feed.atom", _fresh("Side 1"), "/p2"))
    server.set("/p2", page(server, "/p2", _fresh("Side 2"), "/p3"))  # /p3 answers 404


def _elsewhere(server: FeedServer) -> None:
    server.set(
        "/feed.atom", page(server, "/feed.atom", _fresh("Side 1"), "http://other.example/p2")
    )


HOSTILE = [
    ("a next link that loops", _loop, "leads back to page", 2),
    ("10,000 pages", _endless, f"more than {MAX_PAGES} pages", MAX_PAGES),
    ("a huge page", _huge, "page 2 of the paged feed", 2),
    ("a page that 404s mid walk", _missing, "page 3 of the paged feed", 3),
    ("a next link to another host", _elsewhere, "leaves the feed's host", 1),
]


@pytest.mark.parametrize(("make", "words", "fetched"), [h[1:] for h in HOSTILE],
                         ids=[h[0] for h in HOSTILE])  # fmt: skip
async def test_a_hostile_paged_source_fails_clearly_and_keeps_what_was_stored(
    feed_server: FeedServer,
    tmp_path: Path,
    make: Callable[[FeedServer], None],
    words: str,
    fetched: int,
    make_harness: Callable[..., Awaitable[support.Harness]],
) -> None:
    stored = [event("Juletræ"), notice("Hjælpere søges")]
    url = feed_server.set("/feed.atom", page(feed_server, "/feed.atom", stored))
    source = Source(url, "Fjendtlig", "aggregator")
    h = await make_harness(config_for(tmp_path, [source]))
    [first] = await h.refresher.refresh_all()
    assert first.ok and len(h.refresher.states[url].content.entries) == 2
    make(feed_server)
    feed_server.hits.clear()
    [outcome] = await h.refresher.refresh_all()
    assert not outcome.ok and words in outcome.words
    assert "so this fetch was not used" in outcome.words or "failed" in outcome.words
    state = h.refresher.states[url]
    assert {i.title for i in state.content.entries.values()} == {"Juletræ", "Hjælpere søges"}
    assert state.failures == 1
    assert sum(feed_server.hits.values()) <= fetched + 1  # bounded: the walk stopped there


# --- the window's bytes --------------------------------------------------------------------


def _many(count: int) -> Merged:
    """Return a merged view of `count` entries and a tenth as many tombstones, newest first."""
    model = replace(
        event("Arrangement"), source=FeedSource("urn:klynge:v", "V", None, "http://v.example/f")
    )
    items = []
    for n in range(count):
        twin = copy.copy(model)  # a validated entry under another id: no validation per copy
        object.__setattr__(twin, "id", f"urn:uuid:00000000-0000-4000-8000-{n:012x}")
        object.__setattr__(twin, "updated", NOW - timedelta(seconds=n))
        items.append(twin)
    tombs = [
        Tombstone(f"urn:uuid:10000000-0000-4000-8000-{n:012x}", NOW - timedelta(seconds=10 * n + 5))
        for n in range(count // 10)
    ]
    return Merged(tuple(items), tuple(tombs))


def test_a_walk_of_every_page_keeps_the_first_pages_pieces_only(tmp_path: Path) -> None:
    config = config_for(tmp_path, [], url="http://region.example")
    merged = _many(1_000)
    pieces, after, walked = Pieces(), "", 0
    while True:
        page = documents.build_feed(config, merged, pieces, after=after)
        assert page == documents.build_feed(config, merged, Pieces(), after=after)
        walked += 1
        after = pieces.changes.page(merged, after).next_cursor
        if not after:
            break
    assert walked > 5 and 0 < len(pieces.atom) <= PAGE_SIZE
    rendered = pieces.atom.rendered
    documents.build_feed(config, merged, pieces)
    assert pieces.atom.rendered == rendered  # the first page's pieces were kept


def test_the_window_stays_small_at_fifty_thousand_entries(tmp_path: Path) -> None:
    config = config_for(tmp_path, [], url="http://region.example")
    merged = _many(50_000)
    first = documents.build_feed(config, merged)
    assert len(first) <= 5_000_000 and len(first) < 200_000  # one page, about 120 KB
    assert first.count(b"<entry>") + first.count(b"<at:deleted-entry") == PAGE_SIZE
    assert b"<at:deleted-entry" in first  # tombstones travel among the newest changes
    assert b'rel="next"' in first and b'rel="first"' in first
    parsed = feedparser.parse(io.BytesIO(first))
    assert not parsed.bozo and len(parsed.entries) == first.count(b"<entry>")
    assert {link["rel"] for link in parsed.feed.links} >= {"self", "first", "next", "alternate"}
    assert isinstance(merged.items[0], Event)


async def test_every_page_answers_304_to_its_etag_and_a_made_up_cursor_400(tiers: Tiers) -> None:
    await tiers.refresh()
    later = next(path for path in tiers.requests if "?after=" in path)
    async with aiohttp.ClientSession() as session:
        for path in ("/feed.atom", later):
            async with session.get(tiers.cluster.make_url(path)) as first:
                body, etag = await first.read(), first.headers["ETag"]
            assert first.status == 200 and b'rel="first"' in body
            headers = {"If-None-Match": etag}
            async with session.get(tiers.cluster.make_url(path), headers=headers) as again:
                assert again.status == 304
        async with session.get(tiers.cluster.make_url("/feed.atom?after=12~")) as bad:
            assert bad.status == 400 and "cursor" in await bad.text()


async def test_an_edit_that_reached_the_cluster_late_arrives_with_the_daily_whole_walk(
    tiers: Tiers, feed_server: FeedServer
) -> None:
    await tiers.refresh()
    url = tiers.village_url(3)
    late = event("Sent ankommet", days=20, updated=NOW - timedelta(days=30))
    feed_server.set("/v3.atom", feed("Landsby3", [*tiers.villages[url], late]))
    await tiers.refresh()
    assert tiers.requests == ["/feed.atom"]  # its place is behind the pages already read
    assert late.id not in tiers.region_content().entries  # the known limit (feed-format.md)
    refresher = _refresher(tiers.region)
    a_day_later = Clock(WHOLE_WALK_EVERY + timedelta(minutes=1))
    refresher.config = replace(refresher.config, clock=a_day_later)
    await tiers.refresh()
    assert len(tiers.requests) == 3 and late.id in tiers.region_content().entries


# --- what a missing entry means: a table over complete feeds and pages --------------------

VILLAGE_URL = "http://osterby.example/feed.atom"
MARKET, CHOIR = event("Loppemarked"), event("Kor", days=5)
ENDED = event("Sommerfest", days=-40)  # ended 40 days ago: past the village feed's 30 days
SPARE = [event(f"Møde {n}", days=10 + n) for n in range(3)]


def _read(items: list[Item], old: Content, *, paged: bool = False) -> Content:
    source = Source(VILLAGE_URL, "Østerby")
    meta = FeedMeta(id="urn:klynge:osterby", title="Østerby", self_url=VILLAGE_URL, updated=NOW)
    if paged:
        meta = replace(meta, first_url=VILLAGE_URL)
    return ingest(write_feed(meta, items), source, "Europe/Copenhagen", old, NOW).content


# (case, first read, second read, paged, entries after, inferred tombstones after)
ABSENCE = [
    ("a vanished upcoming entry is deleted with a tombstone",
     [MARKET, CHOIR, *SPARE], [CHOIR, *SPARE], False, {"Kor", "Møde 0", "Møde 1", "Møde 2"},
     {MARKET.id}),
    ("an ended event that left the feed is kept, without a tombstone",
     [ENDED, MARKET, *SPARE], [MARKET, *SPARE], False,
     {"Sommerfest", "Loppemarked", "Møde 0", "Møde 1", "Møde 2"}, set()),
    ("a mass removal is held back, without tombstones",
     [MARKET, CHOIR, *SPARE], [CHOIR], False,
     {"Loppemarked", "Kor", "Møde 0", "Møde 1", "Møde 2"}, set()),
    ("an entry missing from a page is kept",
     [MARKET, CHOIR, *SPARE], [CHOIR], True, {"Loppemarked", "Kor", "Møde 0", "Møde 1", "Møde 2"},
     set()),
]  # fmt: skip


@pytest.mark.parametrize(("first", "second", "paged", "titles", "tombs"),
                         [a[1:] for a in ABSENCE], ids=[a[0] for a in ABSENCE])  # fmt: skip
def test_what_an_entry_missing_from_a_read_means(
    first: list[Item], second: list[Item], paged: bool, titles: set[str], tombs: set[str]
) -> None:
    before = _read(first, Content(), paged=paged)
    after = _read(second, before, paged=paged)
    assert {i.title for i in after.entries.values()} == titles
    assert set(after.tombstones) == tombs
    for tomb in after.tombstones.values():
        assert tomb.source is not None and tomb.source.self_url == VILLAGE_URL


def test_an_entry_back_in_its_complete_feed_drops_the_inferred_tombstone() -> None:
    gone = _read([CHOIR, *SPARE], _read([MARKET, CHOIR, *SPARE], Content()))
    assert MARKET.id in gone.tombstones and MARKET.id not in gone.entries
    back = _read([MARKET, CHOIR, *SPARE], gone)
    assert MARKET.id in back.entries and MARKET.id not in back.tombstones
