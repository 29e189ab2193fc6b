"""End to end: three real village nodes and real aggregators on loopback.

Nodes are set up through their own CLI (`klynge node init|user add|token add`) and served by
`node.app.create_app`; they ping the aggregator on every change, as in production.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aggregator_support import FAST, NOW, eventually
from aiohttp.test_utils import TestServer
from icalendar import Calendar

from aggregator.app import create_app as create_aggregator
from aggregator.config import AggregatorConfig, Source
from aggregator.keys import MERGED, REFRESHER
from aggregator.reader.refresh import Refresher
from klynge.atom.reader import read_feed
from node import cli as node_cli
from node.app import create_app as create_node
from node.config import load_config as load_node_config

VILLAGES = ("Østerby", "Vesterby", "Norreby")


@dataclass
class Village:
    """A running village node with an API token."""

    name: str
    data_dir: Path
    port: int
    token: str
    serve: Callable[..., Awaitable[TestServer]]
    server: TestServer | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def feed_url(self) -> str:
        return f"{self.base}/feed.atom"

    async def start(self, *, ping: bool = True) -> None:
        config = dataclasses.replace(load_node_config(self.data_dir, env={}), ping_backoff=0.2)
        if not ping:
            config = dataclasses.replace(config, aggregators=())
        self.server = await self.serve(create_node(config, housekeeping=False), port=self.port)

    async def stop(self) -> None:
        assert self.server is not None
        await self.server.close()
        self.server = None

    async def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, self.base + path, json=body, headers=headers) as resp,
        ):
            assert resp.status < 300, await resp.text()
            return await resp.json() if resp.status != 204 else None


def _node_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert node_cli.main(args) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def make_village(
    name: str, root: Path, port: int, aggregator: str, capsys: Any, monkeypatch: Any, serve: Any
) -> Village:
    """Create a node data directory with one editor and an API token."""
    data = root / name.lower()
    base = f"http://127.0.0.1:{port}"
    _node_cli(
        ["init", str(data), "--name", name, "--url", base, "--aggregator", aggregator], capsys
    )
    monkeypatch.setattr("sys.stdin", io.StringIO("en-god-adgangskode-42\n"))
    _node_cli(
        ["user", "add", str(data), "editor", "--association", "Lokalrådet", "--password-stdin"],
        capsys,
    )
    token = _node_cli(["token", "add", str(data), "editor"], capsys).strip().splitlines()[-1]
    return Village(name, data, port, token, serve)


@dataclass
class Cluster:
    """Three villages and one aggregator."""

    villages: list[Village]
    aggregator: TestServer

    @property
    def refresher(self) -> Refresher:
        return self.aggregator.app[REFRESHER]

    async def get(self, path: str, **params: str) -> aiohttp.ClientResponse:
        async with aiohttp.ClientSession() as session:
            resp = await session.get(self.aggregator.make_url(path), params=params)
            await resp.read()
            return resp


def aggregator_config(
    root: Path, sources: list[Source], name: str = "Klynge Syd"
) -> AggregatorConfig:
    data = root / f"agg-{name.split()[-1].lower()}"
    data.mkdir()
    return AggregatorConfig(
        data_dir=data,
        name=name,
        url=f"http://{name.split()[-1].lower()}.example",
        sources=tuple(sources),
        limits=FAST,
    )


@pytest.fixture
async def three_villages(
    tmp_path: Path,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    unused_tcp_port_factory: Callable[[], int],
    capsys: Any,
    monkeypatch: Any,
) -> Cluster:
    """Start three real village nodes that ping one real aggregator (no periodic polling)."""
    return await start_cluster(
        VILLAGES, tmp_path, aiohttp_server, unused_tcp_port_factory, capsys, monkeypatch
    )


async def start_cluster(
    names: Sequence[str],
    tmp_path: Path,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    unused_tcp_port_factory: Callable[[], int],
    capsys: Any,
    monkeypatch: Any,
) -> Cluster:
    """Start real village nodes named `names` that ping one real aggregator (no polling)."""
    agg_port = unused_tcp_port_factory()
    agg_base = f"http://127.0.0.1:{agg_port}"
    villages = [
        make_village(
            name, tmp_path, unused_tcp_port_factory(), agg_base, capsys, monkeypatch, aiohttp_server
        )
        for name in names
    ]
    sources = [Source(v.feed_url, v.name) for v in villages]
    config = aggregator_config(tmp_path, sources)
    aggregator = await aiohttp_server(create_aggregator(config, periodic=False), port=agg_port)
    for village in villages:
        await village.start()
    return Cluster(villages, aggregator)


def urn(entry_id: str) -> str:
    return entry_id if entry_id.startswith("urn:") else f"urn:uuid:{entry_id}"


def _start(days: int, hour: int = 19) -> str:
    return (NOW + timedelta(days=days)).strftime(f"%Y-%m-%dT{hour:02d}:00")


def event_body(title: str, days: int = 5, **extra: Any) -> dict[str, Any]:
    return {
        "title": title,
        "start": _start(days),
        "end": _start(days, 21),
        "category": "community",
    } | extra


async def ics_events(cluster: Cluster, **params: str) -> dict[str, Any]:
    resp = await cluster.get("/calendar.ics", **params)
    cal = Calendar.from_ical(await resp.read())
    return {str(v["SUMMARY"]).removeprefix("AFLYST: "): v for v in cal.walk("VEVENT")}


async def feed_titles(cluster: Cluster) -> dict[str, str]:
    body = await (await cluster.get("/feed.atom")).read()
    return {i.title: i.source.title if i.source else "" for i in read_feed(body).items}


async def json_titles(cluster: Cluster) -> list[str]:
    events = await (await cluster.get("/api/events")).json()
    notices = await (await cluster.get("/api/notices")).json()
    return [e["title"] for e in events["events"]] + [n["title"] for n in notices["notices"]]


async def test_posts_reach_ics_atom_and_json_through_the_ping(three_villages: Cluster) -> None:
    osterby, vesterby, norreby = three_villages.villages
    made = await osterby.api("POST", "/api/events", event_body("Fællesspisning"))
    await vesterby.api("POST", "/api/notices", {"title": "Samkørsel til Aarhus", "body": "Kl. 7"})
    await norreby.api("POST", "/api/events", event_body("Loppemarked", days=8))

    async def everywhere() -> bool:
        titles = await json_titles(three_villages)
        return {"Fællesspisning", "Samkørsel til Aarhus", "Loppemarked"} <= set(titles)

    await eventually(everywhere)
    ics = await ics_events(three_villages)
    assert set(ics) == {"Fællesspisning", "Loppemarked"}
    assert str(ics["Fællesspisning"]["UID"]) == urn(made["id"])
    atom = await feed_titles(three_villages)
    assert atom == {
        "Fællesspisning": "Østerby",
        "Samkørsel til Aarhus": "Vesterby",
        "Loppemarked": "Norreby",
    }


async def test_edit_cancel_delete_reach_the_aggregator(three_villages: Cluster) -> None:
    osterby = three_villages.villages[0]
    made = await osterby.api("POST", "/api/events", event_body("Generalforsamling"))
    uuid = made["id"].removeprefix("urn:uuid:")

    async def sequence() -> int:
        found = (await ics_events(three_villages)).get("Generalforsamling")
        return int(found["SEQUENCE"]) if found is not None and "SEQUENCE" in found else -1

    async def arrived() -> bool:
        return await sequence() >= 0

    await eventually(arrived)
    first = await sequence()
    await osterby.api("PATCH", f"/api/events/{uuid}", {"start": _start(6), "end": _start(6, 21)})

    async def raised() -> bool:
        return await sequence() > first

    await eventually(raised)
    await osterby.api("PATCH", f"/api/events/{uuid}", {"status": "cancelled"})

    async def cancelled() -> bool:
        found = (await ics_events(three_villages)).get("Generalforsamling")
        return found is not None and str(found.get("STATUS")) == "CANCELLED"

    await eventually(cancelled)
    await osterby.api("DELETE", f"/api/events/{uuid}")

    async def deleted() -> bool:
        return "Generalforsamling" not in await ics_events(three_villages)

    await eventually(deleted)
    assert "Generalforsamling" not in await json_titles(three_villages)
    feed = read_feed(await (await three_villages.get("/feed.atom")).read())
    assert urn(made["id"]) in {t.id for t in feed.tombstones}  # relayed downstream
    [tomb] = [t for t in feed.tombstones if t.id == urn(made["id"])]
    assert tomb.source is not None and tomb.source.title == "Østerby"


async def test_one_refresh_without_pings_brings_everything(three_villages: Cluster) -> None:
    # Pings get lost (here: the nodes know no aggregator); one polling pass catches up.
    for village in three_villages.villages:
        await village.stop()
        await village.start(ping=False)
    osterby, vesterby, _ = three_villages.villages
    await osterby.api("POST", "/api/events", event_body("Julemarked"))
    await vesterby.api("POST", "/api/notices", {"title": "Tabt nøgle", "category": "lost-found"})
    assert "Julemarked" not in await json_titles(three_villages)
    outcomes = await three_villages.refresher.refresh_all()
    assert all(o.ok for o in outcomes)
    assert {"Julemarked", "Tabt nøgle"} <= set(await json_titles(three_villages))
    assert "Julemarked" in await ics_events(three_villages)
    assert (await feed_titles(three_villages))["Tabt nøgle"] == "Vesterby"


async def test_stopped_node_keeps_its_entries_and_recovers(three_villages: Cluster) -> None:
    osterby = three_villages.villages[0]
    await osterby.api("POST", "/api/events", event_body("Sankthans"))

    async def arrived() -> bool:
        return "Sankthans" in await json_titles(three_villages)

    await eventually(arrived)
    await osterby.stop()
    outcomes = {o.url: o for o in await three_villages.refresher.refresh_all()}
    assert not outcomes[osterby.feed_url].ok
    assert "Sankthans" in await json_titles(three_villages)
    assert "Sankthans" in await ics_events(three_villages)
    sources = (await (await three_villages.get("/api/sources")).json())["sources"]
    row = next(s for s in sources if s["url"] == osterby.feed_url)
    assert row["health"] == "failing" and row["failures"] == 1
    assert "could not connect" in row["last_error"] or "refused" in row["last_error"]
    assert "keeping its last 1 good entry)" in row["summary"]
    status = await (await three_villages.get("/status")).text()
    assert row["last_error"] in status.replace("&#39;", "'")
    await osterby.start()
    await osterby.api("POST", "/api/events", event_body("Høstfest"))  # its ping brings it back

    async def recovered() -> bool:
        sources = (await (await three_villages.get("/api/sources")).json())["sources"]
        row = next(s for s in sources if s["url"] == osterby.feed_url)
        return row["health"] == "ok" and "Høstfest" in await json_titles(three_villages)

    await eventually(recovered)
    assert "Sankthans" in await json_titles(three_villages)


async def test_cluster_of_clusters_keeps_provenance_and_one_copy(
    three_villages: Cluster, tmp_path: Path, aiohttp_server: Callable[..., Awaitable[TestServer]]
) -> None:
    osterby, vesterby, norreby = three_villages.villages
    await osterby.api("POST", "/api/events", event_body("Fællesspisning"))
    await vesterby.api("POST", "/api/events", event_body("Fodbold", days=4))
    await norreby.api("POST", "/api/notices", {"title": "Vejarbejde", "category": "roadworks"})
    await three_villages.refresher.refresh_all()
    a_feed = str(three_villages.aggregator.make_url("/feed.atom"))
    config = aggregator_config(
        tmp_path,
        [Source(a_feed, "Klynge Syd", "aggregator"), Source(osterby.feed_url, "Østerby")],
        name="Kommune Nord",
    )
    b = await aiohttp_server(create_aggregator(config, periodic=False))
    outcomes = await b.app[REFRESHER].refresh_all()
    assert all(o.ok for o in outcomes), outcomes
    async with aiohttp.ClientSession() as session:
        async with session.get(b.make_url("/feed.atom")) as resp:
            feed = read_feed(await resp.read())
        async with session.get(b.make_url("/calendar.ics")) as resp:
            cal = Calendar.from_ical(await resp.read())
    provenance = sorted((i.title, i.source.title if i.source else "") for i in feed.items)
    assert provenance == [
        ("Fodbold", "Vesterby"),
        ("Fællesspisning", "Østerby"),
        ("Vejarbejde", "Norreby"),
    ]
    uids = [str(v["UID"]) for v in cal.walk("VEVENT")]
    assert len(uids) == len(set(uids)) == 2
    # An edit seen first on the direct path wins over the older copy relayed by A.
    made = next(i for i in feed.items if i.title == "Fællesspisning")
    uuid = made.id.removeprefix("urn:uuid:")
    await osterby.api("PATCH", f"/api/events/{uuid}", {"title": "Fællesspisning med musik"})
    await b.app[REFRESHER].refresh_source(config.sources[1])
    titles = [i.title for i in b.app[MERGED].merged().items]
    assert titles.count("Fællesspisning med musik") == 1 and "Fællesspisning" not in titles
