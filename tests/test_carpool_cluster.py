"""Carpools across villages, end to end (issue 14): real nodes and a real aggregator on loopback.

Vesterlund's away match is on the cluster's page; parents from Østerby and Nørrevang post on
Vesterlund's form (the cluster's page links to it), the posts reach the cluster through the
ping, the private link changes and withdraws a post, and once the match is over no phone number
is left in any store file, feed, page or JSON of the node or the aggregator.
"""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import time_machine
from aggregator_support import eventually
from aiohttp.test_utils import TestServer
from carpool_support import LINK_RE, match_start, offer, request_seat
from test_aggregator_e2e import Cluster, Village, start_cluster

from klynge.atom.reader import read_feed
from klynge.model import Notice
from node.housekeeping import tidy
from node.keys import STORE

PHONES = ("20 12 34 56", "20123456", "31 41 59 26", "31415926")


@pytest.fixture
async def cluster(
    tmp_path: Path,
    aiohttp_server: Callable[..., Awaitable[TestServer]],
    unused_tcp_port_factory: Callable[[], int],
    capsys: Any,
    monkeypatch: Any,
) -> Cluster:
    """Vesterlund, Østerby and Nørrevang, pinging one aggregator (no periodic polling)."""
    return await start_cluster(
        ("Vesterlund", "Østerby", "Nørrevang"),
        tmp_path,
        aiohttp_server,
        unused_tcp_port_factory,
        capsys,
        monkeypatch,
    )


async def away_match(vesterlund: Village) -> str:
    start = match_start()
    body = {
        "title": "Udebanekamp U10: Vesterlund mod Østerby",
        "start": start.strftime("%Y-%m-%dT%H:%M"),
        "end": (start + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
        "category": "sport",
    }
    made = await vesterlund.api("POST", "/api/events", body)
    assert made["carpooling"] is True
    return str(made["id"])


async def text(url: str, **kwargs: Any) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(kwargs.pop("method", "GET"), url, **kwargs) as r,
    ):
        return r.status, html.unescape(await r.text())


def files_text(*folders: Path) -> str:
    """Return every store file (and backup) under the folders, as text."""
    paths = [
        p for folder in folders for p in folder.rglob("*") if p.is_file() and ".json" in p.name
    ]
    assert paths
    return "".join(p.read_text(encoding="utf-8", errors="replace") for p in paths)


async def test_carpools_across_villages_from_the_cluster_page_to_deletion(cluster: Cluster) -> None:
    vesterlund = cluster.villages[0]
    uid = await away_match(vesterlund)
    page_url = str(cluster.aggregator.make_url(f"/events/{uid}"))

    async def on_cluster() -> bool:
        return (await text(page_url))[0] == 200

    await eventually(on_cluster)
    _, page = await text(page_url)
    form_url = f"{vesterlund.base}/events/{uid}/carpool"
    assert f'href="{form_url}"' in page  # the cluster's page links to the owning node's form

    posted_at = time.monotonic()
    status, done = await text(form_url, method="POST", data=offer())
    assert status == 201
    link_match = LINK_RE.search(done)
    assert link_match
    link = link_match.group(1)
    assert (await text(form_url, method="POST", data=request_seat(phone="31 41 59 26")))[0] == 201

    async def both_shown() -> bool:
        shown = (await text(page_url))[1]
        return (
            "Tilbyder 3 pladser fra Østerby Kirke" in shown
            and "Søger 1 plads fra Nørrevang" in shown
        )

    await eventually(both_shown, limit=2.0)  # the acceptance bound: within 2 s, by the ping
    print(f"both posts on the cluster's page {time.monotonic() - posted_at:.2f} s after posting")
    _, page = await text(page_url)
    assert "ring til Mette" in page and '<a href="tel:+4520123456">20 12 34 56</a>' in page
    _, node_page = await text(f"{vesterlund.base}/events/{uid}")
    assert "Tilbyder 3 pladser fra Østerby Kirke" in node_page and "Søger 1 plads" in node_page
    _, board = await text(str(cluster.aggregator.make_url("/noticeboard")))
    (group,) = re.findall(r'<li class="carpool-event">.*?</ul></li>', board, re.DOTALL)
    assert "Tilbyder 3 pladser" in group and "Søger 1 plads" in group  # one group: one match
    notices = json.loads((await text(str(cluster.aggregator.make_url("/api/notices"))))[1])
    pools = [n for n in notices["notices"] if "carpool" in n]
    assert {(p["carpool"]["direction"], p["carpool"]["seats"]) for p in pools} == {
        ("offer", 3),
        ("request", 1),
    }

    # The private link: 2 seats, then withdrawn.
    assert (await text(link, method="POST", data=offer(seats="2", action="save")))[0] == 200

    async def two_seats() -> bool:
        shown = (await text(page_url))[1]
        return "Tilbyder 2 pladser" in shown and "Tilbyder 3 pladser" not in shown

    await eventually(two_seats, limit=2.0)
    assert (await text(link, method="POST", data={"action": "withdraw"}))[0] == 200

    async def withdrawn() -> bool:
        return "Tilbyder 2 pladser" not in (await text(page_url))[1]

    await eventually(withdrawn, limit=2.0)
    assert "Søger 1 plads fra Nørrevang" in (await text(page_url))[1]

    # A new offer, then the clock past the match's end.
    assert (await text(form_url, method="POST", data=offer(name="Mette")))[0] == 201

    async def offered() -> bool:
        return "Tilbyder 3 pladser" in (await text(page_url))[1]

    await eventually(offered, limit=2.0)
    store = vesterlund.server.app[STORE] if vesterlund.server else None
    assert store is not None
    assert any(p in files_text(vesterlund.data_dir) for p in PHONES)
    with time_machine.travel(match_start() + timedelta(hours=2, minutes=1), tick=True):
        await tidy(store)  # the node's housekeeping: tombstones, no personal data

        async def gone() -> bool:
            return "Mette" not in (await text(page_url))[1]

        await eventually(gone, limit=5.0)
        await cluster.refresher.refresh_all()
        outputs = [
            (await text(f"{vesterlund.base}/events/{uid}"))[1],
            (await text(f"{vesterlund.base}/feed.atom"))[1],
            (await text(f"{vesterlund.base}/"))[1],
            (await text(page_url))[1],
            (await text(str(cluster.aggregator.make_url("/noticeboard"))))[1],
            (await text(str(cluster.aggregator.make_url("/api/notices"))))[1],
            (await text(str(cluster.aggregator.make_url("/feed.atom"))))[1],
        ]
        feed = read_feed((await text(f"{vesterlund.base}/feed.atom"))[1].encode())
    assert not [i for i in feed.items if isinstance(i, Notice)] and len(feed.tombstones) == 3
    stored = files_text(vesterlund.data_dir, cluster.refresher.config.data_dir)
    for phone in PHONES:
        for n, out in enumerate(outputs):
            assert phone not in out, (phone, n)
        assert phone not in stored, phone
    for name in ("Mette", "Jens", "jens@example.dk"):
        assert name not in stored and all(name not in out for out in outputs), name


async def test_the_aggregator_drops_ended_carpools_when_the_village_is_down(
    cluster: Cluster,
) -> None:
    vesterlund = cluster.villages[0]
    uid = await away_match(vesterlund)
    form_url = f"{vesterlund.base}/events/{uid}/carpool"
    assert (await text(form_url, method="POST", data=offer()))[0] == 201
    page_url = str(cluster.aggregator.make_url(f"/events/{uid}"))

    async def shown() -> bool:
        return "ring til Mette" in (await text(page_url))[1]

    await eventually(shown, limit=2.0)
    await vesterlund.stop()  # no tombstone will come
    agg_dir = cluster.refresher.config.data_dir
    assert "20 12 34 56" in files_text(agg_dir)
    with time_machine.travel(match_start() + timedelta(hours=2, minutes=1), tick=True):
        await cluster.refresher.refresh_all()
        outputs = [
            (await text(page_url))[1],
            (await text(str(cluster.aggregator.make_url("/noticeboard"))))[1],
            (await text(str(cluster.aggregator.make_url("/api/notices"))))[1],
            (await text(str(cluster.aggregator.make_url("/feed.atom"))))[1],
        ]
    assert "Udebanekamp U10" in outputs[0]  # the match itself stays (a past event)
    for phone in PHONES:
        assert phone not in files_text(agg_dir) and all(phone not in out for out in outputs)
    assert "Mette" not in files_text(agg_dir)
