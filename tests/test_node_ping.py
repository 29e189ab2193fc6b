"""Pinging aggregators: a real tiny aiohttp server on loopback plays the aggregator's /ping."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Callable, Coroutine
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from clock_support import local_today
from node_support import PASSWORD, NodeDir, auth, make_node

from node.app import create_app
from node.keys import PINGER, STORE

Client = TestClient[Any, Any]
ClientFactory = Callable[..., Coroutine[Any, Any, Client]]
ServerFactory = Callable[..., Coroutine[Any, Any, TestServer]]
EVENT = {"title": "Koncert", "start": f"{local_today() + timedelta(days=3)}T19:00"}


class FakeAggregator:
    """Records pings; answers with `status`; can hold answers until released."""

    def __init__(self) -> None:
        self.pings: list[dict[str, str]] = []
        self.status = 202
        self.user_agent = ""
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()

    async def ping(self, request: web.Request) -> web.Response:
        self.user_agent = request.headers["User-Agent"]
        form = await request.post()
        self.pings.append({k: str(v) for k, v in form.items()})
        self.arrived.set()
        await self.release.wait()
        return web.Response(status=self.status)

    async def next_ping(self) -> dict[str, str]:
        await asyncio.wait_for(self.arrived.wait(), timeout=20)
        self.arrived.clear()
        return self.pings[-1]


async def start(
    tmp_path: Path, aiohttp_server: ServerFactory, aiohttp_client: ClientFactory, **tunables: Any
) -> tuple[FakeAggregator, NodeDir, Client]:
    fake = FakeAggregator()
    app = web.Application()
    app.router.add_post("/ping", fake.ping)
    server = await aiohttp_server(app)
    node_dir = make_node(tmp_path, aggregators=(str(server.make_url("/")),))
    config = node_dir.config(**tunables)
    client = await aiohttp_client(create_app(config, housekeeping=False))
    return fake, node_dir, client


async def test_change_pings_the_aggregator_without_delaying_the_request(
    tmp_path: Path, aiohttp_server: ServerFactory, aiohttp_client: ClientFactory
) -> None:
    fake, node_dir, client = await start(tmp_path, aiohttp_server, aiohttp_client)
    fake.release.clear()  # the aggregator hangs: the volunteer's request must not wait for it
    response = await client.post("/api/events", json=EVENT, headers=auth(node_dir.token))
    assert response.status == 201
    ping = await fake.next_ping()
    assert ping == {"hub.mode": "publish", "hub.url": "https://osterby.example.dk/feed.atom"}
    assert fake.user_agent == "Klynge-node/0.1.0 (+https://osterby.example.dk)"
    fake.release.set()
    pinger = client.server.app[PINGER]
    await pinger.idle()
    assert pinger.sent == 1
    [status] = pinger.status.values()
    assert status.last_ok and status.failures == 0


async def test_burst_of_changes_gives_one_ping(
    tmp_path: Path, aiohttp_server: ServerFactory, aiohttp_client: ClientFactory
) -> None:
    fake, _, client = await start(tmp_path, aiohttp_server, aiohttp_client)
    pinger = client.server.app[PINGER]
    for _ in range(5):
        pinger.notify()
    await pinger.idle()
    assert len(fake.pings) == 1


async def test_changes_during_a_ping_in_flight_bring_exactly_one_more_ping_after_it(
    tmp_path: Path, aiohttp_server: ServerFactory, aiohttp_client: ClientFactory
) -> None:
    fake, _, client = await start(tmp_path, aiohttp_server, aiohttp_client)
    pinger = client.server.app[PINGER]
    fake.release.clear()  # the first ping stays in flight until released
    pinger.notify()
    await fake.next_ping()  # sent at once: nothing waits for a quiet spell first
    for _ in range(4):  # the burst goes on while the first ping is in flight
        pinger.notify()
    await asyncio.sleep(0.05)
    assert len(fake.pings) == 1  # coalesced: no second ping while the first is in flight
    fake.release.set()
    await pinger.idle()
    assert len(fake.pings) == 2 and pinger.sent == 2  # one more, after the first answered
    pinger.notify()  # a later change: a ping of its own
    await pinger.idle()
    assert len(fake.pings) == 3


async def test_failures_are_retried_logged_and_shown_to_the_admin(
    tmp_path: Path, aiohttp_server: ServerFactory, aiohttp_client: ClientFactory
) -> None:
    fake, node_dir, client = await start(
        tmp_path, aiohttp_server, aiohttp_client, ping_retries=3, ping_backoff=0.01
    )
    fake.status = 503
    await client.post("/api/events", json=EVENT, headers=auth(node_dir.token))
    pinger = client.server.app[PINGER]
    await asyncio.sleep(0)
    await pinger.idle()
    assert len(fake.pings) == 3  # three attempts
    [failure] = client.server.app[STORE].ping_log()
    assert failure["ok"] is False and "503" in failure["error"] and failure["attempts"] == 3

    fake.status = 202
    await client.post("/api/notices", json={"title": "Opslag"}, headers=auth(node_dir.token))
    await asyncio.sleep(0)
    await pinger.idle()
    log = client.server.app[STORE].ping_log()
    assert [entry["ok"] for entry in log] == [True, False]  # newest first: working again

    # The admin sees the failure on /admin/status (log in over plain http for the cookie).
    await client.close()
    config = replace(node_dir.config(), public_url="http://osterby.test")
    client = await aiohttp_client(create_app(config, housekeeping=False))
    page = await (await client.get("/login")).text()
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    form = {"csrf_token": token, "username": "anna", "password": PASSWORD}
    assert (await client.post("/login", data=form)).status == 200
    status_page = await (await client.get("/admin/status")).text()
    assert "HTTP 503" in status_page


async def test_unknown_feed_at_aggregator_is_not_retried(
    tmp_path: Path, aiohttp_server: ServerFactory, aiohttp_client: ClientFactory
) -> None:
    fake, node_dir, client = await start(
        tmp_path, aiohttp_server, aiohttp_client, ping_retries=5, ping_backoff=0.01
    )
    fake.status = 404
    await client.post("/api/events", json=EVENT, headers=auth(node_dir.token))
    pinger = client.server.app[PINGER]
    await asyncio.sleep(0)
    await pinger.idle()
    assert len(fake.pings) == 1
    [status] = pinger.status.values()
    assert status.failures == 1 and "404" in status.last_error


async def test_a_hanging_aggregator_does_not_hold_up_pings_to_the_others(
    tmp_path: Path, aiohttp_server: ServerFactory, aiohttp_client: ClientFactory
) -> None:
    fakes = [FakeAggregator(), FakeAggregator()]
    urls = []
    for fake in fakes:
        app = web.Application()
        app.router.add_post("/ping", fake.ping)
        urls.append(str((await aiohttp_server(app)).make_url("/")))
    node_dir = make_node(tmp_path, aggregators=tuple(urls))
    client = await aiohttp_client(create_app(node_dir.config(), housekeeping=False))
    hanging, healthy = fakes
    hanging.release.clear()
    await client.post("/api/events", json=EVENT, headers=auth(node_dir.token))
    await hanging.next_ping()
    await healthy.next_ping()
    # The first aggregator still has not answered; the next change reaches the second anyway.
    await client.post("/api/notices", json={"title": "Opslag"}, headers=auth(node_dir.token))
    await healthy.next_ping()
    assert len(healthy.pings) == 2 and len(hanging.pings) == 1
    hanging.release.set()
    await client.server.app[PINGER].idle()
    assert len(hanging.pings) == 2  # and it gets the news of the second change afterwards


async def test_an_aggregator_that_is_down_is_retried_and_the_reason_kept(
    tmp_path: Path, aiohttp_client: ClientFactory
) -> None:
    with socket.socket() as closed:  # bound, never listening: held, so no one else takes it
        closed.bind(("127.0.0.1", 0))
        node_dir = make_node(
            tmp_path, aggregators=(f"http://127.0.0.1:{closed.getsockname()[1]}/",)
        )
        config = node_dir.config(ping_retries=2, ping_backoff=0.01)
        client = await aiohttp_client(create_app(config, housekeeping=False))
        await client.post("/api/events", json=EVENT, headers=auth(node_dir.token))
        pinger = client.server.app[PINGER]
        await asyncio.sleep(0)
        await pinger.idle()
    [failure] = client.server.app[STORE].ping_log()
    assert failure["error"] == "could not connect: connection refused"
    assert failure["attempts"] == 2  # a network error is worth a retry
