"""The aggregator's HTTP interface against real feed servers: documents, JSON, pages, ping."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aggregator_support as support
import pytest
import time_machine
from aggregator_support import (
    FeedServer,
    config_for,
    event,
    eventually,
    feed,
    notice,
    outputs_of,
    refresher_of,
    start_aggregator,
    view_of,
)
from clock_support import utc_now
from icalendar import Calendar

from aggregator.config import Source
from klynge.atom.reader import read_feed

RECURRING = event("Strikkeklub", days=2, rrule="FREQ=WEEKLY;COUNT=4", category="culture")
OSTERBY = [event("Loppemarked", category="market"), RECURRING, notice("Hjælpere søges")]
VESTERBY = [event("Fodbold", category="sport", days=4), notice("Vejarbejde", category="roadworks")]

feed_server = support.feed_server  # a fixture


@pytest.fixture
async def cluster(feed_server: FeedServer, tmp_path: Path, aiohttp_client: Any) -> Any:
    """An aggregator over two villages, refreshed once."""
    a = feed_server.set("/osterby.atom", feed("Østerby", OSTERBY))
    b = feed_server.set("/vesterby.atom", feed("Vesterby", VESTERBY))
    config = config_for(tmp_path, [Source(a, "Østerby"), Source(b, "Vesterby")])
    client = await start_aggregator(aiohttp_client, config)
    await refresher_of(client).refresh_all()
    return client


async def test_healthz(cluster: Any) -> None:
    resp = await cluster.get("/healthz")
    assert resp.status == 200 and await resp.text() == "ok\n"


async def test_feed_has_every_entry_with_its_village_and_answers_304(cluster: Any) -> None:
    resp = await cluster.get("/feed.atom")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("application/atom+xml")
    parsed = read_feed(await resp.read())
    by_title = {i.title: i.source.title if i.source else "" for i in parsed.items}
    assert by_title == {
        "Loppemarked": "Østerby",
        "Strikkeklub": "Østerby",
        "Hjælpere søges": "Østerby",
        "Fodbold": "Vesterby",
        "Vejarbejde": "Vesterby",
    }
    again = await cluster.get("/feed.atom", headers={"If-None-Match": resp.headers["ETag"]})
    assert again.status == 304 and await again.read() == b""
    late = await cluster.get("/feed.atom", headers={"If-Modified-Since": FAR_AHEAD})
    assert late.status == 200 and await late.read() == await resp.read()
    assert outputs_of(cluster).builds == 1


FAR_AHEAD = "Fri, 31 Dec 2100 23:59:59 GMT"


async def test_only_the_etag_decides_a_304(cluster: Any) -> None:
    # RFC 9110 §13.1.3: a date, however late, never gives a 304 (one second is too coarse).
    for path in ("/feed.atom", "/calendar.ics", "/api/events", "/"):
        late = await cluster.get(path, headers={"If-Modified-Since": FAR_AHEAD})
        assert late.status == 200 and await late.read(), path


async def test_calendar_whole_and_filtered(cluster: Any) -> None:
    whole = Calendar.from_ical(await (await cluster.get("/calendar.ics")).read())
    titles = sorted(str(v["SUMMARY"]) for v in whole.walk("VEVENT"))
    assert titles == ["Fodbold", "Loppemarked", "Strikkeklub"]
    [strik] = [v for v in whole.walk("VEVENT") if str(v["SUMMARY"]) == "Strikkeklub"]
    assert str(strik["UID"]) == RECURRING.id and "COUNT=4" in strik["RRULE"].to_ical().decode()
    village = await cluster.get("/calendar.ics", params={"village": "osterby"})
    cal = Calendar.from_ical(await village.read())
    assert sorted(str(v["SUMMARY"]) for v in cal.walk("VEVENT")) == ["Loppemarked", "Strikkeklub"]
    sport = await cluster.get("/calendar.ics", params={"category": "sport"})
    cal = Calendar.from_ical(await sport.read())
    assert [str(v["SUMMARY"]) for v in cal.walk("VEVENT")] == ["Fodbold"]
    cached = await cluster.get(
        "/calendar.ics",
        params={"category": "sport"},
        headers={"If-None-Match": sport.headers["ETag"]},
    )
    assert cached.status == 304


async def test_api_events_expands_recurrences_and_filters(cluster: Any) -> None:
    body = await (await cluster.get("/api/events")).json()
    titles = [e["title"] for e in body["events"]]
    assert titles.count("Strikkeklub") == 4
    assert {"Loppemarked", "Fodbold"} <= set(titles)
    fodbold = next(e for e in body["events"] if e["title"] == "Fodbold")
    assert fodbold["village"] == "Vesterby" and fodbold["village_key"] == "vesterby"
    only = await (await cluster.get("/api/events", params={"village": "vesterby"})).json()
    assert [e["title"] for e in only["events"]] == ["Fodbold"]
    bad = await cluster.get("/api/events", params={"from": "i morgen"})
    assert bad.status == 422
    assert (await bad.json())["error"]["fields"]["from"]


async def test_api_notices_and_sources(cluster: Any) -> None:
    notices = (await (await cluster.get("/api/notices")).json())["notices"]
    assert sorted(n["title"] for n in notices) == ["Hjælpere søges", "Vejarbejde"]
    sources = (await (await cluster.get("/api/sources")).json())["sources"]
    assert [(s["name"], s["health"], s["entries"]) for s in sources] == [
        ("Østerby", "ok", 3),
        ("Vesterby", "ok", 2),
    ]
    assert sources[0]["summary"] == "OK: 3 entries."


async def test_opml_lists_the_sources(cluster: Any) -> None:
    body = (await (await cluster.get("/sources.opml")).read()).decode()
    assert body.count("<outline ") == 2 and 'text="Østerby"' in body and "osterby.atom" in body


async def test_ping_fetches_a_registered_feed(cluster: Any, feed_server: FeedServer) -> None:
    url = feed_server.set("/osterby.atom", feed("Østerby", [*OSTERBY, event("Nyt arrangement")]))
    resp = await cluster.post("/ping", data={"hub.mode": "publish", "hub.url": url})
    assert resp.status == 202

    async def arrived() -> bool:
        return "Nyt arrangement" in [i.title for i in view_of(cluster).merged().items]

    await eventually(arrived)
    unknown = await cluster.post("/ping", data={"hub.mode": "publish", "hub.url": url + "x"})
    assert unknown.status == 404
    assert (await unknown.json())["error"]["code"] == "not_found"
    missing = await cluster.post("/ping", data={"hub.mode": "publish"})
    assert missing.status == 400


FORM = "application/x-www-form-urlencoded"
# (name, Content-Type, body): none of them is a form a program meant to send.
BAD_PINGS = [
    ("not UTF-8", FORM, b"hub.mode=publish&hub.url=http://osterby.test/\xff\xfe.atom"),
    ("a latin-1 charset", FORM + "; charset=latin-1", b"hub.mode=publish&hub.url=%E6"),
    ("an unknown charset", FORM + "; charset=klingon", b"hub.mode=publish&hub.url=x"),
    ("a broken multipart body", "multipart/form-data; boundary=zz", b"--zz\r\nnonsense"),
    ("JSON", "application/json", b'{"hub.url": "\\ud800"}'),
    ("an empty body", FORM, b""),
    ("no hub.url", FORM, b"hub.mode=publish"),
    ("another mode", FORM, b"hub.mode=subscribe&hub.url=http://osterby.test/feed.atom"),
    ("a repeated hub.url", FORM, b"hub.url=http://a.test/feed.atom&hub.url=http://b.test/x"),
    ("a percent-encoded lone surrogate", FORM, b"hub.url=%ED%A0%80"),
    ("percent-encoded latin-1", FORM, b"hub.url=http://%E6.test/feed.atom"),
]


@pytest.mark.parametrize(("content_type", "body"), [row[1:] for row in BAD_PINGS],
                         ids=[row[0] for row in BAD_PINGS])  # fmt: skip
async def test_a_malformed_ping_is_400_with_the_error_shape(
    cluster: Any, content_type: str, body: bytes
) -> None:
    resp = await cluster.post("/ping", data=body, headers={"Content-Type": content_type})
    assert resp.status == 400, await resp.text()
    error = (await resp.json())["error"]
    assert error["code"] == "bad_request"
    assert "hub.mode=publish&hub.url=" in error["message"]


async def test_pings_are_rate_limited_and_coalesced(cluster: Any, feed_server: FeedServer) -> None:
    url = feed_server.url("/osterby.atom")
    limits = refresher_of(cluster).config.limits
    before = feed_server.hits["/osterby.atom"]
    with time_machine.travel(utc_now(), tick=False):  # one minute of the service's clock
        for _ in range(30):
            assert (await cluster.post("/ping", data={"hub.url": url})).status == 202

        async def fetched() -> bool:
            return feed_server.hits["/osterby.atom"] > before

        await eventually(fetched)
        await asyncio.sleep(0.5)  # room for the coalesced follow-ups
    # Thirty pings in a burst: one fetch at once, then one more after each fetch that pings
    # came during, and never more than the minute's budget, however long the burst lasted.
    assert 1 <= feed_server.hits["/osterby.atom"] - before <= limits.ping_fetches_per_minute


async def test_pages_render(cluster: Any) -> None:
    home = await (await cluster.get("/")).text()
    assert "Loppemarked" in home and "Østerby" in home
    cal = await (await cluster.get("/calendar", params={"village": "vesterby"})).text()
    assert "Fodbold" in cal and "Loppemarked" not in cal
    board = await (await cluster.get("/noticeboard")).text()
    assert "Hjælpere søges" in board and "<p>Afgang kl. 7</p>" in board
    page = await cluster.get(f"/events/{RECURRING.id.removeprefix('urn:uuid:')}")
    text = await page.text()
    assert page.status == 200 and "Strikkeklub" in text and text.count("<li><time") == 4
    status = await (await cluster.get("/status")).text()
    assert "OK: 3 entries." in status and "Vesterby" in status
    missing = await cluster.get("/events/00000000-0000-4000-8000-000000000000")
    assert missing.status == 404
    assert (await cluster.get("/events/not-a-uuid")).status == 404


async def test_periodic_polling_runs_one_job_per_source(
    feed_server: FeedServer, tmp_path: Path, aiohttp_client: Any
) -> None:
    from datetime import timedelta

    from aggregator.app import create_app

    a = feed_server.set("/a.atom", feed("Østerby", [event("Loppemarked")]))
    b = feed_server.set("/b.atom", feed("Vesterby", [event("Fodbold")]))
    config = config_for(tmp_path, [Source(a), Source(b)], poll_interval=timedelta(seconds=1))
    client = await aiohttp_client(create_app(config))  # periodic: no ping, no explicit refresh

    async def polled() -> bool:
        titles = {i.title for i in view_of(client).merged().items}
        return titles == {"Loppemarked", "Fodbold"}

    await eventually(polled)
    feed_server.set("/b.atom", feed("Vesterby", [event("Fodbold flyttet")]))

    async def polled_again() -> bool:
        return "Fodbold flyttet" in {i.title for i in view_of(client).merged().items}

    await eventually(polled_again)

    async def saved() -> bool:  # written right after the change, to the source's own file
        path = refresher_of(client).store.path_of(b)
        return path is not None and "Fodbold flyttet" in path.read_text(encoding="utf-8")

    await eventually(saved)


async def test_api_events_window_is_clamped_to_the_horizon(cluster: Any) -> None:
    body = await (await cluster.get("/api/events", params={"from": "0001-01-01"})).json()
    assert body["from"] > "2020" and body["events"] == []  # 18 months back, a month long
    far = await (await cluster.get("/api/events", params={"to": "9999-12-31"})).json()
    assert far["to"] < "2029"
    end_of_time = await cluster.get("/api/events", params={"from": "9999-12-31"})
    assert end_of_time.status == 200 and (await end_of_time.json())["events"] == []
    backwards = await cluster.get("/api/events", params={"from": "2026-12-31", "to": "2026-01-01"})
    assert backwards.status == 200 and (await backwards.json())["events"] == []
