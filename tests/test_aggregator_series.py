"""A village series with a skipped, a moved, a retitled and a cancelled date, across the start
of summer time (28 March 2027): the cluster's pages, poster, JSON and ICS all show the same dates.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aggregator_support as support
import icalendar
import pytest
import recurring_ical_events
from aggregator_support import FeedServer, config_for, feed, refresher_of, start_aggregator

from aggregator.config import Source
from klynge.model import Event, Place
from klynge.series import Change

feed_server = support.feed_server  # a fixture
CPH = ZoneInfo("Europe/Copenhagen")
ID = "urn:uuid:0e5b1a7c-3d2f-4c6a-9b8e-7f1d2c3b4a01"


def at(day: int, month: int = 3, hour: int = 19) -> datetime:
    return datetime(2027, month, day, hour, 0, tzinfo=CPH)


def football() -> Event:
    """Sundays 19-21 from 14 March 2027, six times, over the start of summer time."""
    return Event(
        id=ID,
        title="Fodbold for oldboys",
        updated=datetime(2026, 11, 20, 8, 0, tzinfo=UTC),
        start=at(14),
        end=at(14, hour=21),
        rrule="FREQ=WEEKLY;COUNT=6",
        place=Place(name="Stadion"),
        exdates=(at(21),),
        changes=(
            Change(original=at(28), start=at(30, hour=20), place=Place(name="Hallen")),
            Change(original=at(4, 4), title="Fodbold: påsketurnering"),
            Change(original=at(11, 4), cancelled=True),
        ),
    )


# start (UTC), title, status: what every output must show
DATES = [
    ("2027-03-14T18:00:00Z", "Fodbold for oldboys", "confirmed"),
    ("2027-03-30T18:00:00Z", "Fodbold for oldboys", "confirmed"),
    ("2027-04-04T17:00:00Z", "Fodbold: påsketurnering", "confirmed"),
    ("2027-04-11T17:00:00Z", "Fodbold for oldboys", "cancelled"),
    ("2027-04-18T17:00:00Z", "Fodbold for oldboys", "confirmed"),
]


def utc(text: str) -> str:
    return datetime.fromisoformat(text).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
async def client(feed_server: FeedServer, tmp_path: Path, aiohttp_client: Any) -> Any:
    url = feed_server.set("/osterby.atom", feed("Østerby", [football()]))
    app_client = await start_aggregator(aiohttp_client, config_for(tmp_path, [Source(url)]))
    await refresher_of(app_client).refresh_all()
    return app_client


async def test_json_api_gives_the_changed_dates(client: Any) -> None:
    resp = await client.get("/api/events", params={"from": "2027-03-01", "to": "2027-05-01"})
    assert resp.status == 200
    found = (await resp.json())["events"]
    assert [(utc(e["start"]), e["title"], e["status"]) for e in found] == DATES
    moved = found[1]
    assert moved["moved"] is True and moved["location"]["name"] == "Hallen"
    assert utc(moved["original_start"]) == "2027-03-28T17:00:00Z"  # 19:00 summer time
    assert [e["moved"] for e in found] == [False, True, False, False, False]


async def test_calendar_ics_has_the_same_dates(client: Any) -> None:
    resp = await client.get("/calendar.ics")
    cal = icalendar.Calendar.from_ical(await resp.read())
    window = (datetime(2027, 3, 1, tzinfo=UTC), datetime(2027, 5, 1, tzinfo=UTC))
    found = sorted(
        (
            c["DTSTART"].dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            str(c["SUMMARY"]).removeprefix("AFLYST: "),
            str(c["STATUS"]).lower(),
        )
        for c in recurring_ical_events.of(cal).between(*window)
    )
    assert found == DATES


async def test_event_page_lists_the_dates_with_their_changes(client: Any) -> None:
    resp = await client.get(f"/events/{ID.removeprefix('urn:uuid:')}")
    html = await resp.text()
    assert resp.status == 200
    dates = html[html.index('id="s-dates"') : html.index("</ul>", html.index('id="s-dates"'))]
    assert "21. marts" not in dates  # skipped
    assert "30. marts 2027 kl. 20:00" in dates and "Flyttet" in dates and "Hallen" in dates
    assert "kl. 19:00</time>: Fodbold: påsketurnering" in dates
    assert '<li class="cancelled">' in dates and "Aflyst" in dates
    assert dates.count("<li") == 5


async def test_calendar_list_and_poster_show_moved_and_cancelled(client: Any) -> None:
    resp = await client.get("/calendar", params={"from": "2027-03-29"})
    html = await resp.text()
    assert resp.status == 200
    assert "Flyttet" in html and ">20:00</time>" in html
    assert "Fodbold: påsketurnering" in html and "Aflyst" in html
    poster = await (await client.get("/poster", params={"week": "2027-W13"})).text()
    assert 'Fodbold for oldboys</span> <em class="moved">Flyttet</em>' in poster
    assert "Fodbold: påsketurnering" in poster and "Hallen" in poster
