"""An imported series with exceptions stays one series: Google- and Outlook-style calendars.

A weekly Thursday practice across the start of summer time (28 March 2027) with one excluded
date, one date moved to the Wednesday after the change (retitled, another place) and one
cancelled date: Klynge's occurrences and the aggregator's re-exported calendar.ics must equal
what `recurring_ical_events` (the oracle) gives for the source calendar.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import aggregator_support as support
import icalendar
import pytest
import recurring_ical_events
from aggregator_support import FeedServer, config_for, refresher_of, start_aggregator
from clock_support import DEFAULT_NOW
from hypothesis import given, settings
from hypothesis import strategies as st

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


# --- any such series: Klynge's dates are the oracle's ----------------------------------------

NOW_SPRING = datetime(2027, 3, 1, 9, tzinfo=UTC)
FIRSTS = [date(2027, 3, 21), date(2027, 3, 27), date(2027, 3, 28), date(2027, 2, 28)]


@st.composite
def series_with_exceptions(draw: st.DrawFn) -> str:
    """Return the VEVENTs of a series across 28 March 2027 with drawn exceptions."""
    first = draw(st.sampled_from(FIRSTS))
    hour = draw(st.sampled_from([0, 9, 19, 23]))
    freq = draw(st.sampled_from(["DAILY", "WEEKLY"]))
    count = draw(st.integers(3, 10))
    step = timedelta(days=1 if freq == "DAILY" else 7)
    starts = [datetime(first.year, first.month, first.day, hour) + n * step for n in range(count)]
    chosen = draw(st.lists(st.sampled_from(range(count)), unique=True, max_size=count))
    split = draw(st.integers(0, len(chosen)))
    head = [
        "UID:drawn@x",
        "SUMMARY:Træning",
        f"DTSTART;TZID=Europe/Copenhagen:{starts[0]:%Y%m%dT%H%M%S}",
        "DURATION:PT90M",
        f"RRULE:FREQ={freq};COUNT={count}",
    ]
    head += [f"EXDATE;TZID=Europe/Copenhagen:{starts[n]:%Y%m%dT%H%M%S}" for n in chosen[:split]]
    for extra in draw(st.lists(st.integers(1, 40), max_size=2, unique=True)):
        when = datetime(first.year, first.month, first.day, 12, 30) + timedelta(hours=extra * 7)
        when += timedelta(hours=1) if when.hour == 2 else timedelta(0)  # not in the DST gap
        # At half past: the oracle also matches the UTC wall clock of an EXDATE with the local
        # one of a date, so an RDATE at 22:00 would meet an EXDATE at 00:00+02 (docs/aggregator.md).
        head.append(f"RDATE;TZID=Europe/Copenhagen:{when:%Y%m%dT%H%M%S}")
    parts = ["\n".join(head)]
    for n in chosen[split:]:
        moved = starts[n] + timedelta(minutes=draw(st.sampled_from([0, 60, -1440, 1500])))
        status = draw(st.sampled_from(["CONFIRMED", "CANCELLED"]))
        title = draw(st.sampled_from(["Træning", "Træning (flyttet)"]))
        parts.append(
            f"UID:drawn@x\nRECURRENCE-ID;TZID=Europe/Copenhagen:{starts[n]:%Y%m%dT%H%M%S}\n"
            f"SUMMARY:{title}\nSTATUS:{status}\nSEQUENCE:1\n"
            f"DTSTART;TZID=Europe/Copenhagen:{moved:%Y%m%dT%H%M%S}\n"
            f"DTEND;TZID=Europe/Copenhagen:{moved + timedelta(hours=2):%Y%m%dT%H%M%S}"
        )
    cut = draw(st.sampled_from([None, *(n for n in range(count) if n not in chosen)]))
    if cut is not None:  # RANGE=THISANDFUTURE: this date and the later ones moved
        moved = starts[cut] + timedelta(minutes=draw(st.sampled_from([60, -1440, 2 * 1440])))
        parts.append(
            f"UID:drawn@x\nRECURRENCE-ID;RANGE=THISANDFUTURE;TZID=Europe/Copenhagen:"
            f"{starts[cut]:%Y%m%dT%H%M%S}\nSUMMARY:Træning (ny tid)\n"
            f"DTSTART;TZID=Europe/Copenhagen:{moved:%Y%m%dT%H%M%S}\nDURATION:PT1H"
        )
    return "\n".join(f"BEGIN:VEVENT\n{p}\nEND:VEVENT" for p in parts)


@settings(max_examples=60, deadline=None)
@given(series_with_exceptions())
def test_any_series_with_exceptions_reads_as_the_oracle_does(vevents: str) -> None:
    text = "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//x//EN\n" + vevents + "\nEND:VCALENDAR\n"
    data = text.replace("\n", "\r\n").encode()
    events, _ = read_calendar(data, now=NOW_SPRING)
    assert len(events) in (1, 2) and all(e.rrule for e in events)  # two when split
    window = (datetime(2027, 2, 1, tzinfo=UTC), datetime(2027, 7, 1, tzinfo=UTC))
    ours = sorted(
        (_utc(o.start), _utc(o.end), o.title, o.status)  # type: ignore[arg-type]
        for o in expand(events, *window)
    )
    cal = icalendar.Calendar.from_ical(data)
    theirs = sorted(
        (
            _utc(c["DTSTART"].dt),
            _utc(c["DTEND"].dt if "DTEND" in c else c["DTSTART"].dt + c["DURATION"].dt),
            str(c["SUMMARY"]),
            str(c.get("STATUS", "CONFIRMED")).lower(),
        )
        for c in recurring_ical_events.of(cal).between(*window)
    )
    assert ours == theirs
