"""Pages and JSON answers kept per data version, request, language and minute, with ETag/304."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import aggregator_support as support
import icalendar
import pytest
import time_machine
from aggregator_support import (
    NOW,
    FeedServer,
    config_for,
    event,
    feed,
    notice,
    refresher_of,
    start_aggregator,
)
from clock_support import utc_now

from aggregator.config import Source
from aggregator.keys import ANSWERS, CONFIG, MERGED
from aggregator.publish.outputs import window
from aggregator.publish.parts import WRITE
from aggregator.web.board import megabytes
from klynge.model import Event

feed_server = support.feed_server  # a fixture
MARKET = event("Loppemarked", category="market")
RIDE = notice("Samkørsel")
PATHS = ["/", "/calendar?view=month", "/calendar", "/api/events", "/api/notices?category=carpool"]


@pytest.fixture
async def cluster(feed_server: FeedServer, tmp_path: Path, aiohttp_client: Any) -> Any:
    """An aggregator over one village, refreshed once."""
    url = feed_server.set("/osterby.atom", feed("Østerby", [MARKET, RIDE]))
    client = await start_aggregator(aiohttp_client, config_for(tmp_path, [Source(url, "Østerby")]))
    await refresher_of(client).refresh_all()
    return client


async def _get(client: Any, path: str, **headers: str) -> tuple[int, bytes, str]:
    resp = await client.get(path, headers=headers)
    return resp.status, await resp.read(), resp.headers.get("ETag", "")


@pytest.mark.parametrize("path", PATHS)
async def test_an_answer_is_rendered_once_per_data_version_and_revalidates(
    cluster: Any, feed_server: FeedServer, path: str
) -> None:
    # An answer is kept per minute too (pages show "today"): the clock stands still, so the
    # requests cannot straddle a minute's end on a slow machine.
    with time_machine.travel(utc_now(), tick=False):
        await _check_rendered_once(cluster, feed_server, path)


async def _check_rendered_once(cluster: Any, feed_server: FeedServer, path: str) -> None:
    answers = cluster.server.app[ANSWERS]
    status, first, etag = await _get(cluster, path)
    assert status == 200 and etag.startswith('"')
    assert b"Loppemarked" in first or b"Samk\xc3\xb8rsel" in first
    renders = answers.renders
    again = await _get(cluster, path)
    assert again == (200, first, etag) and answers.renders == renders
    not_modified = await cluster.get(path, headers={"If-None-Match": etag})
    assert not_modified.status == 304 and await not_modified.read() == b""
    assert not_modified.headers["ETag"] == etag and answers.renders == renders
    # A change of the data: the answer is rendered anew and shows it; the old ETag gets a 200.
    ride_home = replace(RIDE, title="Samkørsel hjem", updated=NOW)
    feed_server.set("/osterby.atom", feed("Østerby", [MARKET, event("Høstfest"), ride_home]))
    await refresher_of(cluster).refresh_all()
    status, changed, new_etag = await _get(cluster, path, **{"If-None-Match": etag})
    assert status == 200 and new_etag != etag and answers.renders == renders + 1
    assert b"H\xc3\xb8stfest" in changed or b"Samk\xc3\xb8rsel hjem" in changed


async def test_only_the_newest_views_answers_are_kept(
    cluster: Any, feed_server: FeedServer
) -> None:
    """Each kept answer holds its merged view: after a change no old view stays alive."""
    answers = cluster.server.app[ANSWERS]
    for path in PATHS:
        assert (await _get(cluster, path))[0] == 200
    old = {id(a.merged) for a in answers._kept.values()}
    assert len(answers._kept) == len(PATHS) and len(old) == 1
    feed_server.set("/osterby.atom", feed("Østerby", [MARKET, event("Høstfest"), RIDE]))
    await refresher_of(cluster).refresh_all()
    assert (await _get(cluster, PATHS[0]))[0] == 200
    assert len(answers._kept) == 1
    assert {id(a.merged) for a in answers._kept.values()}.isdisjoint(old)


async def test_each_language_and_query_has_its_own_answer(cluster: Any) -> None:
    _, danish, _ = await _get(cluster, "/")
    _, english, _ = await _get(cluster, "/?lang=en")
    assert b'lang="da"' in danish and b'lang="en"' in english
    assert (await _get(cluster, "/"))[1] == danish  # the kept Danish one, not the English
    _, month, _ = await _get(cluster, "/calendar?view=month")
    _, listed, _ = await _get(cluster, "/calendar")
    assert month != listed


async def test_errors_are_not_kept(cluster: Any) -> None:
    answers = cluster.server.app[ANSWERS]
    for _ in range(2):
        resp = await cluster.get("/api/events", params={"from": "not a date"})
        assert resp.status == 422 or resp.status == 400
        assert "YYYY-MM-DD" in await resp.text()
    assert answers.renders == 0


async def test_hiding_an_entry_is_a_new_data_version(cluster: Any) -> None:
    _, before, _ = await _get(cluster, "/api/events")
    assert b"Loppemarked" in before
    view = cluster.server.app[MERGED]
    view.moderate(frozenset({MARKET.id}), frozenset())
    _, after, _ = await _get(cluster, "/api/events")
    assert b"Loppemarked" not in after


async def test_status_reports_the_size_of_the_feed_and_the_calendar(cluster: Any) -> None:
    feed_kb = round(len(await (await cluster.get("/feed.atom")).read()) / 1000)
    ics_kb = round(len(await (await cluster.get("/calendar.ics")).read()) / 1000)
    assert feed_kb != ics_kb
    danish = await (await cluster.get("/status")).text()
    english = await (await cluster.get("/status?lang=en")).text()
    assert f"det samlede feed fylder {feed_kb} kB, kalenderen {ics_kb} kB." in danish
    assert f"the merged feed is {feed_kb} kB, the calendar {ics_kb} kB." in english


def test_sizes_are_worded_in_the_language() -> None:
    assert megabytes(1_234_567, "da") == "1,2 MB" and megabytes(1_234_567, "en") == "1.2 MB"
    assert megabytes(58_000_000, "en") == "58.0 MB" and megabytes(200, "da") == "1 kB"


async def test_big_answers_are_served_from_their_pieces_not_a_joined_copy(
    feed_server: FeedServer, tmp_path: Path, aiohttp_client: Any
) -> None:
    # 24 MB of calendar.ics at 50,000 entries was a joined copy of bytes the pieces hold
    # already (aggregator.publish.parts): served now from the pieces, in writes of 64 kB.
    many = [event(f"Møde {n}", days=1 + n % 28, category="community") for n in range(400)]
    url = feed_server.set("/osterby.atom", feed("Østerby", many))
    client = await start_aggregator(aiohttp_client, config_for(tmp_path, [Source(url, "Østerby")]))
    await refresher_of(client).refresh_all()
    with time_machine.travel(utc_now(), tick=False):  # /api/events is of "today"'s month
        await _check_served_from_pieces(client, many)


async def _check_served_from_pieces(client: Any, many: list[Event]) -> None:
    outputs = support.outputs_of(client)
    merged = await client.server.app[MERGED].current()
    config = client.server.app[CONFIG]
    lo, hi = window(None, None, config.timezone, config.clock.now())
    for path, parts in (
        ("/calendar.ics", (await outputs.calendar()).parts),
        ("/api/events", await outputs.events_json(merged, lo, hi, "", "")),
    ):
        status, body, etag = await _get(client, path)
        assert status == 200 and len(body) > 2 * WRITE, path
        assert body == parts.joined() and etag == parts.etag, path
        assert etag == f'"{hashlib.blake2b(body, digest_size=12).hexdigest()}"'
        assert max(map(len, parts.chunks)) < 4000, f"{path} keeps a joined copy"
        again = await client.get(path, headers={"If-None-Match": etag})
        assert again.status == 304 and await again.read() == b""
    ics = icalendar.Calendar.from_ical((await _get(client, "/calendar.ics"))[1])
    assert len(ics.walk("VEVENT")) == 400
    month = json.loads((await _get(client, "/api/events"))[1])
    assert {e["title"] for e in month["events"]} == {e.title for e in many}
