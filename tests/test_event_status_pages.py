"""Every event status gets its event page on both tiers, with the status in the JSON-LD.

A tentative event (a hall's reserved date, issue 13) once made both the node's and the
aggregator's event page answer 500: their schema.org table knew only three of the four
statuses. Found by the API fuzzer's own seed in the arm64 run (`make pi-check`).
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import aggregator_support as support
import node_support
import pytest
from aggregator_support import FeedServer, config_for, event, feed, refresher_of, start_aggregator
from clock_support import local_today
from node_support import NodeDir, auth

from aggregator.config import Source
from klynge.model import STATUSES, Status
from klynge.web import EVENT_STATUS

feed_server = support.feed_server  # fixtures
node_dir, client = node_support.node_dir, node_support.client
SCHEMA_ORG = "https://schema.org/"


def _json_ld(page: str) -> dict[str, Any]:
    block = re.search(r'<script type="application/ld\+json">(.*?)</script>', page, re.S)
    assert block is not None, page[:2000]
    data: dict[str, Any] = json.loads(block.group(1))
    return data


def test_every_status_has_a_schema_org_status() -> None:
    assert set(EVENT_STATUS) == set(STATUSES)
    assert all(url.startswith(SCHEMA_ORG) for url in EVENT_STATUS.values())


@pytest.mark.parametrize("status", STATUSES)
async def test_a_node_event_page_shows_each_status(
    client: Any, node_dir: NodeDir, status: Status
) -> None:
    start = local_today() + timedelta(days=7)
    payload = {"title": "Fællesspisning", "start": f"{start}T18:00", "status": status}
    created = await client.post("/api/events", json=payload, headers=auth(node_dir.token))
    assert created.status == 201, await created.text()
    uid = (await created.json())["id"]
    response = await client.get(f"/events/{uid}")
    text = await response.text()
    assert response.status == 200, text[:2000]
    assert _json_ld(text)["eventStatus"] == EVENT_STATUS[status]


@pytest.mark.parametrize("status", STATUSES)
async def test_an_aggregator_event_page_shows_each_status(
    feed_server: FeedServer, tmp_path: Path, aiohttp_client: Any, status: Status
) -> None:
    item = event("Fællesspisning", status=status)
    url = feed_server.set("/osterby.atom", feed("Østerby", [item]))
    cluster = await start_aggregator(aiohttp_client, config_for(tmp_path, [Source(url, "Østerby")]))
    await refresher_of(cluster).refresh_all()
    response = await cluster.get(f"/events/{item.id.removeprefix('urn:uuid:')}")
    text = await response.text()
    assert response.status == 200, text[:2000]
    assert _json_ld(text)["eventStatus"] == EVENT_STATUS[status]
