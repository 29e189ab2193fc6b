"""A series' exceptions in iCalendar: EXDATE, RDATE and RECURRENCE-ID overrides, read back by
independent readers (icalendar + recurring_ical_events, Mozilla's ical.js) across a DST change.

The series: Sundays 19:00-21:00 in Copenhagen from 4 October 2026, eight times, over the end of
summer time on the last Sunday of October (25 October): 11 October skipped, 25 October moved to
Wednesday 28 October 20:00 at another place, 1 November retitled, 8 November cancelled, and an
extra date on Friday 20 November 10:00.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest
import recurring_ical_events
from icaljs_support import icaljs_occurrences

from klynge.ical.writer import write_calendar
from klynge.model import Event, Place, When
from klynge.recurrence import expand
from klynge.series import Change

ROOT = Path(__file__).resolve().parents[1]
CPH = ZoneInfo("Europe/Copenhagen")
WINDOW = (datetime(2026, 9, 1, tzinfo=UTC), datetime(2027, 3, 1, tzinfo=UTC))
NOW = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
UID = "urn:uuid:6d1f3c1e-8f0e-4f55-9a51-0b7a2c1e0101"

Row = tuple[str, str, str, str]  # start, end (UTC), title, status


def at(day: int, month: int = 10, hour: int = 19) -> datetime:
    return datetime(2026, month, day, hour, 0, tzinfo=CPH)


def series() -> Event:
    """The badminton series with one skipped, moved, retitled and cancelled date, one extra."""
    return Event(
        id=UID,
        title="Badminton for voksne",
        updated=datetime(2026, 9, 20, 8, 0, tzinfo=UTC),
        sequence=3,
        start=at(4),
        end=at(4, hour=21),
        rrule="FREQ=WEEKLY;COUNT=8",
        place=Place(name="Hallen", street="Idrætsvej 2", locality="Østerby"),
        exdates=(at(11),),
        rdates=(at(20, 11, hour=10),),
        changes=(
            Change(original=at(25), start=at(28, hour=20), place=Place(name="Skolen"), sequence=4),
            Change(original=at(1, 11), title="Badminton: juleturnering"),
            Change(original=at(8, 11), cancelled=True, sequence=5),
        ),
    )


def all_day_series() -> Event:
    """Daily all-day over new year and 29 February 2028, with each kind of exception."""
    return Event(
        id="urn:uuid:6d1f3c1e-8f0e-4f55-9a51-0b7a2c1e0102",
        title="Vinterbadning",
        updated=datetime(2026, 9, 20, 8, 0, tzinfo=UTC),
        start=date(2027, 12, 30),
        all_day=True,
        rrule="FREQ=WEEKLY;COUNT=12",
        exdates=(date(2028, 1, 6),),
        rdates=(date(2028, 2, 29),),
        changes=(
            Change(original=date(2028, 1, 13), start=date(2028, 1, 14), end=date(2028, 1, 16)),
            Change(original=date(2028, 2, 29), title="Skudårsbadning", cancelled=True),
        ),
    )


def show(value: When) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value.isoformat()


def ours(event: Event, window: tuple[datetime, datetime] = WINDOW) -> list[Row]:
    return sorted(
        (show(o.start), show(o.end), o.title, o.status.upper()) for o in expand([event], *window)
    )


def python_reader(data: bytes, window: tuple[datetime, datetime] = WINDOW) -> list[Row]:
    cal = icalendar.Calendar.from_ical(data)
    found = []
    for component in recurring_ical_events.of(cal).between(*window):
        title = str(component["SUMMARY"]).removeprefix("AFLYST: ")
        found.append(
            (
                show(component["DTSTART"].dt),
                show(component["DTEND"].dt),
                title,
                str(component.get("STATUS", "")),
            )
        )
    return sorted(found)


def icaljs_reader(path: Path, window: tuple[datetime, datetime] = WINDOW) -> list[Row]:
    return sorted(
        (o["start"], o["end"], o["summary"].removeprefix("AFLYST: "), o["status"])
        for o in icaljs_occurrences(path, window)
    )


EXPECTED = [
    ("2026-10-04T17:00:00Z", "2026-10-04T19:00:00Z", "Badminton for voksne", "CONFIRMED"),
    ("2026-10-18T17:00:00Z", "2026-10-18T19:00:00Z", "Badminton for voksne", "CONFIRMED"),
    ("2026-10-28T19:00:00Z", "2026-10-28T21:00:00Z", "Badminton for voksne", "CONFIRMED"),
    ("2026-11-01T18:00:00Z", "2026-11-01T20:00:00Z", "Badminton: juleturnering", "CONFIRMED"),
    ("2026-11-08T18:00:00Z", "2026-11-08T20:00:00Z", "Badminton for voksne", "CANCELLED"),
    ("2026-11-15T18:00:00Z", "2026-11-15T20:00:00Z", "Badminton for voksne", "CONFIRMED"),
    ("2026-11-20T09:00:00Z", "2026-11-20T11:00:00Z", "Badminton for voksne", "CONFIRMED"),
    ("2026-11-22T18:00:00Z", "2026-11-22T20:00:00Z", "Badminton for voksne", "CONFIRMED"),
]


@pytest.mark.parametrize("make", [series, all_day_series])
def test_independent_readers_see_the_same_dates_as_klynge(make: object, tmp_path: Path) -> None:
    event = make()  # type: ignore[operator]
    window = (WINDOW[0], datetime(2028, 6, 1, tzinfo=UTC))
    data = write_calendar([event], name="Østerby", now=NOW)
    path = tmp_path / "series.ics"
    path.write_bytes(data)
    expected = ours(event, window)
    if make is series:
        assert expected == EXPECTED
    assert python_reader(data, window) == expected
    assert icaljs_reader(path, window) == expected


def test_the_calendar_has_exdate_rdate_and_one_override_per_changed_date() -> None:
    data = write_calendar([series()], name="Østerby", now=NOW).decode()
    unfolded = data.replace("\r\n ", "")
    assert "EXDATE;TZID=Europe/Copenhagen:20261011T190000\r\n" in unfolded
    assert "RDATE;TZID=Europe/Copenhagen:20261120T100000\r\n" in unfolded
    cal = icalendar.Calendar.from_ical(data)
    vevents = cal.walk("VEVENT")
    assert {str(v["UID"]) for v in vevents} == {UID}
    overrides = {v["RECURRENCE-ID"].dt: v for v in vevents if "RECURRENCE-ID" in v}
    assert sorted(overrides) == [at(25), at(1, 11), at(8, 11)]
    moved = overrides[at(25)]
    assert moved["DTSTART"].dt == at(28, hour=20)
    assert str(moved["LOCATION"]) == "Skolen"
    assert moved["RECURRENCE-ID"].params["TZID"] == "Europe/Copenhagen"
    assert [int(overrides[d]["SEQUENCE"]) for d in sorted(overrides)] == [4, 3, 5]
    assert str(overrides[at(8, 11)]["STATUS"]) == "CANCELLED"
    assert str(overrides[at(8, 11)]["SUMMARY"]) == "AFLYST: Badminton for voksne"
    (master,) = [v for v in vevents if "RECURRENCE-ID" not in v]
    assert str(master["STATUS"]) == "CONFIRMED"


def test_all_day_exceptions_are_dates() -> None:
    data = write_calendar([all_day_series()], name="Østerby", now=NOW).decode()
    assert "EXDATE;VALUE=DATE:20280106\r\n" in data
    assert "RDATE;VALUE=DATE:20280229\r\n" in data
    assert "RECURRENCE-ID;VALUE=DATE:20280113\r\n" in data


def test_a_series_without_exceptions_is_one_vevent_as_before() -> None:
    plain = Event(
        id=UID,
        title="Badminton",
        updated=NOW,
        start=at(4),
        end=at(4) + timedelta(hours=2),
        rrule="FREQ=WEEKLY;COUNT=8",
    )
    data = write_calendar([plain], name="Østerby", now=NOW).decode()
    assert data.count("BEGIN:VEVENT") == 1
    assert "EXDATE" not in data and "RDATE" not in data and "RECURRENCE-ID" not in data
