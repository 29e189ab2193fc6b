"""Browser test harness: one real cluster (three village nodes, one aggregator) and one chromium.

Everything runs in the session's event loop: the aiohttp servers serve while the test awaits
Playwright, so a page load is a real HTTP round trip over loopback. Test modules here set
`pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]`.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from browser_support import (
    CANCELLED,
    CARPOOL,
    CLUSTER_NAME,
    FEAST,
    FLEA,
    PASSWORD,
    TODAY_MARKET,
    eventually,
    today,
)
from chromium_support import chromium
from clash_support import base_of, bound_socket, cli

from aggregator.app import create_app as create_aggregator
from aggregator.config import AggregatorConfig, Limits, Source
from node.app import create_app as create_node
from node.config import load_config as load_node_config

# Quick ping-triggered fetches: the session posts many changes within seconds, and the
# production value (5 s between fetches of one source) would hold later ones back.
LIMITS = Limits(connect_timeout=2, total_timeout=5, jitter=0)


@dataclass
class Node:
    """A running village node: its data directory, loopback URL and an editor's API token."""

    name: str
    data_dir: Path
    base: str
    token: str = ""
    runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        """Return the absolute URL of `path` on this node."""
        return self.base + path


@dataclass
class Cluster:
    """Three nodes, one aggregator, and the entries seeded into them (title -> uuid)."""

    nodes: dict[str, Node]
    aggregator_base: str
    runners: list[web.AppRunner] = field(default_factory=list)
    seeded: dict[str, str] = field(default_factory=dict)

    def agg(self, path: str) -> str:
        """Return the absolute URL of `path` on the aggregator."""
        return self.aggregator_base + path

    def node(self, name: str) -> Node:
        """Return the node of a village."""
        return self.nodes[name]

    async def api(self, node: Node, method: str, path: str, body: dict[str, Any]) -> Any:
        """Call a node's JSON API as its editor and return the JSON answer."""
        headers = {"Authorization": f"Bearer {node.token}"}
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, node.url(path), json=body, headers=headers) as resp,
        ):
            assert resp.status < 300, await resp.text()
            return await resp.json()

    async def aggregator_titles(self) -> set[str]:
        """Return the titles of every event and notice the aggregator serves as JSON."""
        async with aiohttp.ClientSession() as session:
            titles: set[str] = set()
            for kind in ("events", "notices"):
                async with session.get(self.agg(f"/api/{kind}")) as resp:
                    titles |= {row["title"] for row in (await resp.json())[kind]}
            return titles


# ---- the village nodes, set up through their own CLI -----------------------------------


# Village -> users (username, association, admin). anna is the admin of every village.
USERS = (("anna", "Lokalrådet", True), ("bo", "Idrætsforeningen", False))


def make_node(root: Path, name: str, base: str, aggregator: str) -> Node:
    """Create a node data directory with an admin and an editor; the editor gets a token."""
    data = root / name.lower()
    cli(["init", str(data), "--name", name, "--url", base, "--aggregator", aggregator])
    for username, association, admin in USERS:
        flags = ["--admin"] if admin else []
        argv = ["user", "add", str(data), username, "--association", association]
        cli([*argv, "--password-stdin", *flags], stdin=PASSWORD + "\n")
    token = cli(["token", "add", str(data), "bo"]).strip().splitlines()[-1]
    return Node(name, data, base, token)


async def serve(app: web.Application, sock: socket.socket) -> web.AppRunner:
    """Serve `app` on an already bound socket; return the runner to clean up."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner


# ---- what the cluster holds before any test runs ---------------------------------------


def _at(days: int, hour: int, minute: int = 0) -> str:
    return f"{today() + timedelta(days=days)}T{hour:02d}:{minute:02d}"


def seed_entries() -> list[tuple[str, str, dict[str, Any]]]:
    """Return (village, kind, body) of the entries every page test expects to find."""
    hall = {
        "name": "Østerby Forsamlingshus",
        "street": "Skolevej 4",
        "postcode": "8500",
        "locality": "Østerby",
        "lat": 56.41,
        "lon": 10.88,
    }
    return [
        ("Østerby", "events", {
            "title": FEAST, "start": _at(1, 18), "end": _at(1, 21),
            "category": "food", "location": hall,
            "description": "<p>Tag en ret med til fællesbordet. Børn spiser gratis.</p>",
        }),
        ("Vesterby", "events", {
            "title": FLEA, "start": _at(2, 10), "end": _at(2, 14),
            "category": "market", "location": {"name": "Vesterby Skole", "locality": "Vesterby"},
        }),
        ("Vesterby", "events", {
            "title": CANCELLED, "start": _at(3, 16), "end": _at(3, 17),
            "category": "community", "status": "cancelled",
        }),
        ("Norreby", "events", {
            "title": TODAY_MARKET, "start": str(today()), "all_day": True,
            "category": "market",
        }),
        ("Norreby", "notices", {
            "title": CARPOOL, "body": "<p>Afgang kl. 7 fra kirken, 2 pladser.</p>",
            "category": "carpool",
        }),
    ]  # fmt: skip


async def _seed(cluster: Cluster) -> None:
    for village, kind, body in seed_entries():
        made = await cluster.api(cluster.node(village), "POST", f"/api/{kind}", body)
        cluster.seeded[body["title"]] = made["id"].removeprefix("urn:uuid:")
    wanted = set(cluster.seeded)

    async def arrived() -> bool:
        return wanted <= await cluster.aggregator_titles()

    await eventually(arrived, limit=15.0)


# ---- fixtures ----------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    """Start three real village nodes pinging one real aggregator, seeded with entries."""
    root = tmp_path_factory.mktemp("cluster")
    agg_sock = bound_socket()
    node_socks = {name: bound_socket() for name in ("Østerby", "Vesterby", "Norreby")}
    nodes = {
        name: make_node(root, name, base_of(sock), base_of(agg_sock))
        for name, sock in node_socks.items()
    }
    agg_data = root / "aggregator"
    agg_data.mkdir()
    config = AggregatorConfig(
        data_dir=agg_data,
        name=CLUSTER_NAME,
        url=base_of(agg_sock),
        sources=tuple(Source(n.url("/feed.atom"), n.name) for n in nodes.values()),
        limits=LIMITS,
    )
    cluster = Cluster(nodes, base_of(agg_sock))
    try:
        cluster.runners.append(await serve(create_aggregator(config, periodic=False), agg_sock))
        for name, node in nodes.items():
            node_config = load_node_config(node.data_dir, env={})
            app = create_node(node_config, housekeeping=False)
            node.runner = await serve(app, node_socks[name])
            cluster.runners.append(node.runner)
        await _seed(cluster)
        yield cluster
    finally:
        for runner in reversed(cluster.runners):
            await runner.cleanup()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Any]:
    """Launch Debian's chromium once per session through Playwright."""
    async with chromium() as launched:
        yield launched
