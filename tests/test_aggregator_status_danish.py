"""/status reads fully in Danish for every problem kind the other tests produce.

One aggregator reads a good village beside every broken source of the hostile tests, plus
HTTP errors, a refused connection, documents that are no feed, a parse that overruns, the
entry limit, dropped entries, an .ics source with problems and a held-back removal. Each
source's messages (from /api/sources) are rendered in Danish, and the page must not contain
the English words of any code they use.
"""

from __future__ import annotations

import dataclasses
import re
import socket
from collections.abc import Callable, Iterator
from html import unescape
from pathlib import Path
from typing import Any

import aggregator_support as support
import time_machine
from aggregator_support import (
    FAST,
    FeedServer,
    Route,
    config_for,
    event,
    feed,
    refresher_of,
    start_aggregator,
)
from clock_support import utc_now
from patience import patient
from test_aggregator_hostile import BROKEN, JS, _hostile_feed
from test_aggregator_hostile_village import slow_feed
from test_messages import DANISH, SAME_IN_DANISH

from aggregator.config import Source
from klynge.messages import CATALOGUE, Message

feed_server = support.feed_server  # a fixture

ICS = b"""BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r
SUMMARY:Uden id\r\nDTSTART:20261210T180000Z\r\nEND:VEVENT\r\nBEGIN:VEVENT\r
UID:changed@example.org\r\nRECURRENCE-ID:20261210T180000Z\r\nSUMMARY:Flyttet\r
DTSTART:20261211T180000Z\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:ok@example.org\r
SUMMARY:Strik\r\nDTSTART:20261212T180000Z\r\nRRULE:FREQ=WEEKLY\r\nCREATED:garbage\r
END:VEVENT\r\nBEGIN:VEVENT\r\nUID:no-start@example.org\r\nSUMMARY:Uden tid\r
END:VEVENT\r\nEND:VCALENDAR\r\n"""

# path -> what is served there (the broken routes of tests/test_aggregator_hostile.py too)
ROUTES: dict[str, Callable[[], Route]] = {
    **{f"/broken-{n}": route for n, (route, _words) in enumerate(BROKEN.values())},
    "/gone": lambda: Route(b"gone", "text/plain", status=404),
    "/down": lambda: Route(feed("Nede", [event("N0")])),  # 503 on the second fetch
    "/opml": lambda: Route(b"<?xml version='1.0'?><opml version='2.0'/>", "text/xml"),
    "/empty": lambda: Route(b"   ", "application/atom+xml"),
    "/slow-parse": lambda: Route(slow_feed(40)),
    "/many": lambda: Route(feed("Mange", [event(f"E{n}", days=n + 1) for n in range(8)])),
    "/hostile": lambda: Route(_hostile_feed(JS)),
    "/held": lambda: Route(feed("Holdt", [event(f"H{n}", days=n + 1) for n in range(4)])),
}
EXPECTED = {  # codes the page must show, one or more per kind of problem
    "http.status",
    "http.connect",
    "http.refused",
    "http.too_large",
    "http.too_large_decoded",
    "http.timeout",
    "http.redirects",
    "feed.dtd",
    "feed.html",
    "feed.empty",
    "feed.other_root",
    "refresh.not_usable",
    "refresh.broken_xml_because",
    "parse.too_slow",
    "feed.too_many_entries",
    "refresh.in_entry",
    "model.not_http",
    "ical.skipped",
    "ical.no_uid",
    "ical.no_start",
    "ical.broken_property",
    "ical.bounded",
    "merge.held_back",
    "status.failing",
    "status.stale",
    "status.ok_note",
}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _codes(message: Message) -> Iterator[Message]:
    yield message
    for value in message.params.values():
        if isinstance(value, Message):
            yield from _codes(value)
    if message.cause is not None:
        yield from _codes(message.cause)


def _messages(row: dict[str, Any]) -> list[Message]:
    said = row["messages"]
    found = [said[k] for k in ("summary", "last_error", "flag", "limited") if said[k]]
    return [Message.from_json(m) for m in [*found, *said["problems"]]]


def _english_fragments(code: str) -> set[str]:
    """Return the runs of two or more English words in a code's templates."""
    words = CATALOGUE[code]
    pieces = re.split(r"%\(\w+\)[sdgr]", f"{words.singular}%(x)s{words.plural}")
    runs = {" ".join(re.findall(r"[A-Za-z']+", piece)) for piece in pieces}
    danish = " ".join(DANISH.get(words.singular, ()))
    return {run for run in runs if " " in run and run not in danish}


def _reader_text(html: str) -> str:
    """Return what a reader of the page reads: no attributes, no English technical text."""
    html = re.sub(r'<details class="technical-text">.*?</details>', "", html, flags=re.S)
    html = re.sub(r"<[^>]*>", " ", html)  # tags with their attributes (titles, links)
    return " ".join(unescape(html).split())


async def _refresh_all(feed_server: FeedServer, tmp_path: Path, aiohttp_client: Any) -> Any:
    sources = [Source(feed_server.set("/good.atom", feed("Vesterby", [event("Julefrokost")])))]
    for path, route in ROUTES.items():
        feed_server.routes[path] = route()
        name = "Loop" if path == "/broken-6" else path.strip("/")
        url = feed_server.url("/loop" if name == "Loop" else path)
        if name == "Loop":
            feed_server.routes["/loop"] = feed_server.routes.pop(path)
        sources.append(Source(url, name))
    feed_server.routes["/cal.ics"] = Route(ICS, "text/calendar")
    sources.append(Source(feed_server.url("/cal.ics"), "Kalender", "ics"))
    sources.append(Source(f"http://127.0.0.1:{_closed_port()}/feed.atom", "Lukket"))
    # /slow-parse takes seconds to read, the others a fraction of the (stretched) bound.
    limits = dataclasses.replace(FAST, parse_timeout=patient(0.5), max_entries=6)
    client = await start_aggregator(aiohttp_client, config_for(tmp_path, sources, limits=limits))
    refresher = refresher_of(client)
    # The slow hostile sources hold the fetcher's two connections per host for seconds: the
    # sources whose story has two chapters are fetched alone, before and after the others.
    twice = {s.url: s for s in sources if s.name in ("held", "down", "gone")}
    for source in twice.values():
        await refresher.refresh_source(source)
    await refresher.refresh_all()
    feed_server.routes["/held"] = Route(feed("Holdt", [event("H0", days=1)]))
    feed_server.routes["/down"] = Route(b"", status=503)
    for source in twice.values():
        await refresher.refresh_source(source)
    return client


async def test_status_reads_fully_in_danish(
    feed_server: FeedServer, tmp_path: Path, aiohttp_client: Any
) -> None:
    client = await _refresh_all(feed_server, tmp_path, aiohttp_client)
    # Both answers at one instant: "last success 2 s ago" must not become "3 s" in between.
    with time_machine.travel(utc_now(), tick=False):
        rows = (await (await client.get("/api/sources")).json())["sources"]
        page = _reader_text(await (await client.get("/status")).text())
    messages = [m for row in rows for m in _messages(row)]
    used = {part.code for m in messages for part in _codes(m)}
    assert used >= EXPECTED, sorted(EXPECTED - used)
    for message in messages:
        if message.code not in SAME_IN_DANISH:
            assert message.render("da") != message.english(), message
    for message in messages:
        assert message.render("da") in page or message in _problems_beyond_the_first(rows)
    assert not _leftovers(used, page), sorted(_leftovers(used, page))
    # The check can fail: the English page is full of what it looks for.
    english = _reader_text(await (await client.get("/status?lang=en")).text())
    assert len(_leftovers(used, english)) >= 20


def _leftovers(codes: set[str], page: str) -> set[tuple[str, str]]:
    return {(code, run) for code in codes for run in _english_fragments(code) if run in page}
    assert "(1 fejl i træk," in page, page
    assert "(3 fejl i træk," in page, page  # gone: fetched alone twice, and with the rest


def _problems_beyond_the_first(rows: list[dict[str, Any]]) -> list[Message]:
    # /status shows at most 20 problems of a source, as /api/sources does.
    return [Message.from_json(p) for row in rows for p in row["messages"]["problems"][20:]]
