"""An editor's repeat rule or title cannot take a node or the cluster down.

Each attack that once succeeded, against a real node (its JSON API) and a real aggregator
polling a real feed server: the bad rule is refused in words (the pinned error shape, per
field, Danish by default), the node keeps answering every page, feed and calendar with the
other entries, /healthz answers throughout, and the aggregator refuses just that entry.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import aggregator_support as support
import icalendar
import node_support
import pytest
from aggregator_support import FeedServer, config_for, refresher_of, start_aggregator, view_of
from clock_support import local_today, utc_now
from node_support import Client, NodeDir, auth

from aggregator.config import Source
from klynge.ical.reader import read_calendar

feed_server = support.feed_server  # a fixture
SOON = local_today() + timedelta(days=7)
GOOD = {"title": "Loppemarked", "start": f"{SOON}T10:00", "end": f"{SOON}T14:00"}
NODE_OUTPUTS = ("/", "/feed.atom", "/calendar.ics", "/healthz")
ANSWER_WITHIN = 10.0  # seconds: a bound on a request that once never answered, not a timing

# attack -> (rule, the English message, the Danish message)
ATTACKS: dict[str, tuple[str, str, str]] = {
    "CR/LF smuggles an ATTENDEE line": (
        "FREQ=WEEKLY;COUNT=2\r\nATTENDEE:mailto:e@x",
        "A repeat rule may only contain letters, digits and = ; , + -.",
        "En gentagelsesregel må kun indeholde bogstaver, tal og = ; , + -.",
    ),
    "INTERVAL=0 loops forever in dateutil": (
        "FREQ=DAILY;INTERVAL=0;COUNT=5",
        "INTERVAL must be a whole number from 1 to 1000.",
        "INTERVAL skal være et helt tal fra 1 til 1000.",
    ),
    "BYHOUR/BYMINUTE/BYSECOND make a daily rule hourly": (
        "FREQ=DAILY;BYHOUR=1,2,3,4;BYMINUTE=0,15,30,45;BYSECOND=0,30;COUNT=400",
        "A repeat rule cannot set times of day (BYHOUR, BYMINUTE, BYSECOND); "
        "the event's start gives the time.",
        "En gentagelsesregel kan ikke angive klokkeslæt (BYHOUR, BYMINUTE, BYSECOND); "
        "begivenhedens start giver tidspunktet.",
    ),
    "a second COUNT passes the limit": (
        "COUNT=1;COUNT=100000;FREQ=DAILY",
        "Each part of the repeat rule may be given only once.",
        "Hver del af gentagelsesreglen må kun angives én gang.",
    ),
    "an unknown part": (
        "FREQ=WEEKLY;COUNT=2;X-NAME=1",
        "The repeat rule has a part Klynge does not know; use FREQ, INTERVAL, COUNT, UNTIL, "
        "BYDAY, BYMONTHDAY, BYMONTH, BYYEARDAY, BYWEEKNO, BYSETPOS or WKST.",
        "Gentagelsesreglen har en del, som Klynge ikke kender; brug FREQ, INTERVAL, COUNT, "
        "UNTIL, BYDAY, BYMONTHDAY, BYMONTH, BYYEARDAY, BYWEEKNO, BYSETPOS eller WKST.",
    ),
    "COUNT=0": (
        "FREQ=WEEKLY;COUNT=0",
        "COUNT must be a whole number from 1 to 500.",
        "COUNT skal være et helt tal fra 1 til 500.",
    ),
}


node_dir, client = node_support.node_dir, node_support.client  # fixtures


async def post_event(client: Client, token: str, lang: str = "", **changes: Any) -> Any:
    headers = {**auth(token), **({"Accept-Language": lang} if lang else {})}
    call = client.post("/api/events", json={**GOOD, **changes}, headers=headers)
    return await asyncio.wait_for(call, ANSWER_WITHIN)


async def node_texts(client: Client) -> dict[str, str]:
    texts = {}
    for path in NODE_OUTPUTS:
        response = await asyncio.wait_for(client.get(path), ANSWER_WITHIN)
        assert response.status == 200, path
        texts[path] = await response.text()
    return texts


@pytest.mark.parametrize("attack", list(ATTACKS))
async def test_node_refuses_the_rule_in_words_and_keeps_serving(
    client: Client, node_dir: NodeDir, attack: str
) -> None:
    rule, english, danish = ATTACKS[attack]
    good = await post_event(client, node_dir.token, rrule="FREQ=WEEKLY;COUNT=3")
    assert good.status == 201
    refused = await post_event(client, node_dir.token, "en", title="Giftpille", rrule=rule)
    assert refused.status == 422
    error = (await refused.json())["error"]
    assert (error["code"], error["fields"]) == ("invalid", {"rrule": english})
    in_danish = await post_event(client, node_dir.token, title="Giftpille", rrule=rule)
    assert (await in_danish.json())["error"]["fields"] == {"rrule": danish}
    texts = await node_texts(client)
    assert "Loppemarked" in texts["/"] and "Loppemarked" in texts["/calendar.ics"]
    assert "Giftpille" not in "".join(texts.values())
    calendar = icalendar.Calendar.from_ical(texts["/calendar.ics"])
    assert [str(e["RRULE"].to_ical(), "ascii") for e in calendar.walk("VEVENT")] == [
        "FREQ=WEEKLY;COUNT=3"
    ]


async def test_a_patch_with_a_frozen_rule_is_refused_and_the_node_answers(
    client: Client, node_dir: NodeDir
) -> None:
    created = await (await post_event(client, node_dir.token)).json()
    patch = client.patch(
        f"/api/events/{created['id']}",
        json={"rrule": "FREQ=DAILY;INTERVAL=0;COUNT=5"},
        headers={**auth(node_dir.token), "Accept-Language": "en"},
    )
    response = await asyncio.wait_for(patch, ANSWER_WITHIN)
    assert response.status == 422
    assert (await response.json())["error"]["fields"]["rrule"].startswith("INTERVAL must be")
    assert (await (await client.get("/healthz")).text()).strip()
    assert "Loppemarked" in (await node_texts(client))["/"]


async def test_the_rule_is_stored_and_served_in_canonical_form(
    client: Client, node_dir: NodeDir
) -> None:
    response = await post_event(
        client, node_dir.token, rrule="rrule:count=4;byday=we,mo;freq=weekly"
    )
    assert response.status == 201
    assert (await response.json())["rrule"] == "FREQ=WEEKLY;BYDAY=MO,WE;COUNT=4"
    texts = await node_texts(client)
    assert "<klynge:rrule>FREQ=WEEKLY;BYDAY=MO,WE;COUNT=4</klynge:rrule>" in texts["/feed.atom"]
    assert "RRULE:FREQ=WEEKLY;BYDAY=MO,WE;COUNT=4\r\n" in texts["/calendar.ics"].replace(
        "\n", "\r\n"
    ).replace("\r\r", "\r")


async def test_line_breaks_in_a_title_or_place_are_one_line_everywhere(
    client: Client, node_dir: NodeDir
) -> None:
    response = await post_event(
        client,
        node_dir.token,
        title="Fest\r\nATTENDEE:mailto:e@x",
        location={"name": "Hallen\nBEGIN:VALARM", "locality": "Østerby\u2028By"},
    )
    assert response.status == 201
    stored = await response.json()
    assert stored["title"] == "Fest ATTENDEE:mailto:e@x"
    assert stored["location"]["name"] == "Hallen BEGIN:VALARM"
    assert stored["location"]["locality"] == "Østerby By"
    own = await asyncio.wait_for(client.get(f"/events/{stored['id']}.ics"), ANSWER_WITHIN)
    assert own.status == 200
    for body in ((await own.read()).decode(), (await node_texts(client))["/calendar.ics"]):
        lines = body.split("\r\n")
        assert "SUMMARY:Fest ATTENDEE:mailto:e@x" in lines
        assert not any(line.startswith(("ATTENDEE", "BEGIN:VALARM")) for line in lines)
        assert [e["SUMMARY"] for e in icalendar.Calendar.from_ical(body).walk("VEVENT")] == [
            "Fest ATTENDEE:mailto:e@x"
        ]


# --- the aggregator -------------------------------------------------------------------------

ENTRY = """<entry><id>urn:uuid:{uuid}</id><title>{title}</title><updated>{now}</updated>
<author><name>Østerby IF</name></author>
<klynge:kind>event</klynge:kind><klynge:start>{start}</klynge:start>
<klynge:tzid>Europe/Copenhagen</klynge:tzid><klynge:rrule>{rule}</klynge:rrule></entry>"""


def village_feed(rules: dict[str, str]) -> bytes:
    """A village feed with one event per (title, rule), written by hand as an old node might."""
    now = utc_now()
    start = (now + timedelta(days=2)).replace(hour=17, minute=0, second=0, microsecond=0)
    entries = "".join(
        ENTRY.format(
            uuid=f"{n:08d}-0000-4000-8000-000000000000",
            title=title,
            now=now.isoformat(),
            start=start.isoformat(),
            rule=rule.replace("\r", "&#13;").replace("\n", "&#10;"),
        )
        for n, (title, rule) in enumerate(rules.items())
    )
    return f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:klynge="https://purl.org/klynge/ns/1.0">
<id>urn:klynge:osterby</id><title>Østerby</title><updated>{now.isoformat()}</updated>
<author><name>Østerby</name></author>{entries}</feed>""".encode()


AGGREGATOR_OUTPUTS = ("/", "/calendar", "/poster", "/api/events", "/calendar.ics", "/feed.atom")


async def test_aggregator_refuses_each_bad_entry_and_serves_the_rest(
    feed_server: FeedServer, tmp_path: Path, aiohttp_client: Any
) -> None:
    rules = {f"Gift {n}": rule for n, (rule, _, _) in enumerate(ATTACKS.values())}
    url = feed_server.set(
        "/osterby.atom", village_feed({"Strikkeklub": "FREQ=WEEKLY;COUNT=4", **rules})
    )
    client = await start_aggregator(aiohttp_client, config_for(tmp_path, [Source(url, "Østerby")]))
    task = asyncio.ensure_future(refresher_of(client).refresh_all())
    while not task.done():  # the parser thread once spun for good on INTERVAL=0
        assert (await asyncio.wait_for(client.get("/healthz"), ANSWER_WITHIN)).status == 200
        await asyncio.sleep(0.05)
    (outcome,) = await asyncio.wait_for(task, ANSWER_WITHIN)
    assert outcome.ok
    titles = {i.title for i in view_of(client).merged().items}
    assert titles == {"Strikkeklub"}
    for path in AGGREGATOR_OUTPUTS:
        response = await asyncio.wait_for(client.get(path), ANSWER_WITHIN)
        text = await response.text()
        assert response.status == 200, path
        assert "Strikkeklub" in text and "Gift" not in text, path
    sources = (await (await client.get("/api/sources")).json())["sources"]
    problems = " ".join(sources[0]["problems"])
    for _, english, _ in ATTACKS.values():
        assert english in problems


ICS = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Someone//Else//EN\r
BEGIN:VEVENT\r
UID:frozen@example.org\r
SUMMARY:Gift\r
DTSTART;TZID=Europe/Copenhagen:20261210T190000\r
RRULE:FREQ=DAILY;INTERVAL=0;COUNT=5\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:hourly@example.org\r
SUMMARY:Gift\r
DTSTART;TZID=Europe/Copenhagen:20261210T190000\r
RRULE:FREQ=DAILY;BYHOUR=1,2,3;COUNT=5\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:good@example.org\r
SUMMARY:Strikkeklub\r
DTSTART;TZID=Europe/Copenhagen:20261210T190000\r
RRULE:FREQ=WEEKLY;COUNT=5\r
END:VEVENT\r
END:VCALENDAR\r
"""


def test_an_ics_source_refuses_each_bad_rule_in_words() -> None:
    events, problems = read_calendar(ICS.encode(), now=utc_now())
    assert [(e.title, str(e.rrule)) for e in events] == [("Strikkeklub", "FREQ=WEEKLY;COUNT=5")]
    assert [p.english() for p in problems] == [
        "Event frozen@example.org (Gift) skipped: rrule: INTERVAL must be a whole number from 1 "
        "to 1000.",
        "Event hourly@example.org (Gift) skipped: rrule: A repeat rule cannot set times of day "
        "(BYHOUR, BYMINUTE, BYSECOND); the event's start gives the time.",
    ]
