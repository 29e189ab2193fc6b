"""Upgrades: data directories written by an earlier release open, unchanged, in this code.

`tests/data/release-65b3c23/` was made by that commit's code (`make_dirs.py` there, run with
that commit on `sys.path`): a node with an admin, a token and a revoked one, two events, a
notice and a deletion, and an aggregator that fetched the node once. EXPECT.json says what
they hold. Each test copies a directory (git keeps no file modes, so node.toml arrives 0644
and is made private on opening) and uses it through the running services.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from test_node_pages import login
from test_operations import _agg

from aggregator.app import create_app as create_aggregator
from aggregator.config import load_config as load_aggregator_config
from klynge.atom.reader import read_feed
from node.app import create_app as create_node
from node.config import load_config as load_node_config

RELEASE = Path(__file__).parent / "data" / "release-65b3c23"
EXPECT = json.loads((RELEASE / "EXPECT.json").read_text())
Client = Callable[..., Awaitable[Any]]


def _copy(name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copytree(RELEASE / name, target)
    return target


async def test_a_node_directory_of_the_earlier_release_opens(
    tmp_path: Path, aiohttp_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    data = _copy("node", tmp_path)
    (data / "node.toml").chmod(0o644)
    config = load_node_config(data, env={})
    assert "it is now 0600" in caplog.text
    assert stat.S_IMODE((data / "node.toml").stat().st_mode) == 0o600
    client = await aiohttp_client(create_node(config, housekeeping=False))
    headers = {"Authorization": f"Bearer {EXPECT['token']}"}
    events = (await (await client.get("/api/events", headers=headers)).json())["events"]
    assert sorted(e["title"] for e in events) == EXPECT["events"]
    notices = (await (await client.get("/api/notices", headers=headers)).json())["notices"]
    assert [n["title"] for n in notices] == EXPECT["notices"]
    revoked = {"Authorization": f"Bearer {EXPECT['revoked_token']}"}
    assert (await client.get("/api/events", headers=revoked)).status == 401
    feed = read_feed(await (await client.get("/feed.atom")).read())
    assert sorted(i.title for i in feed.items) == sorted(EXPECT["events"] + EXPECT["notices"])
    assert len(feed.tombstones) == 1  # the deletion is still announced
    assert await login(client, "anna", EXPECT["password"]) == 303
    # And the old directory takes new writes.
    made = await client.post(
        "/api/events", json={"title": "Nytårskur", "start": "2027-01-01T14:00"}, headers=headers
    )
    assert made.status == 201, await made.text()


async def test_an_aggregator_directory_of_the_earlier_release_opens(
    tmp_path: Path, aiohttp_client: Client
) -> None:
    data = _copy("aggregator", tmp_path)
    [source] = load_aggregator_config(data, env={}).sources
    # Moderation, new in this release, is added to the old directory by the CLI.
    _agg(["pause", str(data), source.url, "--reason", "ferie"])
    client = await aiohttp_client(create_aggregator(load_aggregator_config(data), periodic=False))
    assert (await (await client.get("/api/events")).json())["events"] == []  # paused
    await asyncio.to_thread(_agg, ["unpause", str(data), source.url])  # through the service
    await client.close()
    client = await aiohttp_client(create_aggregator(load_aggregator_config(data), periodic=False))
    body = await (await client.get("/api/events?from=2026-12-01&to=2026-12-31")).json()
    titles = {e["title"] for e in body["events"]}
    assert titles == set(EXPECT["events"])  # the occurrences of both, the deleted one gone
    [row] = (await (await client.get("/api/sources")).json())["sources"]
    assert row["url"] == source.url and row["entries"] == 3 and row["tombstones"] == 1
