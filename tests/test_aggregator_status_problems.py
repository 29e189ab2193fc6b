"""Every problem of a source is accounted for on /status: examples of each kind, the rest counted.

A calendar with 98 problems (issue 12: /status showed 20) is served by a real loopback server
to a real aggregator; /api/sources and /status then list the first examples of each kind and
count every other problem, so the counts add up to the whole.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import aggregator_support as support
from aggregator_support import FAST, FeedServer, Route, config_for, refresher_of, start_aggregator

from aggregator.config import Source
from aggregator.web.status import EXAMPLES, KINDS, MORE_KINDS, MORE_OF_KIND, grouped
from klynge.ical.reader import NO_START as A
from klynge.ical.reader import NO_UID as B
from klynge.messages import CATALOGUE, Message

feed_server = support.feed_server  # a fixture


def _entry(kind: str, n: int) -> Message:
    return Message("ical.skipped", {"uid": f"e{n}", "summary": ""}, Message(kind))


def test_grouped_keeps_examples_of_each_kind_and_counts_the_rest() -> None:
    problems = [_entry(A, n) for n in range(12)] + [_entry(B, n) for n in range(2)]
    shown = grouped(problems)
    assert shown[:EXAMPLES] == problems[:EXAMPLES]
    more = shown[EXAMPLES]
    assert (more.code, more.params["n"]) == (MORE_OF_KIND, 12 - EXAMPLES)
    assert more.params["what"] == Message(A)
    assert shown[EXAMPLES + 1 :] == problems[12:]  # two of kind b: both shown, nothing counted


def test_grouped_counts_the_kinds_past_the_limit() -> None:
    kinds = sorted(CATALOGUE)[: KINDS + 3]
    problems = [Message(code, {"n": i}) for code in kinds for i in range(2)]
    shown = grouped(problems)
    assert shown[-1] == Message(MORE_KINDS, {"n": 6})
    assert len(shown) == KINDS * 2 + 1


def _calendar(n: int) -> bytes:
    no_start = "".join(
        f"BEGIN:VEVENT\r\nUID:e{i}@x\r\nSUMMARY:Uden tid {i}\r\nEND:VEVENT\r\n" for i in range(n)
    )
    no_uid = "".join(
        f"BEGIN:VEVENT\r\nSUMMARY:Uden id {i}\r\nDTSTART:202612{10 + i % 9}T180000Z\r\n"
        "END:VEVENT\r\n"
        for i in range(8)
    )
    head = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//x//EN\r\n"
    return (head + no_start + no_uid + "END:VCALENDAR\r\n").encode()


async def test_status_accounts_for_all_98_problems_of_a_calendar(
    feed_server: FeedServer, tmp_path: Path, aiohttp_client: Any
) -> None:
    feed_server.routes["/cal.ics"] = Route(_calendar(90), "text/calendar")
    source = Source(feed_server.url("/cal.ics"), "Kalender", "ics")
    client = await start_aggregator(aiohttp_client, config_for(tmp_path, [source], limits=FAST))
    await refresher_of(client).refresh_all()
    (row,) = (await (await client.get("/api/sources")).json())["sources"]
    assert row["problems_total"] == 98 and row["entries"] == 8
    said = [Message.from_json(m) for m in row["messages"]["problems"]]
    counted = sum(int(m.params["n"]) for m in said if m.code == MORE_OF_KIND)
    assert len(said) - sum(1 for m in said if m.code == MORE_OF_KIND) + counted == 98
    assert any("85 more like this: it has no start (DTSTART)." in p for p in row["problems"])
    page = await (await client.get("/status")).text()
    assert "(98)" in page
    assert re.search(r"og 85 mere af samme slags: den har ingen start", page), page[-3000:]
