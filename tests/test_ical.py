"""iCalendar output and input: two independent parsers (icalendar + recurring-ical-events, and
Mozilla's ical.js under node) must see the same occurrences in our files."""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import icalendar
import pytest
import recurring_ical_events
from icaljs_support import icaljs_occurrences

from klynge.errors import FeedError
from klynge.ical.reader import category_term, read_calendar
from klynge.ical.timezones import vtimezone
from klynge.ical.writer import write_calendar
from klynge.model import Event, Notice, Place, When, parse_when
from klynge.recurrence import expand

ROOT = Path(__file__).resolve().parents[1]
CPH = "Europe/Copenhagen"
WINDOW = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2028, 1, 1, tzinfo=UTC))
NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
LONG_TITLE = "Fællesspisning 🎉 i forsamlingshuset: æbleskiver, gløgg og risalamande 🍚🎄 til alle"


def _id(n: int) -> str:
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'https://klynge.test/{n}')}"


def _at(text: str, tz: str = CPH) -> datetime:
    value = parse_when(text, tz=tz, all_day=False)
    assert isinstance(value, datetime)
    return value


def _event(n: int, **fields: object) -> Event:
    base: dict[str, object] = {
        "id": _id(n),
        "title": f"Arrangement {n}",
        "updated": datetime(2026, 11, 1, 8, 0, tzinfo=UTC) + timedelta(minutes=n),
        "created": datetime(2026, 10, 1, 8, 0, tzinfo=UTC),
    }
    base.update(fields)
    return Event(**base)  # type: ignore[arg-type]


def fifty_events() -> list[Event]:
    """Return 50 events: weekly across the October DST change, all-day, a DST-night event."""
    events = [
        _event(
            0,
            title="Badminton",
            start=_at("2026-10-07T19:00"),
            end=_at("2026-10-07T21:00"),
            rrule="FREQ=WEEKLY;UNTIL=20261202T180000Z",
            category="sport",
        ),
        _event(1, title="Julemarked", start=date(2026, 12, 5), end=date(2026, 12, 7), all_day=True),
        _event(2, title="Natløb", start=_at("2026-10-24T22:00"), end=_at("2026-10-25T04:00")),
        _event(3, title=LONG_TITLE, start=_at("2026-12-10T18:00"), end=_at("2026-12-10T22:00")),
        _event(4, title="Loppemarked", start=_at("2026-11-14T10:00"), status="cancelled"),
        _event(5, title="Generalforsamling", start=_at("2026-11-20T19:30"), status="postponed"),
        _event(
            6,
            title="Salmesang",
            start=_at("2026-10-04T10:00"),
            end=_at("2026-10-04T11:00"),
            rrule="FREQ=MONTHLY;BYDAY=1SU;COUNT=8",
            category="church",
            place=Place(
                name="Kirken",
                street="Kirkevej 2",
                postcode="4700",
                locality="Næstved",
                lat=55.2301,
                lon=11.7609,
            ),
            organizer="Menighedsrådet",
            organizer_url="https://kirke.example/",
            url="https://kirke.example/salmesang",
        ),
        _event(
            7,
            title="Rengøringsdag",
            start=date(2026, 11, 1),
            all_day=True,
            rrule="FREQ=MONTHLY;COUNT=4",
        ),
        _event(
            8,
            title="Foredrag i New York",
            timezone="America/New_York",
            start=_at("2026-10-30T19:00", "America/New_York"),
            end=_at("2026-10-30T21:00", "America/New_York"),
            rrule="FREQ=WEEKLY;COUNT=3",
        ),
        _event(
            9,
            title="Onlinemøde",
            timezone="UTC",
            start=_at("2026-11-03T12:00", "UTC"),
            end=_at("2026-11-03T13:00", "UTC"),
        ),
        _event(
            10,
            title="Tokyo",
            timezone="Asia/Tokyo",
            start=_at("2026-11-05T12:00", "Asia/Tokyo"),
        ),
    ]
    for n in range(11, 50):
        day = datetime(2026, 10, 20, 17, 0) + timedelta(days=n, hours=n % 5)
        start = _at(day.isoformat())
        events.append(_event(n, start=start, end=start + timedelta(hours=2), category="culture"))
    return events


def _ics(events: list[Event], **kwargs: object) -> bytes:
    return write_calendar(events, name="Landsbyen", now=NOW, **kwargs)  # type: ignore[arg-type]


def _show(value: When) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value.isoformat()


def _python_occurrences(data: bytes) -> list[tuple[str, str, str]]:
    cal = icalendar.Calendar.from_ical(data)
    found = []
    for component in recurring_ical_events.of(cal).between(*WINDOW):
        end = component["DTEND"].dt if "DTEND" in component else component["DTSTART"].dt
        found.append((str(component["UID"]), _show(component["DTSTART"].dt), _show(end)))
    return sorted(found)


def _icaljs_occurrences(path: Path) -> list[tuple[str, str, str]]:
    return sorted((o["uid"], o["start"], o["end"]) for o in icaljs_occurrences(path, WINDOW))


def _our_occurrences(events: list[Event]) -> list[tuple[str, str, str]]:
    return sorted((o.event.id, _show(o.start), _show(o.end)) for o in expand(events, *WINDOW))


def test_two_parsers_and_our_expansion_agree_on_fifty_events(tmp_path: Path) -> None:
    events = fifty_events()
    data = _ics(events)
    path = tmp_path / "calendar.ics"
    path.write_bytes(data)

    ours = _our_occurrences(events)
    assert _python_occurrences(data) == ours
    assert _icaljs_occurrences(path) == ours

    badminton = [o for o in ours if o[0] == _id(0)]
    assert [o[1] for o in badminton] == [
        "2026-10-07T17:00:00Z",
        "2026-10-14T17:00:00Z",
        "2026-10-21T17:00:00Z",
        "2026-10-28T18:00:00Z",
        "2026-11-04T18:00:00Z",
        "2026-11-11T18:00:00Z",
        "2026-11-18T18:00:00Z",
        "2026-11-25T18:00:00Z",
        "2026-12-02T18:00:00Z",
    ]  # 19:00 local all along; UNTIL is the last start exactly
    assert (_id(2), "2026-10-24T20:00:00Z", "2026-10-25T03:00:00Z") in ours  # 7 h, not 6
    assert (_id(1), "2026-12-05", "2026-12-07") in ours
    new_york = [o[1] for o in ours if o[0] == _id(8)]
    assert new_york == ["2026-10-30T23:00:00Z", "2026-11-07T00:00:00Z", "2026-11-14T00:00:00Z"]
    assert len(ours) == 46 + 9 + 8 + 4 + 3  # singles + badminton + church + monthly + NY


def test_every_line_is_crlf_terminated_and_at_most_75_octets() -> None:
    data = _ics(fifty_events())
    assert data.endswith(b"\r\n")
    lines = data.split(b"\r\n")[:-1]
    assert b"\n" not in b"".join(lines) and b"\r" not in b"".join(lines)
    assert max(len(line) for line in lines) <= 75
    for line in lines:
        line.decode("utf-8")  # a fold never splits a UTF-8 character


def test_danish_text_with_emoji_folds_between_characters() -> None:
    data = _ics(fifty_events())
    lines = data.split(b"\r\n")
    first = next(i for i, line in enumerate(lines) if line.startswith(b"SUMMARY:F\xc3\xa6lles"))
    assert lines[first + 1].startswith(b" ")  # the long title really is folded
    unfolded = lines[first].decode() + lines[first + 1][1:].decode()
    assert unfolded == "SUMMARY:" + LONG_TITLE.replace(",", "\\,")


def test_fold_never_splits_an_emoji_at_the_75_octet_edge() -> None:
    # "SUMMARY:" + 65 letters is 73 octets; the 4-octet emoji would straddle octet 75.
    event = _event(62, title="a" * 65 + "🎉 æøå" * 5, start=_at("2026-12-01T19:00"))
    lines = _ics([event]).split(b"\r\n")
    first = lines.index(b"SUMMARY:" + b"a" * 65)
    assert lines[first + 1].startswith(" 🎉 æøå".encode())


def test_uid_is_the_entry_id_and_builds_are_byte_stable() -> None:
    events = fifty_events()
    first = _ics(events)
    again = write_calendar(list(reversed(events)), name="Landsbyen", now=NOW + timedelta(days=3))
    assert first == again
    uids = re.findall(rb"^UID:(.*)\r$", first, re.MULTILINE)
    assert sorted(u.decode() for u in uids) == sorted(e.id for e in events)


def _vevent(data: bytes, uid: str) -> icalendar.Component:
    cal = icalendar.Calendar.from_ical(data)
    return next(c for c in cal.walk("VEVENT") if str(c["UID"]) == uid)


def test_notices_are_not_calendar_items() -> None:
    notice = Notice(id=_id(70), title="Samkørsel til byen", updated=NOW, body="<p>Plads til 3</p>")
    event = fifty_events()[3]
    assert _ics([notice, event]) == _ics([event])
    assert b"BEGIN:VEVENT" not in _ics([notice])


def test_dtstamp_and_last_modified_are_the_entry_update_time() -> None:
    event = fifty_events()[3]
    vevent = _vevent(_ics([event]), event.id)
    assert vevent["DTSTAMP"].dt == event.updated
    assert vevent["LAST-MODIFIED"].dt == event.updated
    assert vevent["CREATED"].dt == event.created
    assert b"DTSTAMP:20261101T080300Z\r\n" in _ics([event])


def test_cancelled_stays_in_the_file_and_postponed_is_tentative() -> None:
    data = _ics(fifty_events())
    cancelled, postponed = _vevent(data, _id(4)), _vevent(data, _id(5))
    assert str(cancelled["STATUS"]) == "CANCELLED"
    assert str(cancelled["SUMMARY"]) == "AFLYST: Loppemarked"
    assert str(postponed["STATUS"]) == "TENTATIVE"
    assert str(postponed["SUMMARY"]) == "UDSAT: Generalforsamling"
    assert str(_vevent(data, _id(3))["STATUS"]) == "CONFIRMED"


def test_all_day_is_value_date_with_exclusive_end() -> None:
    data = _ics(fifty_events())
    assert b"DTSTART;VALUE=DATE:20261205\r\nDTEND;VALUE=DATE:20261207\r\n" in data
    single = _event(60, title="Høstfest", start=date(2026, 9, 12), all_day=True)
    assert b"DTSTART;VALUE=DATE:20260912\r\nDTEND;VALUE=DATE:20260913\r\n" in _ics([single])


def test_place_organiser_links_and_category() -> None:
    data = _ics(fifty_events())
    vevent = _vevent(data, _id(6))
    assert (vevent["GEO"].latitude, vevent["GEO"].longitude) == (55.2301, 11.7609)
    assert str(vevent["LOCATION"]) == "Kirken, Kirkevej 2, 4700 Næstved"
    assert str(vevent["CONTACT"]) == "Menighedsrådet, https://kirke.example/"
    assert vevent["CONTACT"].params["ALTREP"] == "https://kirke.example/"
    assert str(vevent["URL"]) == "https://kirke.example/salmesang"
    assert [str(c) for c in vevent["CATEGORIES"].cats] == ["Kirke"]
    assert str(vevent["CLASS"]) == "PUBLIC"
    assert b"RRULE:FREQ=MONTHLY;BYDAY=1SU;COUNT=8\r\n" in data  # passed through verbatim
    linked = replace(fifty_events()[6], link="https://landsby.example/events/6")
    assert str(_vevent(_ics([linked]), _id(6))["URL"]) == "https://landsby.example/events/6"


def test_description_is_plain_text_from_the_sanitised_html() -> None:
    event = _event(
        61,
        title="Møde",
        start=_at("2026-12-01T19:00"),
        description="<p>Kom <strong>alle</strong>!</p><ul><li>kaffe</li><li>kage</li></ul>"
        '<p>Se <a href="https://lokalraad.example/">programmet</a></p>',
    )
    vevent = _vevent(_ics([event]), event.id)
    assert str(vevent["DESCRIPTION"]) == (
        "Kom alle!\n\n- kaffe\n- kage\n\nSe programmet (https://lokalraad.example/)"
    )


def test_one_rule_based_vtimezone_per_tzid() -> None:
    data = _ics(fifty_events())
    cal = icalendar.Calendar.from_ical(data)
    zones = {str(z["TZID"]): z for z in cal.walk("VTIMEZONE")}
    assert sorted(zones) == ["America/New_York", "Asia/Tokyo", CPH]  # UTC needs none
    assert data.count(b"BEGIN:VTIMEZONE") == 3
    assert b"RDATE" not in data
    copenhagen = zones[CPH].to_ical().decode()
    assert (
        "BEGIN:DAYLIGHT\r\nDTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=3\r\n"
        in copenhagen
    )
    assert (
        "BEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYDAY=-1SU;BYMONTH=10\r\n"
        in copenhagen
    )
    assert "RRULE:FREQ=YEARLY;BYDAY=2SU;BYMONTH=3" in zones["America/New_York"].to_ical().decode()
    assert "RRULE" not in zones["Asia/Tokyo"].to_ical().decode()  # no DST there
    assert b"DTSTART:20261103T120000Z\r\n" in data  # the UTC event


@pytest.mark.parametrize("tzid", [CPH, "America/New_York", "Europe/London", "Australia/Sydney"])
def test_vtimezone_rules_give_the_zoneinfo_offsets(tzid: str) -> None:
    from zoneinfo import ZoneInfo

    tz = vtimezone(tzid, 2026).to_tz(lookup_tzid=False)  # our rules, not a zoneinfo lookup
    real = ZoneInfo(tzid)
    for hours in range(0, 2 * 366 * 24, 7):
        moment = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=hours)
        assert moment.astimezone(tz).utcoffset() == moment.astimezone(real).utcoffset(), moment


def test_calendar_properties_appear_once() -> None:
    data = write_calendar(
        fifty_events(),
        name="Sydlandet",
        url="https://sydlandet.example/",
        description="Alt der sker",
        refresh=timedelta(minutes=30),
        now=NOW,
    )
    lines = data.decode().split("\r\n")
    for line in (
        "VERSION:2.0",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        "NAME:Sydlandet",
        "X-WR-CALNAME:Sydlandet",
        "X-WR-TIMEZONE:Europe/Copenhagen",
        "DESCRIPTION:Alt der sker",
        "X-WR-CALDESC:Alt der sker",
        "URL;VALUE=URI:https://sydlandet.example/",
        "REFRESH-INTERVAL;VALUE=DURATION:PT30M",
        "X-PUBLISHED-TTL:PT30M",
    ):
        assert lines.count(line) == 1, line
    assert sum(line.startswith("PRODID:") for line in lines) == 1
    assert data.count(b"BEGIN:VEVENT") == 50


def test_read_calendar_round_trips_our_output() -> None:
    events = fifty_events()
    read, problems = read_calendar(_ics(events), now=NOW)
    assert problems == []
    by_id = {e.id: e for e in read}
    assert sorted(by_id) == sorted(e.id for e in events)
    for original in events:
        copy = by_id[original.id]
        assert (copy.title, copy.start, copy.effective_end, copy.rrule, copy.all_day) == (
            original.title,
            original.start,
            original.effective_end,
            original.rrule,  # a RepeatRule: equal when the parts are
            original.all_day,
        )
        assert (copy.status, copy.timezone, copy.sequence, copy.category) == (
            original.status,
            CPH if original.timezone == "UTC" else original.timezone,  # a single UTC time
            original.sequence,
            original.category,
        )
        assert copy.updated == original.updated
    church = by_id[_id(6)]
    assert church.place is not None and (church.place.lat, church.place.lon) == (55.2301, 11.7609)
    assert (church.organizer, church.organizer_url) == ("Menighedsrådet", "https://kirke.example/")
    assert church.url == "https://kirke.example/salmesang"


FOREIGN = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//Someone//Else//EN\r
BEGIN:VEVENT\r
UID:abc123@example.org\r
DTSTAMP:20261120T100000Z\r
DTSTART;TZID=Europe/Copenhagen:20261201T190000\r
DURATION:PT90M\r
SUMMARY:Strikkeklub\r
RRULE:FREQ=WEEKLY;BYDAY=TU\r
CATEGORIES:Fællesskab,Håndarbejde\r
LOCATION:Biblioteket\r
GEO:55.5;11.25\r
STATUS:CONFIRMED\r
SEQUENCE:3\r
URL:javascript:alert(1)\r
ORGANIZER;CN=Strikkeklubben:mailto:strik@example.org\r
DESCRIPTION:Medbring pinde <og> garn\\nAlle er velkomne\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:https://other.example/e/1\r
DTSTAMP:20261120T100000Z\r
LAST-MODIFIED:20261119T100000Z\r
DTSTART:20261205T150000Z\r
DTEND:20261205T170000Z\r
SUMMARY:Koncert\r
CATEGORIES:Koncerter & Musik\r
STATUS:CANCELLED\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:floating-1\r
DTSTAMP:20261120T100000Z\r
DTSTART:20261206T100000\r
SUMMARY:Floating\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:no-start\r
DTSTAMP:20261120T100000Z\r
SUMMARY:Uden tid\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:backwards\r
DTSTAMP:20261120T100000Z\r
DTSTART;VALUE=DATE:20261210\r
DTEND;VALUE=DATE:20261208\r
SUMMARY:Baglæns\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:old-series\r
DTSTAMP:20261120T100000Z\r
DTSTART;TZID=Europe/Copenhagen:20150106T100000\r
DTEND;TZID=Europe/Copenhagen:20150106T110000\r
RRULE:FREQ=WEEKLY\r
SUMMARY:Morgensang\r
END:VEVENT\r
END:VCALENDAR\r
"""


def test_read_calendar_maps_foreign_events_and_explains_problems() -> None:
    events, problems = read_calendar(FOREIGN.encode(), now=NOW)
    by_id = {e.id: e for e in events}
    assert sorted(by_id) == [
        "https://other.example/e/1",
        "urn:x-ics:abc123@example.org",
        "urn:x-ics:floating-1",
        "urn:x-ics:old-series",
    ]
    knit = by_id["urn:x-ics:abc123@example.org"]
    assert knit.start == _at("2026-12-01T19:00") and knit.end == _at("2026-12-01T20:30")
    assert str(knit.rrule) == "FREQ=WEEKLY;BYDAY=TU;UNTIL=20280528T090000Z"  # 548 days after NOW
    assert (knit.category, knit.sequence, knit.url, knit.organizer) == (
        "community",
        3,
        "",
        "Strikkeklubben",
    )
    assert knit.place == Place(name="Biblioteket", lat=55.5, lon=11.25)
    assert knit.description == "<p>Medbring pinde &lt;og&gt; garn<br>Alle er velkomne</p>"
    assert knit.updated == datetime(2026, 11, 20, 10, 0, tzinfo=UTC)

    concert = by_id["https://other.example/e/1"]
    assert (concert.status, concert.title, concert.category) == (
        "cancelled",
        "Koncert",
        "koncerter-musik",
    )
    assert concert.start == _at("2026-12-05T16:00") and concert.timezone == CPH
    assert concert.updated == datetime(2026, 11, 19, 10, 0, tzinfo=UTC)
    assert by_id["urn:x-ics:floating-1"].start == _at("2026-12-06T10:00")

    old = by_id["urn:x-ics:old-series"]  # moved to a recent Tuesday, still 10:00-11:00
    assert old.start == _at("2026-09-01T10:00") and old.end == _at("2026-09-01T11:00")

    text = "\n".join(p.english() for p in problems)
    assert "abc123@example.org (Strikkeklub): the open-ended repeat rule was bounded" in text
    assert "Event no-start (Uden tid) skipped: it has no start (DTSTART)." in text
    assert "Event backwards (Baglæns) skipped:" in text
    assert len(problems) == 4


def test_read_calendar_rejects_what_is_not_a_calendar() -> None:
    for data in (b"", b"<html><body>Not here</body></html>", b"BEGIN:VCARD\r\nEND:VCARD\r\n"):
        with pytest.raises(FeedError, match="not an iCalendar file"):
            read_calendar(data)


@pytest.mark.parametrize(
    ("name", "term"),
    [
        ("Sport", "sport"),
        ("Kirke", "church"),
        ("Lost and found", "lost-found"),
        ("Frivillige søges", "volunteers"),
        ("Gåtur i skoven", "gaatur-i-skoven"),
        ("🎉", ""),
    ],
)
def test_category_names_map_to_terms_or_slugs(name: str, term: str) -> None:
    assert category_term(name) == term


def test_an_old_open_ended_rule_that_never_matches_is_dropped_in_words() -> None:
    # dateutil alone would search until year 9999 for the next date (seconds of CPU).
    ics = (
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//x//EN\r\n"
        b"BEGIN:VEVENT\r\nUID:never@example.org\r\nDTSTAMP:20261101T120000Z\r\n"
        b"DTSTART:19950101T180000Z\r\nDTEND:19950101T190000Z\r\nSUMMARY:Aldrig\r\n"
        b"RRULE:FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    events, problems = read_calendar(ics, now=datetime(2026, 11, 27, tzinfo=UTC))
    assert events == []
    words = [p.english() for p in problems]
    assert any("five years" in p or "never" in p.lower() for p in words), words
