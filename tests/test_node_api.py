"""The node's JSON API end to end: the CLI makes users and tokens, the API changes entries, and
after every step the feed (klynge feed check + feedparser + lxml) and the calendar (icalendar)
show exactly the expected state. Also conditional GET and concurrent posts."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import feedparser
import icalendar
import node_support
import pytest
from clock_support import local_today
from lxml import etree
from node_support import Client, NodeDir, auth, feed_check

from node.store import Store

ATOM = "{http://www.w3.org/2005/Atom}"
TOMBSTONE = "{http://purl.org/atompub/tombstones/1.0}deleted-entry"
SOON = local_today() + timedelta(days=7)


node_dir, client = node_support.node_dir, node_support.client  # fixtures


def event_payload(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "title": "Fællesspisning",
        "start": f"{SOON}T18:00",
        "end": f"{SOON}T21:00",
        "location": {
            "name": "Forsamlingshuset",
            "street": "Hovedgaden 12",
            "postcode": "4000",
            "locality": "Østerby",
            "lat": 55.64,
            "lon": 11.82,
        },
        "category": "food",
        "description": "<p>Tag en ret med.</p>",
    }
    return {**base, **changes}


async def feed_state(client: Client, tmp: Path) -> tuple[dict[str, dict[str, str]], set[str]]:
    """Return {id: {title, status, sequence, kind}} and the tombstone ids of /feed.atom."""
    response = await client.get("/feed.atom")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("application/atom+xml")
    data = await response.read()
    summary = feed_check(data, tmp)
    parsed = feedparser.parse(data)
    prefix = next(p for p, uri in parsed.namespaces.items() if uri.endswith("/klynge/ns/1.0"))
    # The format leaves defaults out: status confirmed (events), sequence 0.
    entries = {
        e.id: {
            "title": e.title,
            "kind": e[f"{prefix}_kind"],
            "status": e.get(f"{prefix}_status", _default_status(e[f"{prefix}_kind"])),
            "sequence": e.get(f"{prefix}_sequence", "0"),
        }
        for e in parsed.entries
    }
    root = etree.fromstring(data)
    tombs = {t.get("ref") for t in root.iter(TOMBSTONE)}
    events = sum(1 for e in entries.values() if e["kind"] == "event")
    assert f"entries: {events} events, {len(entries) - events} notices" in summary
    assert f"tombstones: {len(tombs)}\n" in summary and "problems: 0 errors" in summary
    return entries, tombs


def _default_status(kind: str) -> str:
    return "confirmed" if kind == "event" else ""


async def calendar_state(client: Client) -> dict[str, tuple[str, str, int]]:
    """Return {uid: (summary, status, sequence)} of /calendar.ics, parsed by icalendar."""
    response = await client.get("/calendar.ics")
    assert response.status == 200
    cal = icalendar.Calendar.from_ical(await response.read())
    return {
        str(v["uid"]): (str(v["summary"]), str(v["status"]), int(v["sequence"]))
        for v in cal.walk("VEVENT")
    }


async def post(client: Client, section: str, payload: dict[str, Any], token: str) -> Any:
    response = await client.post(f"/api/{section}", json=payload, headers=auth(token))
    body = await response.json()
    assert response.status == 201, body
    assert response.headers["Location"] == f"/api/{section}/{body['id']}"
    return body


async def patch(client: Client, path: str, payload: dict[str, Any], token: str) -> Any:
    response = await client.patch(path, json=payload, headers=auth(token))
    body = await response.json()
    assert response.status == 200, body
    return body


async def test_end_to_end_events_and_notices(
    client: Client, node_dir: NodeDir, tmp_path: Path
) -> None:
    token = node_dir.token
    event = await post(client, "events", event_payload(), token)
    eid = f"urn:uuid:{event['id']}"
    assert event["organizer"] == "Østerby IF"
    assert event["sequence"] == 0 and event["start"].endswith("+01:00")
    expected = {eid: {"title": "Fællesspisning", "kind": "event", "status": "confirmed",
                      "sequence": "0"}}  # fmt: skip
    assert await feed_state(client, tmp_path) == (expected, set())
    assert await calendar_state(client) == {eid: ("Fællesspisning", "CONFIRMED", 0)}

    notice = await post(client, "notices", {"title": "Samkørsel til marked", "body": "Ring",
                                            "expires": str(SOON)}, token)  # fmt: skip
    nid = f"urn:uuid:{notice['id']}"
    expected[nid] = {"title": "Samkørsel til marked", "kind": "notice", "status": "",
                     "sequence": "0"}  # fmt: skip
    assert await feed_state(client, tmp_path) == (expected, set())

    # A new title does not raise the sequence; a new time does.
    body = await patch(client, f"/api/events/{event['id']}", {"title": "Julefrokost"}, token)
    assert body["sequence"] == 0
    expected[eid]["title"] = "Julefrokost"
    assert await feed_state(client, tmp_path) == (expected, set())
    later = {"start": f"{SOON}T19:00", "end": f"{SOON}T22:00"}
    body = await patch(client, f"/api/events/{event['id']}", later, token)
    assert body["sequence"] == 1 and body["start"].startswith(f"{SOON}T19:00")
    expected[eid]["sequence"] = "1"
    assert await feed_state(client, tmp_path) == (expected, set())
    assert await calendar_state(client) == {eid: ("Julefrokost", "CONFIRMED", 1)}

    body = await patch(client, f"/api/events/{event['id']}", {"status": "postponed"}, token)
    assert body["sequence"] == 2
    expected[eid].update(status="postponed", sequence="2")
    assert await feed_state(client, tmp_path) == (expected, set())
    assert await calendar_state(client) == {eid: ("UDSAT: Julefrokost", "TENTATIVE", 2)}

    body = await patch(client, f"/api/events/{event['id']}", {"status": "cancelled"}, token)
    expected[eid].update(status="cancelled", sequence="3")
    assert await feed_state(client, tmp_path) == (expected, set())
    assert await calendar_state(client) == {eid: ("AFLYST: Julefrokost", "CANCELLED", 3)}

    body = await patch(client, f"/api/notices/{notice['id']}", {"title": "Samkørsel"}, token)
    expected[nid]["title"] = "Samkørsel"
    assert await feed_state(client, tmp_path) == (expected, set())

    for section, entry, entry_id in (("notices", notice, nid), ("events", event, eid)):
        response = await client.delete(f"/api/{section}/{entry['id']}", headers=auth(token))
        assert response.status == 204
        del expected[entry_id]
    assert await feed_state(client, tmp_path) == ({}, {nid, eid})
    assert await calendar_state(client) == {}
    response = await client.get(f"/api/events/{event['id']}", headers=auth(token))
    assert response.status == 404


async def test_get_list_and_one(client: Client, node_dir: NodeDir) -> None:
    event = await post(client, "events", event_payload(), node_dir.token)
    response = await client.get("/api/events", headers=auth(node_dir.other_token))
    listed = (await response.json())["events"]
    assert [e["id"] for e in listed] == [event["id"]]
    response = await client.get(f"/api/events/{event['id']}", headers=auth(node_dir.token))
    one = await response.json()
    assert one == event
    assert one["link"] == f"https://osterby.example.dk/events/{event['id']}"


async def test_all_day_recurring_event_and_saved_place(
    client: Client, node_dir: NodeDir, tmp_path: Path
) -> None:
    until = (SOON + timedelta(weeks=4)).strftime("%Y%m%d")
    payload = {"title": "Gymnastik", "start": str(SOON), "all_day": True,
               "rrule": f"FREQ=WEEKLY;UNTIL={until}"}  # fmt: skip
    event = await post(client, "events", payload, node_dir.token)
    assert event["start"] == str(SOON) and event["all_day"] is True
    response = await client.get("/calendar.ics")
    cal = icalendar.Calendar.from_ical(await response.read())
    vevent = next(iter(cal.walk("VEVENT")))
    assert vevent["dtstart"].dt == SOON
    assert vevent["rrule"]["FREQ"] == ["WEEKLY"]
    # A name that is no saved place is refused with the list of saved places.
    bad = await client.post("/api/events", json=event_payload(location="Mølle"),
                            headers=auth(node_dir.token))  # fmt: skip
    assert bad.status == 422
    assert "location" in (await bad.json())["error"]["fields"]


async def test_conditional_get(client: Client, node_dir: NodeDir) -> None:
    await post(client, "events", event_payload(), node_dir.token)
    for path in ("/feed.atom", "/calendar.ics"):
        first = await client.get(path)
        etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
        assert etag.startswith('"') and not etag.startswith("W/")
        assert first.headers["Cache-Control"] == "public, no-cache"
        again = await client.get(path, headers={"If-None-Match": etag})
        assert again.status == 304 and again.headers["ETag"] == etag
        assert await again.read() == b""
        # If-Modified-Since is not used: the ETag carries it (see the test below).
        since = await client.get(path, headers={"If-Modified-Since": modified})
        assert since.status == 200 and await since.read() == await first.read()
        other = await client.get(path, headers={"If-None-Match": '"something-else"'})
        assert other.status == 200 and await other.read() == await first.read()
    feed = await client.get("/feed.atom")
    assert 'rel="self"' in feed.headers["Link"]
    etag = feed.headers["ETag"]
    await post(client, "notices", {"title": "Ny opslag"}, node_dir.token)
    changed = await client.get("/feed.atom", headers={"If-None-Match": etag})
    assert changed.status == 200
    assert changed.headers["ETag"] != etag
    assert b"Ny opslag" in await changed.read()


async def test_an_edit_in_the_same_second_is_never_missed(
    client: Client, node_dir: NodeDir
) -> None:
    # Last-Modified has whole seconds (RFC 9110 §5.6.7); the suite's clock stands still, so
    # this edit falls in the same second as the first version, as two quick edits do live.
    created = await post(client, "events", event_payload(title="Først"), node_dir.token)
    first = await client.get("/feed.atom")
    modified = first.headers["Last-Modified"]
    path = f"/api/events/{created['id']}"
    edit = await client.patch(path, json={"title": "Bagefter"}, headers=auth(node_dir.token))
    assert edit.status == 200
    for headers in (
        {"If-Modified-Since": modified},
        {"If-Modified-Since": "Fri, 31 Dec 2100 23:59:59 GMT"},  # a clock far ahead
    ):
        again = await client.get("/feed.atom", headers=headers)
        assert again.status == 200, headers
        assert b"Bagefter" in await again.read()
    # The ETag still saves the download when nothing changed.
    current = (await client.get("/feed.atom")).headers["ETag"]
    cached = await client.get("/feed.atom", headers={"If-None-Match": current,
                                                     "If-Modified-Since": modified})  # fmt: skip
    assert cached.status == 304


async def test_fifty_concurrent_posts(client: Client, node_dir: NodeDir, tmp_path: Path) -> None:
    async def one(n: int) -> int:
        payload = event_payload(title=f"Begivenhed {n}")
        response = await client.post("/api/events", json=payload, headers=auth(node_dir.token))
        return response.status

    statuses = await asyncio.gather(*(one(n) for n in range(50)))
    assert statuses == [201] * 50
    entries, _ = await feed_state(client, tmp_path)
    assert sorted(e["title"] for e in entries.values()) == sorted(
        f"Begivenhed {n}" for n in range(50)
    )
    await client.close()
    store = Store.open(node_dir.path / "node.json")  # what is on disk, read afresh
    assert len(store.events()) == 50
    store.close()


async def test_healthz(client: Client) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert (await response.json())["status"] == "ok"


@pytest.mark.parametrize(
    ("kind", "payload", "field"),
    [
        ("events", {"title": "Fjern", "start": "9999-12-31T23:59"}, "start"),
        ("events", {"title": "Fjern", "start": "9999-12-31", "all_day": True}, "start"),
        ("events", {"title": "Fjern", "start": "0001-01-01T00:10"}, "start"),
        ("events", {"title": "Fjern", "start": f"{SOON}T10:00", "end": "9999-12-31T22:00"}, "end"),
        ("notices", {"title": "Fjern", "expires": "9999-12-31"}, "expires"),
    ],
)
async def test_years_beyond_what_dates_can_hold_are_refused_and_pages_keep_working(
    client: Client, node_dir: NodeDir, kind: str, payload: dict[str, Any], field: str
) -> None:
    # One such entry used to be stored and then broke the village page, feed and calendar
    # for everyone (date arithmetic past year 9999).
    response = await client.post(f"/api/{kind}", json=payload, headers=auth(node_dir.token))
    assert response.status == 422, await response.text()
    body = await response.json()
    assert body["error"]["fields"] == {field: "Angiv et år fra 1900 til 2200."}
    for path in ("/", "/feed.atom", "/calendar.ics"):
        assert (await client.get(path)).status == 200, path
