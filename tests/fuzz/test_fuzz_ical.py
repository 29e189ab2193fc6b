"""Fuzzing the ICS reader (aggregator sources of kind "ics"): generated calendars and raw bytes.

Property: `read_calendar` returns events and problems in words, or refuses the bytes with a
FeedError in words, within the time bound, never anything else; the events it returns go on
through write_calendar and write_feed (what the aggregator builds from them).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fuzz_support import budget, hard_limit, hostile_text, rrule_text
from hypothesis import event, example, given
from hypothesis import strategies as st

from klynge.atom.writer import FeedMeta, write_feed
from klynge.errors import FeedError
from klynge.ical.reader import read_calendar
from klynge.ical.writer import write_calendar

pytestmark = pytest.mark.fuzz

NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)
META = FeedMeta(id="urn:klynge:ics", title="ICS", self_url="http://ics.example/", updated=NOW)

_DATES = ["20261205", "20261205T180000", "20261205T180000Z", "00010101", "99991231",
          "99991231T235959Z", "00010101T000000", "20260230", "2026-12-05", "", "x",
          "20261205T250000", "19000101T000000Z"]  # fmt: skip
_TZIDS = ["Europe/Copenhagen", "UTC", "Europe/Atlantis", "", '"quoted"', "Custom Zone",
          "/freeassociation.sourceforge.net/Europe/Copenhagen",
          "W. Europe Standard Time"]  # fmt: skip
_NAMES = ["UID", "SUMMARY", "DESCRIPTION", "LOCATION", "DTSTART", "DTEND", "DURATION",
          "RRULE", "EXDATE", "RDATE", "RECURRENCE-ID", "STATUS", "SEQUENCE", "CATEGORIES",
          "URL", "GEO", "CONTACT", "ORGANIZER", "LAST-MODIFIED", "DTSTAMP", "CREATED",
          "X-UNKNOWN", "ATTACH", "CLASS"]  # fmt: skip


def _value(name: str) -> st.SearchStrategy[str]:
    date_value = st.sampled_from(_DATES)
    special = {
        "DTSTART": date_value,
        "DTEND": date_value,
        "EXDATE": st.lists(date_value, min_size=1, max_size=3).map(",".join),
        "RDATE": st.lists(date_value, min_size=1, max_size=3).map(",".join),
        "RECURRENCE-ID": date_value,
        "RRULE": rrule_text(),
        "DURATION": st.sampled_from(["PT1H", "P1D", "-PT1H", "P9999999D", "PT", "P1W2D", "x"]),
        "SEQUENCE": st.sampled_from(["0", "3", "-5", "99999999999999999999", "x", ""]),
        "GEO": st.sampled_from(["55.6;12.5", "91;0", "x;y", "55.6", "1e400;2", "nan;nan"]),
        "STATUS": st.sampled_from(["CONFIRMED", "CANCELLED", "TENTATIVE", "x", ""]),
    }
    return st.one_of(special.get(name, hostile_text()), hostile_text())


@st.composite
def _param(draw: st.DrawFn) -> str:
    key = draw(st.sampled_from(["TZID", "VALUE", "CN", "ALTREP", "X-P"]))
    if key == "TZID":
        value = draw(st.sampled_from(_TZIDS))
    elif key == "VALUE":
        value = draw(st.sampled_from(["DATE", "DATE-TIME", "PERIOD", "TEXT", "x"]))
    else:
        value = draw(hostile_text(20))
    return f";{key}={value}"


@st.composite
def _line(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(_NAMES))
    params = "".join(draw(st.lists(_param(), max_size=2)))
    value = draw(_value(name)).replace("\r", "").replace("\n", "\\n")
    return f"{name}{params}:{value}"


GOOD_STARTS = ["DTSTART:20261205T180000Z", "DTSTART;TZID=Europe/Copenhagen:20261205T180000",
               "DTSTART;VALUE=DATE:20261205", "DTSTART:20261205T180000",
               "DTSTART;TZID=Custom Zone:20261205T180000"]  # fmt: skip


@st.composite
def _vevent(draw: st.DrawFn) -> list[str]:
    """Return a mostly well-formed VEVENT: a UID, a title and a start, then random lines."""
    uid = draw(st.sampled_from(["a@x", "b", "urn:uuid:1", "a@x", "x y"]))
    title = draw(st.one_of(st.just("Loppemarked"), hostile_text(30))).replace("\n", "\\n")
    start = draw(st.one_of(st.sampled_from(GOOD_STARTS), _line()))
    lines = ["BEGIN:VEVENT", f"UID:{uid}", f"SUMMARY:{title}", start]
    lines += draw(st.lists(_line(), max_size=6))
    return [*lines, "END:VEVENT"]


VTIMEZONE = [
    "BEGIN:VTIMEZONE", "TZID:Custom Zone", "BEGIN:STANDARD", "DTSTART:16010101T030000",
    "TZOFFSETFROM:+0200", "TZOFFSETTO:+0100", "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU",
    "END:STANDARD", "END:VTIMEZONE",
]  # fmt: skip


def _fold(line: str, width: int) -> str:
    """Fold a content line every `width` characters (RFC 5545 §3.1), or not at all for 0."""
    if width == 0 or len(line) <= width:
        return line
    parts = [line[i : i + width] for i in range(0, len(line), width)]
    return "\r\n ".join(parts)


@st.composite
def calendars(draw: st.DrawFn) -> bytes:
    events = draw(st.lists(_vevent(), min_size=1, max_size=4))
    body = [line for event in events for line in event]
    head = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//fuzz//EN"]
    if draw(st.booleans()):
        head += VTIMEZONE
    lines = [*head, *body, "END:VCALENDAR"]
    if draw(st.integers(0, 3)) == 0:  # break the structure: drop, repeat or cut at one line
        at = draw(st.integers(min_value=0, max_value=len(lines) - 1))
        how = draw(st.sampled_from(["drop", "repeat", "truncate"]))
        lines = lines[:at] + lines[at + 1 :] if how == "drop" else lines
        lines = [*lines[:at], lines[at], *lines[at:]] if how == "repeat" else lines
        lines = lines[:at] if how == "truncate" else lines
    width = draw(st.sampled_from([0, 0, 0, 1, 7, 74]))
    newline = draw(st.sampled_from(["\r\n", "\r\n", "\r\n", "\n"]))
    text = newline.join(_fold(line, width) for line in lines)
    return text.encode("utf-8", errors=draw(st.sampled_from(["surrogatepass", "replace"])))


def read_or_refused(data: bytes) -> None:
    """Read the bytes; assert events come back with problems in words, or a FeedError."""
    with hard_limit():
        try:
            events, problems = read_calendar(data, now=NOW)
        except FeedError as e:
            assert e.message.strip()
            event("refused")
            return
        assert all(problem.english().strip() for problem in problems)
        event(f"read {min(len(events), 2)}+ events" if events else "read, no events")
        calendar = write_calendar(events, name="ICS", now=NOW)
        feed = write_feed(META, events)
    assert calendar.startswith(b"BEGIN:VCALENDAR") and feed.startswith(b"<?xml")


@budget(25)
@given(calendars())
# Found by make fuzz: a title of only U+FFFE U+FFFF broke the merged feed (the model drops them).
@example(
    b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:a@x\r\nSUMMARY:\xef\xbf\xbe\xef\xbf\xbf\r\n"
    b"DTSTART:20261205T180000Z\r\nEND:VEVENT\r\nEND:VCALENDAR"
)
@example(
    b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTART:20261205\r\nEND:VEVENT\r\nEND:VCALENDAR"
)
def test_generated_calendars_are_read_or_refused_in_words(data: bytes) -> None:
    read_or_refused(data)


@budget(30)
@given(
    st.sampled_from([b"", b"BEGIN:VCALENDAR\r\n", b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\n"]),
    st.binary(max_size=1_000),
)
def test_raw_bytes_are_read_or_refused_in_words(prefix: bytes, tail: bytes) -> None:
    read_or_refused(prefix + tail)
