"""ICS import fidelity: ids for events without UID, broken optional properties, exceptions.

A series with EXDATE, RDATE and single-date overrides is imported as one series with the model's
exceptions; what the model cannot carry (a second RRULE, RANGE=THISANDFUTURE, overrides without
their series) as its single dates, worked out by recurring_ical_events. The clock is frozen on a
Sunday in the DST change of 25 October 2026.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import icalendar
import recurring_ical_events

from klynge.ical.reader import CANCELLED_MARK, UNTITLED, read_calendar
from klynge.recurrence import expand

NOW = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)  # Sunday; Copenhagen leaves summer time at 01:00Z
CPH = "Europe/Copenhagen"


def calendar(*events: str) -> bytes:
    """Return a calendar of the given VEVENT bodies (lines joined by CRLF)."""
    body = "".join(f"BEGIN:VEVENT\r\n{e.strip()}\r\nEND:VEVENT\r\n" for e in events)
    head = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//x//EN\r\n"
    return (head + body.replace("\n", "\r\n").replace("\r\r", "\r") + "END:VCALENDAR\r\n").encode()


def codes(problems: list) -> list[str]:  # type: ignore[type-arg]
    """Return the codes of the problems' causes (what each problem says)."""
    return [p.cause.code if p.cause is not None else p.code for p in problems]


def starts(events: list) -> list[str]:  # type: ignore[type-arg]
    """Return the events' occurrences over the next year as 'start UTC title status'."""
    found = expand(events, datetime(2026, 7, 1, tzinfo=UTC), datetime(2027, 12, 1, tzinfo=UTC))
    return [
        f"{o.start.astimezone(UTC):%Y-%m-%dT%H:%MZ} {o.title} {o.status}"
        if isinstance(o.start, datetime)
        else f"{o.start} {o.title} {o.status}"
        for o in found
    ]


def oracle(data: bytes) -> list[str]:
    """Return what recurring_ical_events gives over the same year, in the form of `starts`."""
    window = (datetime(2026, 7, 1, tzinfo=UTC), datetime(2027, 12, 1, tzinfo=UTC))
    found = recurring_ical_events.of(icalendar.Calendar.from_ical(data)).between(*window)
    return sorted(
        f"{c['DTSTART'].dt.astimezone(UTC):%Y-%m-%dT%H:%MZ} "
        f"{str(c['SUMMARY']).removeprefix(CANCELLED_MARK)} "
        f"{str(c.get('STATUS', 'CONFIRMED')).lower()}"
        for c in found
    )


NO_UID = "SUMMARY:Loppemarked\nDTSTART;TZID=Europe/Copenhagen:20261107T100000\nLOCATION:Hallen"


def test_an_event_without_uid_gets_a_stable_id_from_the_source_and_its_fields() -> None:
    first, problems = read_calendar(calendar(NO_UID), now=NOW, url="https://a.example/cal.ics")
    again, _ = read_calendar(calendar(NO_UID), now=NOW, url="https://a.example/cal.ics")
    other_source, _ = read_calendar(calendar(NO_UID), now=NOW, url="https://b.example/cal.ics")
    moved, _ = read_calendar(
        calendar(NO_UID.replace("T100000", "T110000")), now=NOW, url="https://a.example/cal.ics"
    )
    assert [e.title for e in first] == ["Loppemarked"]
    assert first[0].id.startswith("urn:x-ics:made-") and first[0].id == again[0].id
    assert other_source[0].id != first[0].id and moved[0].id != first[0].id
    assert codes(problems) == ["ical.no_uid"]


def test_broken_optional_properties_are_left_out_and_the_event_kept() -> None:
    data = calendar(
        "UID:a@x\nSUMMARY:Strik\nDTSTART:20261110T180000Z\nCREATED:garbage\n"
        "LAST-MODIFIED:not-a-time\nDTSTAMP:20261020T100000Z\nGEO:north;south\nSEQUENCE:many"
    )
    events, problems = read_calendar(data, now=NOW)
    (event,) = events
    assert (event.title, event.created, event.sequence) == ("Strik", None, 0)
    assert event.updated == datetime(2026, 10, 20, 10, 0, tzinfo=UTC)  # DTSTAMP, LAST-MODIFIED bad
    said = [p.cause.params.get("name") for p in problems if p.cause is not None]
    assert codes(problems) == ["ical.broken_property"] * len(said)
    assert {"CREATED", "LAST-MODIFIED", "SEQUENCE"} <= set(said)


SERIES = """UID:badminton@x
SUMMARY:Badminton
DTSTART;TZID=Europe/Copenhagen:20261015T190000
DTEND;TZID=Europe/Copenhagen:20261015T210000
RRULE:FREQ=WEEKLY;UNTIL=20261112T180000Z
EXDATE;TZID=Europe/Copenhagen:20261029T190000"""
MOVED = """UID:badminton@x
RECURRENCE-ID;TZID=Europe/Copenhagen:20261105T190000
SUMMARY:Badminton (i hallen)
DTSTART;TZID=Europe/Copenhagen:20261104T180000
DTEND;TZID=Europe/Copenhagen:20261104T200000"""
CANCELLED = """UID:badminton@x
RECURRENCE-ID;TZID=Europe/Copenhagen:20261112T190000
SUMMARY:Badminton
STATUS:CANCELLED
DTSTART;TZID=Europe/Copenhagen:20261112T190000
DTEND;TZID=Europe/Copenhagen:20261112T210000"""


def test_a_series_with_exceptions_is_imported_as_one_series_across_dst() -> None:
    events, problems = read_calendar(calendar(SERIES, MOVED, CANCELLED), now=NOW)
    assert problems == [] and starts(events) == oracle(calendar(SERIES, MOVED, CANCELLED))
    (event,) = events
    assert event.id == "urn:x-ics:badminton@x" and len(event.exdates) == 1
    assert starts(events) == [
        "2026-10-15T17:00Z Badminton confirmed",  # summer time
        "2026-10-22T17:00Z Badminton confirmed",
        # 29 October excluded
        "2026-11-04T17:00Z Badminton (i hallen) confirmed",  # moved a day earlier, retitled
        "2026-11-12T18:00Z Badminton cancelled",
    ]
    moved, cancelled = event.changes
    assert moved.title == "Badminton (i hallen)" and moved.start is not None
    assert cancelled.cancelled and cancelled.start is None and cancelled.title == ""
    again, _ = read_calendar(calendar(CANCELLED, MOVED, SERIES), now=NOW)
    assert again == events  # the same whatever the order


def test_a_series_with_a_second_rule_is_imported_as_its_dates() -> None:
    twice = SERIES.replace("RRULE:", "RRULE:FREQ=WEEKLY;COUNT=1;BYDAY=SA\nRRULE:")
    events, problems = read_calendar(calendar(twice, MOVED), now=NOW)
    assert problems == []
    assert "2026-10-17T17:00Z Badminton confirmed" in starts(events)  # the second rule's
    assert sorted(e.id for e in events)[0] == "urn:x-ics:badminton@x/20261015T170000Z"
    assert all(e.rrule is None for e in events)


def test_an_override_of_no_date_of_the_series_is_imported_as_its_dates() -> None:
    # recurring_ical_events shows such an override as an extra date; the model has no place
    # for a change of a date its series does not have.
    stray = MOVED.replace("20261105T190000", "20261106T190000")
    events, _ = read_calendar(calendar(SERIES, stray), now=NOW)
    assert "2026-11-04T17:00Z Badminton (i hallen) confirmed" in starts(events)
    assert len(events) == 5 and all(e.rrule is None for e in events)  # 4 dates, 1 extra


def test_an_exdate_of_no_date_of_the_series_is_left_out() -> None:
    odd = SERIES + "\nEXDATE;TZID=Europe/Copenhagen:20261030T190000\nRDATE:20261120T180000Z"
    (event,), problems = read_calendar(calendar(odd), now=NOW)
    assert problems == [] and len(event.exdates) == 1 and len(event.rdates) == 1
    assert starts([event])[-1] == "2026-11-20T18:00Z Badminton confirmed"


def test_a_plain_series_stays_one_series() -> None:
    plain = SERIES.replace("\nEXDATE;TZID=Europe/Copenhagen:20261029T190000", "")
    (event,), problems = read_calendar(calendar(plain), now=NOW)
    assert str(event.rrule) == "FREQ=WEEKLY;UNTIL=20261112T180000Z" and problems == []


def test_a_calendar_of_only_overrides_keeps_them() -> None:
    events, _ = read_calendar(calendar(MOVED, CANCELLED), now=NOW)
    assert starts(events) == [
        "2026-11-04T17:00Z Badminton (i hallen) confirmed",
        "2026-11-12T18:00Z Badminton cancelled",
    ]


def test_range_thisandfuture_splits_the_series() -> None:
    future = """UID:badminton@x
RECURRENCE-ID;RANGE=THISANDFUTURE;TZID=Europe/Copenhagen:20261105T190000
SUMMARY:Badminton (ny tid)
DTSTART;TZID=Europe/Copenhagen:20261105T200000
DTEND;TZID=Europe/Copenhagen:20261105T220000"""
    plain = SERIES.replace("\nEXDATE;TZID=Europe/Copenhagen:20261029T190000", "")
    events, _ = read_calendar(calendar(plain, future), now=NOW)
    assert starts(events) == oracle(calendar(plain, future))
    assert starts(events)[-2:] == [
        "2026-11-05T19:00Z Badminton (ny tid) confirmed",
        "2026-11-12T19:00Z Badminton (ny tid) confirmed",
    ]
    first, rest = sorted(events, key=lambda e: e.id)
    assert (first.id, rest.id) == (
        "urn:x-ics:badminton@x",
        "urn:x-ics:badminton@x/20261105T180000Z",
    )
    assert str(first.rrule) == "FREQ=WEEKLY;UNTIL=20261029T180000Z"  # winter time
    assert (rest.title, str(rest.rrule)) == (
        "Badminton (ny tid)",
        "FREQ=WEEKLY;UNTIL=20261112T190000Z",
    )


def test_a_split_series_keeps_its_later_exceptions_moved_with_it() -> None:
    future = """UID:badminton@x
RECURRENCE-ID;RANGE=THISANDFUTURE;TZID=Europe/Copenhagen:20261029T190000
SUMMARY:Badminton (ny tid)
DTSTART;TZID=Europe/Copenhagen:20261029T200000
DTEND;TZID=Europe/Copenhagen:20261029T220000"""
    series = SERIES.replace(
        "EXDATE;TZID=Europe/Copenhagen:20261029T190000", "EXDATE:20261105T180000Z"
    )
    data = calendar(series, future, CANCELLED)
    events, problems = read_calendar(data, now=NOW)
    assert problems == [] and len(events) == 2
    assert (
        starts(events)
        == oracle(data)
        == [
            "2026-10-15T17:00Z Badminton confirmed",
            "2026-10-22T17:00Z Badminton confirmed",
            "2026-10-29T19:00Z Badminton (ny tid) confirmed",  # an hour later from here on
            # 5 November excluded (named at its time before the move)
            "2026-11-12T18:00Z Badminton cancelled",  # the cancelled date keeps its own time
        ]
    )


def test_a_split_the_rule_cannot_follow_is_imported_as_its_dates() -> None:
    # Moved from Thursday to Friday, a BYDAY=TH rule gives no Friday: the dates instead.
    weekly = SERIES.replace("RRULE:FREQ=WEEKLY;", "RRULE:FREQ=WEEKLY;BYDAY=TH;")
    future = """UID:badminton@x
RECURRENCE-ID;RANGE=THISANDFUTURE;TZID=Europe/Copenhagen:20261105T190000
SUMMARY:Badminton (fredag)
DTSTART;TZID=Europe/Copenhagen:20261106T190000"""
    events, _ = read_calendar(calendar(weekly, future), now=NOW)
    assert starts(events)[-2:] == [
        "2026-11-06T18:00Z Badminton (fredag) confirmed",
        "2026-11-13T18:00Z Badminton (fredag) confirmed",
    ]
    assert all(e.rrule is None for e in events)


def test_a_sparse_open_ended_series_keeps_its_dates() -> None:
    leap = "UID:ol@x\nSUMMARY:OL-fest\nDTSTART;VALUE=DATE:20040814\nRRULE:FREQ=YEARLY;INTERVAL=4"
    events, problems = read_calendar(calendar(leap), now=datetime(2027, 10, 1, tzinfo=UTC))
    found = expand(events, datetime(2028, 1, 1, tzinfo=UTC), datetime(2029, 1, 1, tzinfo=UTC))
    assert [o.start for o in found] == [date(2028, 8, 14)]
    assert "model.rule_too_long" not in str(problems)


def test_an_old_open_ended_series_keeps_its_recent_past() -> None:
    old = (
        "UID:sang@x\nSUMMARY:Morgensang\nDTSTART;TZID=Europe/Copenhagen:20150106T100000\n"
        "DTEND;TZID=Europe/Copenhagen:20150106T110000\nRRULE:FREQ=WEEKLY\n"
        "EXDATE;TZID=Europe/Copenhagen:20261020T100000"
    )
    events, _ = read_calendar(calendar(old), now=NOW)
    found = expand(events, datetime(2026, 8, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
    days = [o.start.date() for o in found]  # type: ignore[union-attr]
    assert days[0] == date(2026, 8, 4) and date(2026, 10, 20) not in days
    assert len(days) == 12  # 13 Tuesdays from 4 August to 27 October, less the excluded one


def test_a_utc_until_on_an_all_day_series_adds_no_date() -> None:
    # Outlook ends an all-day series at 23:00Z the evening before the last date's midnight in
    # Copenhagen; RFC 5545 compares midnight of each date with UNTIL.
    bins = (
        "UID:bin@x\nSUMMARY:Skrald\nDTSTART;VALUE=DATE:20261008\n"
        "RRULE:FREQ=WEEKLY;INTERVAL=2;UNTIL=20261104T230000Z"
    )
    events, _ = read_calendar(calendar(bins), now=NOW)
    assert [
        o.start
        for o in expand(events, datetime(2026, 10, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    ] == [
        date(2026, 10, 8),
        date(2026, 10, 22),
    ]


def test_an_event_without_summary_gets_a_placeholder_title() -> None:
    (event,), _ = read_calendar(calendar("UID:t@x\nDTSTART:20261110T180000Z"), now=NOW)
    assert event.title == UNTITLED


def test_attack_rules_stay_refused_in_words_when_the_series_has_exceptions() -> None:
    attack = (
        "UID:g@x\nSUMMARY:Gift\nDTSTART:20261110T180000Z\nRRULE:FREQ=DAILY;INTERVAL=0\n"
        "EXDATE:20261111T180000Z"
    )
    events, problems = read_calendar(calendar(attack), now=NOW)
    assert events == [] and "INTERVAL must be a whole number" in problems[0].english()


def test_expanded_dates_are_bounded_in_all() -> None:
    series = [
        f"UID:s{n}@x\nSUMMARY:Hver dag {n}\nDTSTART:20261001T0{n}0000Z\nRRULE:FREQ=DAILY\n"
        "RRULE:FREQ=DAILY;INTERVAL=2"  # a second RRULE: expanded
        for n in range(3)
    ]
    events, problems = read_calendar(calendar(*series), now=NOW, max_events=300)
    assert len(events) == 300  # 90 days back and 18 months ahead would be 3 x 500
    assert [p.code for p in problems] == ["ical.too_many_dates"]
    assert "more than 300 dates" in problems[0].english()


def test_an_instant_in_the_dst_fold_is_kept() -> None:
    # 00:00Z on 25 October 2026 is 02:00 summer time, the hour that comes twice in Copenhagen;
    # a DTEND equal to DTSTART there was read as an end before the start.
    one = "UID:f@x\nSUMMARY:Fold\nDTSTART:20261025T000000Z\nDTEND:20261025T000000Z"
    (event,), problems = read_calendar(calendar(one), now=NOW)
    assert problems == [] and event.end is None
    assert event.start.astimezone(UTC) == datetime(2026, 10, 25, 0, 0, tzinfo=UTC)  # type: ignore[union-attr]
