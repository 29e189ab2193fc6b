"""An imported series with exceptions stays one series: Google- and Outlook-style calendars.

A weekly Thursday practice across the start of summer time (28 March 2027) with one excluded
date, one date moved to the Wednesday after the change (retitled, another place) and one
cancelled date: Klynge's occurrences and the aggregator's re-exported calendar.ics must equal
what `recurring_ical_events` (the oracle) gives for the source calendar.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import aggregator_support as support
import icalendar
import pytest
import recurring_ical_events
from aggregator_support import FeedServer, config_for, refresher_of, start_aggregator
from clock_support import DEFAULT_NOW

from aggregator.config import Source
from klynge.ical.reader import CANCELLED_MARK, read_calendar
from klynge.recurrence import expand

feed_server = support.feed_server  # a fixture
WINDOW = (datetime(2027, 2, 1, tzinfo=UTC), datetime(2027, 6, 1, tzinfo=UTC))
Row = tuple[str, str, str, str, str]  # start, end (UTC), title, status, place

VTIMEZONE = """BEGIN:VTIMEZONE
TZID:{tzid}
BEGIN:STANDARD
DTSTART:16011028T030000
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:16010325T020000
RRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
END:DAYLIGHT
END:VTIMEZONE
"""

SERIES = """BEGIN:VEVENT
UID:{uid}
DTSTAMP:20261120T080000Z
SUMMARY:Badminton for voksne
LOCATION:Hallen
DTSTART;TZID={tzid}:20270304T190000
DTEND;TZID={tzid}:20270304T210000
RRULE:FREQ=WEEKLY;BYDAY=TH;UNTIL={until}
EXDATE;TZID={tzid}:20270318T190000
SEQUENCE:0
END:VEVENT
BEGIN:VEVENT
UID:{uid}
DTSTAMP:20261120T080000Z
RECURRENCE-ID;TZID={tzid}:20270325T190000
SUMMARY:Badminton (flyttet til onsdag)
LOCATION:Skolens gymnastiksal
DTSTART;TZID={tzid}:20270331T180000
DTEND;TZID={tzid}:20270331T200000
SEQUENCE:1
END:VEVENT
BEGIN:VEVENT
UID:{uid}
DTSTAMP:20261120T080000Z
RECURRENCE-ID;TZID={tzid}:20270408T190000
SUMMARY:Badminton for voksne
LOCATION:Hallen
STATUS:CANCELLED
DTSTART;TZID={tzid}:20270408T190000
DTEND;TZID={tzid}:20270408T210000
SEQUENCE:2
END:VEVENT
"""

# Google writes IANA zone names and a UTC UNTIL; Outlook its Windows zone names with its own
# VTIMEZONE, and X-properties Klynge does not read.
STYLES = {
    "google": {"tzid": "Europe/Copenhagen", "until": "20270422T170000Z", "uid": "7kq2@google.com"},
    "outlook": {
        "tzid": "Romance Standard Time",
        "until": "20270422T170000Z",
        "uid": "040000008200E00074C5B7101A82E00800000000",
    },
}


def source(style: str) -> bytes:
    """Return the calendar of one producer's style (CRLF lines)."""
    values = STYLES[style]
    text = (
        "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//"
        + style
        + "//EN\n"
        + VTIMEZONE.format(**values)
        + SERIES.format(**values)
        + "END:VCALENDAR\n"
    )
    if style == "outlook":
        text = text.replace("SEQUENCE:0\n", "SEQUENCE:0\nX-MICROSOFT-CDO-BUSYSTATUS:BUSY\n")
    return text.replace("\n", "\r\n").encode()


def oracle_rows(data: bytes) -> list[Row]:
    """Return what recurring_ical_events gives for a calendar over the window."""
    cal = icalendar.Calendar.from_ical(data)
    rows = []
    for c in recurring_ical_events.of(cal).between(*WINDOW):
        status = str(c.get("STATUS", "CONFIRMED")).lower()
        title = str(c["SUMMARY"]).removeprefix(CANCELLED_MARK)
        rows.append((_utc(c["DTSTART"].dt), _utc(c["DTEND"].dt), title, status, str(c["LOCATION"])))
    return sorted(rows)


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


EXPECTED = [
    ("2027-03-04T18:00Z", "2027-03-04T20:00Z", "Badminton for voksne", "confirmed", "Hallen"),
    ("2027-03-11T18:00Z", "2027-03-11T20:00Z", "Badminton for voksne", "confirmed", "Hallen"),
    # 18 March excluded; 25 March moved to Wednesday 31 March 18:00, in summer time
    (
        "2027-03-31T16:00Z",
        "2027-03-31T18:00Z",
        "Badminton (flyttet til onsdag)",
        "confirmed",
        "Skolens gymnastiksal",
    ),
    ("2027-04-01T17:00Z", "2027-04-01T19:00Z", "Badminton for voksne", "confirmed", "Hallen"),
    ("2027-04-08T17:00Z", "2027-04-08T19:00Z", "Badminton for voksne", "cancelled", "Hallen"),
    ("2027-04-15T17:00Z", "2027-04-15T19:00Z", "Badminton for voksne", "confirmed", "Hallen"),
    ("2027-04-22T17:00Z", "2027-04-22T19:00Z", "Badminton for voksne", "confirmed", "Hallen"),
]


@pytest.mark.parametrize("style", sorted(STYLES))
def test_the_series_is_one_event_with_its_exceptions(style: str) -> None:
    data = source(style)
    events, problems = read_calendar(data, now=DEFAULT_NOW)
    (event,) = events
    assert problems == []
    assert event.id == "urn:x-ics:" + STYLES[style]["uid"]
    # Windows' "Romance Standard Time" is Paris in CLDR's table: the same rules as Copenhagen.
    assert event.timezone == {"google": "Europe/Copenhagen", "outlook": "Europe/Paris"}[style]
    assert [d.date() for d in event.exdates] == [date(2027, 3, 18)]  # type: ignore[union-attr]
    moved, cancelled = event.changes
    assert (moved.title, moved.place and moved.place.name, moved.sequence) == (
        "Badminton (flyttet til onsdag)",
        "Skolens gymnastiksal",
        1,
    )
    assert (cancelled.cancelled, cancelled.title, cancelled.place, cancelled.start) == (
        True,
        "",  # the series' own
        None,
        None,
    )
    rows = sorted(
        (
            _utc(o.start),  # type: ignore[arg-type]
            _utc(o.end),  # type: ignore[arg-type]
            o.title,
            o.status,
            o.place.name if o.place else "",
        )
        for o in expand(events, *WINDOW)
    )
    assert rows == oracle_rows(data) == EXPECTED


@pytest.mark.parametrize("style", sorted(STYLES))
async def test_the_cluster_calendar_reads_the_same_in_recurring_ical_events(
    style: str, feed_server: FeedServer, tmp_path: Path, aiohttp_client: Any
) -> None:
    url = feed_server.set("/cal.ics", source(style), content_type="text/calendar")
    client = await start_aggregator(
        aiohttp_client, config_for(tmp_path, [Source(url, "Hal", "ics")])
    )
    outcomes = await refresher_of(client).refresh_all()
    assert all(o.ok for o in outcomes), outcomes
    resp = await client.get("/calendar.ics")
    assert resp.status == 200
    data = await resp.read()
    cal = icalendar.Calendar.from_ical(data)
    vevents = cal.walk("VEVENT")
    assert len(vevents) == 3  # the series and its two overrides, one UID
    assert len({str(c["UID"]) for c in vevents}) == 1
    assert sum("RECURRENCE-ID" in c for c in vevents) == 2
    assert oracle_rows(data) == oracle_rows(source(style)) == EXPECTED


def test_the_same_series_whatever_the_order_of_its_components() -> None:
    data = source("google").decode()
    head, master, *overrides = data.split("BEGIN:VEVENT")
    overrides[-1], tail = overrides[-1].split("END:VCALENDAR")
    reordered = "BEGIN:VEVENT".join([head, *reversed(overrides), master]) + "END:VCALENDAR" + tail
    first, _ = read_calendar(data.encode(), now=DEFAULT_NOW)
    again, _ = read_calendar(reordered.encode(), now=DEFAULT_NOW)
    assert len(again) == 1 and first == again
