"""Date reservations (`tentative`): the model, the feed round trip (feedgen -> our reader,
strict and feedparser), iCalendar STATUS:TENTATIVE both ways, and the node's form and page."""

from __future__ import annotations

from datetime import UTC, date, datetime

import icalendar
import pytest
import test_node_pages_flow as flow
from aiohttp.test_utils import TestClient as Client
from test_node_pages_flow import as_bo, doc, hidden_fields, press, preview

from klynge.atom.reader import read_feed
from klynge.atom.writer import FeedMeta, write_feed
from klynge.ical.reader import read_calendar
from klynge.ical.writer import write_calendar
from klynge.model import Event
from node.keys import STORE

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
HELD = Event(
    id="urn:uuid:5f0c3b8e-2d4a-4c1b-9e7f-0a1b2c3d4e5f",
    title="Julemarked",
    updated=NOW,
    start=date(2026, 12, 12),
    end=date(2026, 12, 13),
    all_day=True,
    status="tentative",
)
META = FeedMeta(
    id="urn:klynge:osterby", title="Østerby", self_url="https://osterby.example.dk/feed.atom",
    updated=NOW,
)  # fmt: skip


@pytest.mark.parametrize("strict", [True, False], ids=["scan", "feedparser"])
def test_the_feed_keeps_a_reservation(strict: bool) -> None:
    data = write_feed(META, [HELD])
    assert b"<klynge:status>tentative</klynge:status>" in data
    [read] = read_feed(data, strict=strict).items
    assert isinstance(read, Event) and read.status == "tentative" and read.id == HELD.id


def test_ical_says_tentative_without_marking_the_title_and_reads_it_back() -> None:
    data = write_calendar([HELD], name="Østerby", now=NOW)
    [vevent] = icalendar.Calendar.from_ical(data).walk("VEVENT")
    assert str(vevent["STATUS"]) == "TENTATIVE" and str(vevent["SUMMARY"]) == "Julemarked"
    [back], _problems = read_calendar(data, now=NOW)
    assert back.status == "tentative" and back.title == "Julemarked"
    postponed = Event(**{**_fields(HELD), "status": "postponed"})
    [again], _ = read_calendar(write_calendar([postponed], name="Ø", now=NOW), now=NOW)
    assert again.status == "postponed" and again.title == "Julemarked"


def _fields(event: Event) -> dict[str, object]:
    return {k: getattr(event, k) for k in ("id", "title", "updated", "start", "end", "all_day")}


def test_an_unknown_status_is_still_refused() -> None:
    from klynge.errors import ValidationError

    with pytest.raises(ValidationError) as raised:
        Event(**{**_fields(HELD), "status": "maybe"})
    assert "tentative" in raised.value.fields["status"].english()


async def test_the_new_form_reserves_a_date_and_one_click_confirms_it(client: Client) -> None:
    token = await as_bo(client)
    form = {"csrf_token": token, "title": "Julemarked", "date": "2026-12-12",
            "status": "tentative", "action": "preview"}  # fmt: skip
    page = await preview(client, "/admin/events/new", form)
    assert "Foreløbig" in doc(page).xpath("string(//div[@class='preview'])")
    assert "Datoen er reserveret; detaljerne følger." in page
    response = await press(client, "/admin/events/new", page, "publish")
    assert response.status == 303
    [held] = client.server.app[STORE].events()
    assert held.status == "tentative" and held.sequence == 0
    listing = await (await client.get("/admin")).text()
    uid = held.id.removeprefix("urn:uuid:")
    assert doc(listing).xpath(f"//form[@action='/admin/events/{uid}/confirm']//button"
                              "[contains(., 'Bekræft datoen')]")  # fmt: skip
    confirm = await client.post(f"/admin/events/{uid}/confirm", data=hidden_fields(listing),
                                allow_redirects=False)  # fmt: skip
    assert confirm.status == 303
    [done] = client.server.app[STORE].events()
    assert done.id == held.id and done.status == "confirmed" and done.sequence == 1
    ics = await (await client.get(f"/events/{uid}.ics")).read()
    assert b"STATUS:CONFIRMED" in ics and b"SEQUENCE:1" in ics


node_dir = flow.node_dir  # fixtures: a node on loopback, as the page-flow tests use
client = flow.client
