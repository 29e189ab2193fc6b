"""Recurrence expansion on wall-clock time in the event's zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from klynge.model import Event, parse_when
from klynge.recurrence import Occurrence, expand, occurrences

CPH = "Europe/Copenhagen"
UPDATED = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def _at(text: str, tz: str = CPH) -> datetime:
    value = parse_when(text, tz=tz, all_day=False)
    assert isinstance(value, datetime)
    return value


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _event(title: str = "Badminton", **fields: object) -> Event:
    base: dict[str, object] = {"id": f"urn:uuid:test-{title}", "title": title, "updated": UPDATED}
    base.update(fields)
    return Event(**base)  # type: ignore[arg-type]


WEEKLY = _event(
    start=_at("2026-10-01T19:00"),
    end=_at("2026-10-01T21:00"),
    rrule="FREQ=WEEKLY;UNTIL=20270430T170000Z",
)
YEAR = (_utc("2026-01-01T00:00"), _utc("2028-01-01T00:00"))


def test_weekly_19_00_stays_19_00_local_across_both_dst_changes() -> None:
    found = occurrences(WEEKLY, *YEAR)
    assert len(found) == 31  # 1 Oct 2026 .. 29 Apr 2027, Thursdays
    assert all(o.start.strftime("%a %H:%M") == "Thu 19:00" for o in found)  # type: ignore[union-attr]
    assert all(o.end.strftime("%H:%M") == "21:00" for o in found)  # type: ignore[union-attr]
    utc_hours = {o.start.date(): o.start.astimezone(UTC).hour for o in found}  # type: ignore[union-attr]
    assert utc_hours[date(2026, 10, 22)] == 17  # summer time, UTC+2
    assert utc_hours[date(2026, 10, 29)] == 18  # after 25 October, UTC+1
    assert utc_hours[date(2027, 3, 25)] == 18
    assert utc_hours[date(2027, 4, 1)] == 17  # after 28 March, UTC+2 again
    assert found[-1].start == _at("2027-04-29T19:00")


def test_limit_is_honoured() -> None:
    found = occurrences(WEEKLY, *YEAR, limit=5)
    assert [o.start for o in found] == [_at(f"2026-10-{d:02}T19:00") for d in (1, 8, 15, 22, 29)]
    assert occurrences(WEEKLY, *YEAR, limit=0) == []


def test_window_keeps_overlapping_occurrences_only() -> None:
    # 8 Oct 20:00 local is inside the 19:00-21:00 occurrence; 15 Oct 19:00 is the window end.
    found = occurrences(WEEKLY, _at("2026-10-08T20:00"), _at("2026-10-15T19:00"))
    assert [o.start for o in found] == [_at("2026-10-08T19:00")]
    assert occurrences(WEEKLY, _at("2026-10-08T21:00"), _at("2026-10-15T18:59")) == []
    assert occurrences(WEEKLY, _utc("2027-05-01T00:00"), _utc("2027-06-01T00:00")) == []


def test_single_event_gives_zero_or_one_occurrence() -> None:
    event = _event("Foredrag", start=_at("2026-12-03T19:00"), end=_at("2026-12-03T21:00"))
    assert occurrences(event, *YEAR) == [Occurrence(event, event.start, event.effective_end)]
    assert occurrences(event, _utc("2027-01-01T00:00"), _utc("2027-02-01T00:00")) == []
    instant = _event("Frist", start=_at("2026-12-03T12:00"))
    assert len(occurrences(instant, _at("2026-12-03T12:00"), _at("2026-12-03T13:00"))) == 1
    assert occurrences(instant, _at("2026-12-03T11:00"), _at("2026-12-03T12:00")) == []


def test_all_day_occurrences_are_dates() -> None:
    market = _event(
        "Marked",
        start=date(2026, 12, 5),
        end=date(2026, 12, 7),
        all_day=True,
        rrule="FREQ=MONTHLY;COUNT=3",
    )
    found = occurrences(market, *YEAR)
    assert [(o.start, o.end) for o in found] == [
        (date(2026, 12, 5), date(2026, 12, 7)),
        (date(2027, 1, 5), date(2027, 1, 7)),
        (date(2027, 2, 5), date(2027, 2, 7)),
    ]
    # The window edge is local midnight: 6 Dec 23:30 UTC is already 7 Dec in Copenhagen.
    assert occurrences(market, _utc("2026-12-06T23:30"), _utc("2026-12-07T12:00")) == []
    assert len(occurrences(market, _utc("2026-12-06T22:30"), _utc("2026-12-07T12:00"))) == 1


def test_utc_until_includes_a_late_evening_last_occurrence() -> None:
    # 23:30 local on 10 Dec is 22:30 UTC; UNTIL at that instant must include it (RFC 5545).
    late = _event(
        "Nattevagt",
        start=_at("2026-12-01T23:30"),
        rrule="FREQ=DAILY;UNTIL=20261210T223000Z",
    )
    found = occurrences(late, *YEAR)
    assert len(found) == 10 and found[-1].start == _at("2026-12-10T23:30")


def test_time_in_the_spring_gap_moves_forward_and_dtstart_counts() -> None:
    early = _event("Morgen", start=_at("2027-03-27T02:30"), rrule="FREQ=DAILY;COUNT=3")
    starts = [o.start for o in occurrences(early, *YEAR)]
    assert [s.isoformat() for s in starts] == [  # type: ignore[union-attr]
        "2027-03-27T02:30:00+01:00",
        "2027-03-28T03:30:00+02:00",  # 02:30 does not exist that night
        "2027-03-29T02:30:00+02:00",
    ]
    # DTSTART on a Tuesday with BYDAY=WE is still the first occurrence, and counts towards
    # COUNT (RFC 5545 §3.8.5.3).
    odd = _event("Skak", start=_at("2026-12-01T19:00"), rrule="FREQ=WEEKLY;BYDAY=WE;COUNT=3")
    assert [o.start.day for o in occurrences(odd, *YEAR)] == [1, 2, 9]  # type: ignore[union-attr]


def test_night_event_across_dst_keeps_its_elapsed_length_when_repeated() -> None:
    night = _event(
        "Natløb",
        start=_at("2026-10-17T22:00"),
        end=_at("2026-10-18T04:00"),
        rrule="FREQ=WEEKLY;COUNT=2",
    )
    second = occurrences(night, *YEAR)[1]
    assert second.start == _at("2026-10-24T22:00")
    elapsed = second.end.astimezone(UTC) - second.start.astimezone(UTC)  # type: ignore[union-attr]
    assert elapsed == timedelta(hours=6)  # so it ends 03:00 local after the change
    assert second.end.isoformat() == "2026-10-25T03:00:00+01:00"  # type: ignore[union-attr]


def test_expand_sorts_across_events_with_dates_as_local_midnight() -> None:
    fair = _event("Marked", start=date(2026, 10, 8), all_day=True)
    london = _event(
        "London",
        timezone="Europe/London",
        start=_at("2026-10-07T23:30", "Europe/London"),  # 00:30 on 8 Oct in Copenhagen
    )
    # The all-day date sorts as midnight in Copenhagen (22:00 UTC), so before London's 22:30 UTC.
    found = expand([WEEKLY, fair, london], _utc("2026-10-07T00:00"), _utc("2026-10-09T00:00"))
    assert [o.event.title for o in found] == ["Marked", "London", "Badminton"]
    assert [o.start for o in found] == [date(2026, 10, 8), london.start, _at("2026-10-08T19:00")]
    assert len(expand([WEEKLY, fair], *YEAR, limit=3)) == 4  # the limit is per event
