"""Hostile and broken sources, each served by a real local server next to a good village.

For every case: the aggregator stays up and answers /healthz, the good village is unaffected,
nothing hostile reaches any output, and /status names the problem in words.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import aggregator_support as support
import pytest
from aggregator_support import (
    FeedServer,
    Route,
    config_for,
    event,
    feed,
    notice,
    refresher_of,
    start_aggregator,
    view_of,
)
from aiohttp import web
from clock_support import utc_now

from aggregator.config import Source
from klynge.atom.reader import read_feed
from klynge.model import FeedSource, Tombstone

feed_server = support.feed_server  # a fixture

GOOD = [event("Julefrokost"), notice("Juletræer til salg")]
XE = "&lt;script&gt;alert(1)&lt;/script&gt;"
JS = "javascript:alert(1)"
OUTPUTS = (
    "/feed.atom",
    "/calendar.ics",
    "/api/events",
    "/api/notices",
    "/api/sources",
    "/sources.opml",
    "/",
    "/calendar",
    "/noticeboard",
    "/status",
)


async def _slow(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "application/atom+xml"})
    await resp.prepare(request)
    for _ in range(60):  # bounded: one byte a second for at most a minute
        await resp.write(b"<")
        await asyncio.sleep(1)
    return resp


async def _huge(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "application/atom+xml"})
    await resp.prepare(request)
    chunk = b"<!-- " + b"x" * 65_000 + b" -->"
    for _ in range(50_000_000 // len(chunk)):  # 50 MB unless the client hangs up first
        await resp.write(chunk)
    return resp


async def _loop(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(f"/loop?n={int(request.query.get('n', '0')) + 1}")


def _bomb() -> Route:
    body = gzip.compress(b" " * 50_000_000, compresslevel=9)  # ≈ 50 kB that inflate to 50 MB
    handler_body = body

    async def handler(request: web.Request) -> web.StreamResponse:
        headers = {"Content-Type": "application/atom+xml", "Content-Encoding": "gzip"}
        return web.Response(body=handler_body, headers=headers)

    return Route(handler=handler)


GOOD_FEED = feed("Østerby", [event("Adventsmarked")])
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE feed [<!ENTITY a "lol"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">]>
<feed xmlns="http://www.w3.org/2005/Atom"><id>urn:x</id><title>&f;</title>
<updated>2026-11-27T10:00:00Z</updated></feed>"""
EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE feed [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<feed xmlns="http://www.w3.org/2005/Atom"><id>urn:x</id><title>&xxe;</title>
<updated>2026-11-27T10:00:00Z</updated>
<entry><id>urn:uuid:33333333-3333-4333-8333-333333333333</id><title>&xxe;</title>
<updated>2026-11-27T10:00:00Z</updated></entry></feed>"""

# case -> (route, words expected in the source's last error)
BROKEN: dict[str, tuple[Callable[[], Route], str]] = {
    "malformed XML": (
        lambda: Route(b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><entry>'),
        "not well-formed",
    ),
    "truncated body": (lambda: Route(GOOD_FEED[: len(GOOD_FEED) // 2]), "not well-formed"),
    "HTML instead of a feed": (
        lambda: Route(b"<!doctype html><html><body><h1>Velkommen</h1></body></html>", "text/html"),
        "HTML",
    ),
    "50 MB body": (lambda: Route(handler=_huge), "larger than"),
    "gzip bomb": (_bomb, "larger than"),
    "one byte a second": (lambda: Route(handler=_slow), "timed out"),
    "redirect loop": (lambda: Route(handler=_loop), "too many redirects"),
    "billion laughs": (lambda: Route(BILLION_LAUGHS), "entit"),
    "external entities": (lambda: Route(EXTERNAL), "entit"),
}


async def start(
    feed_server: FeedServer, tmp_path: Path, aiohttp_client: Any, hostile: Route, path: str
) -> tuple[Any, str, str]:
    """Start an aggregator over a good village and a hostile source; refresh once."""
    good = feed_server.set("/good.atom", feed("Vesterby", GOOD))
    feed_server.routes[path] = hostile
    bad = feed_server.url(path)
    config = config_for(tmp_path, [Source(good, "Vesterby"), Source(bad, "Ond")])
    client = await start_aggregator(aiohttp_client, config)
    return client, good, bad


async def refresh_watching_healthz(client: Any) -> list[Any]:
    """Refresh all sources while checking that /healthz keeps answering."""
    task = asyncio.ensure_future(refresher_of(client).refresh_all())
    answered = 0
    while not task.done():
        resp = await client.get("/healthz")
        assert resp.status == 200
        answered += 1
        await asyncio.sleep(0.05)
    assert answered >= 1
    return list(await task)


async def outputs_text(client: Any) -> dict[str, str]:
    return {path: await (await client.get(path)).text() for path in OUTPUTS}


def assert_clean(texts: dict[str, str]) -> None:
    for path, text in texts.items():
        lowered = text.lower()
        assert "<script>alert" not in lowered, path
        assert "javascript:" not in lowered, path
        assert "onerror" not in lowered, path
        assert "/etc/passwd" not in lowered and "root:x:" not in lowered, path


async def status_row(client: Any, url: str) -> dict[str, Any]:
    sources = (await (await client.get("/api/sources")).json())["sources"]
    return next(s for s in sources if s["url"] == url)


@pytest.mark.parametrize("case", list(BROKEN))
async def test_broken_source_is_contained(
    case: str, feed_server: FeedServer, tmp_path: Path, aiohttp_client: Any
) -> None:
    route, words = BROKEN[case]
    path = "/loop" if case == "redirect loop" else "/bad.atom"
    client, good, bad = await start(feed_server, tmp_path, aiohttp_client, route(), path)
    outcomes = {o.url: o for o in await refresh_watching_healthz(client)}
    assert outcomes[good].ok and not outcomes[bad].ok
    row = await status_row(client, bad)
    assert row["health"] in ("failing", "stale") and words in row["last_error"], row
    status = await (await client.get("/status")).text()
    assert words in status
    titles = [e["title"] for e in (await (await client.get("/api/events")).json())["events"]]
    assert titles == ["Julefrokost"]
    assert (await status_row(client, good))["health"] == "ok"
    assert_clean(await outputs_text(client))


def _hostile_feed(link: str) -> bytes:
    """A feed with script in every text field; links are hostile or, in a second entry, fine."""
    entry = """<entry><id>urn:uuid:{n}</id>
<title type="html">{x} {name}</title><updated>{now}</updated>
<author><name>{x}</name></author><category term="sport" label="{x}"/>
<link rel="alternate" type="text/html" href="{link}"/><link rel="related" href="{link}"/>
<summary type="html">{x}&lt;a href="{js}"&gt;klik&lt;/a&gt;
&lt;img src=x onerror=alert(1)&gt;</summary>
<klynge:kind>event</klynge:kind><klynge:start>{start}</klynge:start>
<klynge:location>{x}</klynge:location><klynge:street>{x}</klynge:street>
<klynge:organizer>{x}</klynge:organizer><klynge:organizerurl>{link}</klynge:organizerurl>
</entry>"""
    start = utc_now().replace(hour=18, minute=0) + timedelta(days=9)
    values = {"x": XE, "js": JS, "now": utc_now().isoformat(), "start": start.isoformat()}
    entries = entry.format(
        n="44444444-4444-4444-8444-444444444444", name="Fest", link=link, **values
    )
    entries += entry.format(
        n="55555555-5555-4555-8555-555555555555",
        name="Koncert",
        link="https://ond.example/",
        **values,
    )
    return f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:klynge="https://purl.org/klynge/ns/1.0">
<id>urn:klynge:ond</id><title>{XE} Ond</title><updated>{values["now"]}</updated>
<link rel="self" href="{JS}"/><author><name>{XE}</name></author>
<entry><id>urn:uuid:66666666-6666-4666-8666-666666666666</id>
<title type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml"><script>alert(1)</script>Opslag</div></title>
<updated>{values["now"]}</updated><klynge:kind>notice</klynge:kind>
<content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">
<script>alert(1)</script><a href="{JS}">x</a></div></content>
</entry>
{entries}</feed>""".encode()


async def test_script_and_javascript_in_every_field_never_reach_an_output(
    feed_server: FeedServer, tmp_path: Path, aiohttp_client: Any
) -> None:
    client, _good, bad = await start(
        feed_server, tmp_path, aiohttp_client, Route(_hostile_feed(JS)), "/bad.atom"
    )
    await refresh_watching_healthz(client)
    row = await status_row(client, bad)
    # The entry with javascript: links is refused and /status says why; the rest is cleaned.
    assert any("Only http:// and https:// links" in p for p in row["problems"]), row
    titles = sorted(i.title for i in view_of(client).merged().items)
    assert titles == ["Julefrokost", "Juletræer til salg", "Koncert", "Opslag"]
    texts = await outputs_text(client)
    event_id = "55555555-5555-4555-8555-555555555555"
    texts["event page"] = await (await client.get(f"/events/{event_id}")).text()
    assert "Koncert" in texts["event page"] and "Koncert" in texts["/calendar.ics"]
    assert_clean(texts)


async def test_a_village_cannot_speak_for_another(
    feed_server: FeedServer, tmp_path: Path, aiohttp_client: Any
) -> None:
    real = event("Juletræstænding")
    a = feed_server.set("/a.atom", feed("Østerby", [real]))
    config = config_for(tmp_path, [Source(a, "Østerby"), Source(feed_server.url("/c.atom"), "Ond")])
    client = await start_aggregator(aiohttp_client, config)
    refresher = refresher_of(client)
    await refresher.refresh_all()
    a_origin = refresher.states[a].content.origin
    assert a_origin is not None
    claimed = FeedSource(id=a_origin.id, title="Østerby", self_url=a)
    newer = utc_now()
    hijack = dataclasses.replace(
        real, title="Aflyst! Kom til Ond i stedet", updated=newer, source=claimed
    )
    impostor = event("Falsk Østerby-fest", source=claimed)
    # Same feed id as Østerby too, to try impersonation at the feed level.
    meta_feed = feed("Østerby", [hijack, impostor], [Tombstone(real.id, newer, claimed)])
    feed_server.set(
        "/c.atom", meta_feed.replace(b"urn:klynge:\xc3\xb8sterby", a_origin.id.encode())
    )
    await refresher.refresh_all()
    merged = {i.title: i for i in view_of(client).merged().items}
    # The hijack is Ond's own entry (here deleted again by Ond's own tombstone), never Østerby's.
    assert "Juletræstænding" in merged and "Aflyst! Kom til Ond i stedet" not in merged
    assert merged["Juletræstænding"].source and merged["Juletræstænding"].source.self_url == a
    assert merged["Juletræstænding"].id == real.id
    fake = merged["Falsk Østerby-fest"]
    assert fake.source is not None and fake.source.title == "Ond" and fake.source.self_url != a
    atom = read_feed(await (await client.get("/feed.atom")).read())
    by_title = {i.title: i.source.title if i.source else "" for i in atom.items}
    assert by_title == {"Juletræstænding": "Østerby", "Falsk Østerby-fest": "Ond"}
    assert real.id not in {
        t.id for t in atom.tombstones if t.source and t.source.title == "Østerby"
    }


async def test_a_feed_that_drops_everything_is_held_back(
    feed_server: FeedServer, tmp_path: Path, aiohttp_client: Any
) -> None:
    client, _good, bad = await start(
        feed_server, tmp_path, aiohttp_client, Route(feed("Ond", [event("Nytårskur")])), "/bad.atom"
    )
    await refresher_of(client).refresh_all()
    feed_server.set("/bad.atom", feed("Ond", []))
    await refresh_watching_healthz(client)
    row = await status_row(client, bad)
    assert row["held_back"] == 1 and "would remove 1 of 1 upcoming entry;" in row["summary"]
    assert "would remove 1 of 1" in await (await client.get("/status")).text()
    titles = [e["title"] for e in (await (await client.get("/api/events")).json())["events"]]
    assert sorted(titles) == ["Julefrokost", "Nytårskur"]
    await refresher_of(client).refresh_all()  # confirmed by the next fetch
    titles = [e["title"] for e in (await (await client.get("/api/events")).json())["events"]]
    assert titles == ["Julefrokost"]
