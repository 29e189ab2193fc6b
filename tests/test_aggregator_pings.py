"""Pings, coalesced and bounded, and the pings an aggregator sends to the ones that read it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aggregator_support as support
import aiohttp
import pytest
import time_machine
from aggregator_support import (
    FAST,
    FeedServer,
    config_for,
    event,
    eventually,
    feed,
)
from aiohttp import web
from aiohttp.test_utils import TestServer
from clock_support import utc_now

from aggregator.app import create_app
from aggregator.config import AggregatorConfig, Source, from_mapping, to_toml
from aggregator.keys import MERGED, SCHEDULER, UPSTREAM
from aggregator.reader.scheduler import _PingState
from klynge.errors import ConfigError

feed_server = support.feed_server  # a fixture
Serve = Callable[..., Awaitable[TestServer]]

# (name, earlier fetch starts as seconds before now, per minute, expected wait)
WAITS = [
    ("never fetched", [], 20, 0.0),
    ("a fetch just started: no gap", [0.0], 20, 0.0),
    ("budget spent", [50.0, 40.0, 1.0], 3, 10.0),
    ("budget spent, the oldest nearly a minute ago", [59.0, 1.0, 0.0], 3, 1.0),
    ("a start a minute ago no longer counts", [60.0, 1.0], 2, 0.0),
    ("starts after now (the clock was set back) no longer count", [-5.0, -3.0], 2, 0.0),
]


@pytest.mark.parametrize(("starts", "per_minute", "expected"),
                         [w[1:] for w in WAITS], ids=[w[0] for w in WAITS])  # fmt: skip
def test_the_next_ping_fetch_waits_only_for_the_minute_budget(
    starts: list[float], per_minute: int, expected: float
) -> None:
    now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    state = _PingState()
    state.starts.extend(now - timedelta(seconds=ago) for ago in starts)
    assert state.wait(now, per_minute) == pytest.approx(expected)


async def _start(serve: Serve, config: AggregatorConfig, port: int | None = None) -> TestServer:
    kwargs = {"port": port} if port else {}
    return await serve(create_app(config, periodic=False), **kwargs)


async def _ping(server: TestServer, url: str) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(server.make_url("/ping"), data={"hub.url": url}) as resp,
    ):
        assert resp.status == 202, await resp.text()


def _titles(server: TestServer) -> list[str]:
    return [item.title for item in server.app[MERGED].merged().items]


async def test_a_ping_during_a_fetch_brings_one_more_fetch_right_after(
    feed_server: FeedServer, tmp_path: Path, aiohttp_server: Serve
) -> None:
    market = event("Loppemarked")
    url = feed_server.url("/osterby.atom")
    release = asyncio.Event()
    slow = support.Route(feed("Østerby", [market]))

    async def held(request: web.Request) -> web.StreamResponse:
        await release.wait()  # the fetch is under way until the test lets it answer
        feed_server.routes["/osterby.atom"] = latest
        return web.Response(body=slow.body, content_type="application/atom+xml")

    latest = support.Route(feed("Østerby", [market, event("Høstfest")]))
    feed_server.routes["/osterby.atom"] = support.Route(handler=held)
    server = await _start(aiohttp_server, config_for(tmp_path, [Source(url, "Østerby")]))
    await _ping(server, url)
    await eventually(lambda: _true(feed_server.hits.get("/osterby.atom", 0) == 1))
    for _ in range(3):  # the village changed after our fetch read the feed: three pings
        await _ping(server, url)
    release.set()

    async def arrived() -> bool:
        return "Høstfest" in _titles(server)

    await eventually(arrived)
    assert feed_server.hits["/osterby.atom"] == 2  # three pings meanwhile: one more fetch


async def _true(value: bool) -> bool:
    return value


async def test_ping_fetches_of_one_source_are_bounded_per_minute_of_the_service_clock(
    feed_server: FeedServer, tmp_path: Path, aiohttp_server: Serve
) -> None:
    url = feed_server.set("/osterby.atom", feed("Østerby", [event("Loppemarked")]))
    limits = replace(FAST, ping_fetches_per_minute=3)
    server = await _start(
        aiohttp_server, config_for(tmp_path, [Source(url, "Østerby")], limits=limits)
    )

    def hits() -> int:
        return feed_server.hits.get("/osterby.atom", 0)

    with time_machine.travel(utc_now(), tick=False) as traveller:  # the clock stands still
        for n in range(1, 4):  # each ping after the previous fetch ended: fetched at once
            await _ping(server, url)
            await eventually(lambda n=n: _true(hits() == n))
        for _ in range(5):
            await _ping(server, url)
        await asyncio.sleep(0.5)
        assert hits() == 3
        pending = server.app[SCHEDULER]._pings[url].task
        assert pending is not None and not pending.done()  # the fourth waits for the minute
        traveller.shift(timedelta(seconds=59))
        await _ping(server, url)  # the clock is looked at again: still inside the minute
        await asyncio.sleep(0.3)
        assert hits() == 3
        traveller.shift(timedelta(seconds=2))  # the minute of the first fetch has passed
        await _ping(server, url)
        await eventually(lambda: _true(hits() == 4))
        await asyncio.sleep(0.3)
        assert hits() == 4  # the pings that waited became that one fetch


async def test_every_ping_of_a_burst_after_the_last_fetch_ended_is_fetched_at_once(
    feed_server: FeedServer, tmp_path: Path, aiohttp_server: Serve
) -> None:
    # No gap between fetches: a burst of edits a second apart is one fetch per edit, each
    # started by its ping (issue 15: <= 1 s p95 per edit to the cluster).
    url = feed_server.set("/osterby.atom", feed("Østerby", [event("Loppemarked")]))
    server = await _start(aiohttp_server, config_for(tmp_path, [Source(url, "Østerby")]))
    titles = ["Høstfest", "Juletræ", "Fastelavn"]
    items = [event("Loppemarked")]
    for n, title in enumerate(titles, start=1):
        items.append(event(title))
        feed_server.set("/osterby.atom", feed("Østerby", items))
        await _ping(server, url)

        async def arrived(title: str = title) -> bool:
            return title in _titles(server)

        await eventually(arrived)
        assert feed_server.hits["/osterby.atom"] == n


def test_upstream_urls_are_read_checked_and_written() -> None:
    raw = {
        "name": "Klynge Syd",
        "url": "http://syd.example/",
        "upstream": ["http://region.example"],
    }
    config = from_mapping(Path("/tmp/x"), raw)
    assert config.upstream_pings == ("http://region.example/ping",)
    assert config.feed_url == "http://syd.example/feed.atom"
    assert 'upstream = ["http://region.example"]' in to_toml(config)
    with pytest.raises(ConfigError, match="upstream URL 'ftp://x' must be an http"):
        from_mapping(Path("/tmp/x"), raw | {"upstream": ["ftp://x"]})
    with pytest.raises(ConfigError, match="upstream must be a list of URLs"):
        from_mapping(Path("/tmp/x"), raw | {"upstream": "http://region.example"})


async def test_a_village_change_reaches_the_region_through_the_clusters_ping(
    feed_server: FeedServer,
    tmp_path: Path,
    aiohttp_server: Serve,
    unused_tcp_port_factory: Callable[[], int],
) -> None:
    market = event("Loppemarked")
    village = feed_server.set("/osterby.atom", feed("Østerby", [market]))
    cluster_port, region_port = unused_tcp_port_factory(), unused_tcp_port_factory()
    cluster_url = f"http://127.0.0.1:{cluster_port}"
    (tmp_path / "region").mkdir()
    (tmp_path / "cluster").mkdir()
    region_config = config_for(
        tmp_path / "region",
        [Source(f"{cluster_url}/feed.atom", "Klynge Syd", "aggregator")],
        name="Region Midt",
    )
    region = await _start(aiohttp_server, region_config, region_port)
    cluster_config = config_for(
        tmp_path / "cluster",
        [Source(village, "Østerby")],
        url=cluster_url,
        upstream=(f"http://127.0.0.1:{region_port}",),
    )
    cluster = await _start(aiohttp_server, cluster_config, cluster_port)
    await _ping(cluster, village)  # the region polls only when told (periodic=False)

    async def reached(title: str) -> bool:
        return title in _titles(region)

    await eventually(lambda: reached("Loppemarked"))
    feed_server.set("/osterby.atom", feed("Østerby", [market, event("Høstfest")]))
    await _ping(cluster, village)
    await eventually(lambda: reached("Høstfest"))
    upstream = cluster.app[UPSTREAM]
    await upstream.idle()
    sent = upstream.sent
    assert sent >= 2 and upstream.failures == {}
    await _ping(cluster, village)  # the same body again: the feed did not change, no ping
    await eventually(lambda: _true(feed_server.hits["/osterby.atom"] >= 3))
    await asyncio.sleep(0.3)
    await upstream.idle()
    assert upstream.sent == sent


async def test_an_unreachable_upstream_is_logged_once_and_changes_go_on(
    feed_server: FeedServer,
    tmp_path: Path,
    aiohttp_server: Serve,
    unused_tcp_port_factory: Callable[[], int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    village = feed_server.set("/osterby.atom", feed("Østerby", [event("Loppemarked")]))
    nobody = f"http://127.0.0.1:{unused_tcp_port_factory()}/ping"
    config = config_for(tmp_path, [Source(village, "Østerby")], upstream=(nobody,))
    cluster = await _start(aiohttp_server, config)
    await _ping(cluster, village)
    upstream = cluster.app[UPSTREAM]

    async def failed() -> bool:
        return nobody in upstream.failures

    with caplog.at_level(logging.WARNING, logger="klynge.aggregator"):
        await eventually(failed)
    assert upstream.sent == 0
    lines = [r.getMessage() for r in caplog.records if "upstream" in r.getMessage()]
    assert len(lines) == 1 and nobody in lines[0] and "Traceback" not in lines[0]
    assert "Loppemarked" in _titles(cluster)
