"""The model validates on construction with one clear message per field."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from clock_support import utc_now

from klynge.errors import ValidationError
from klynge.model import Event, Notice, Place, Tombstone, parse_when

CPH = ZoneInfo("Europe/Copenhagen")
NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def event(**fields: object) -> Event:
    base: dict[str, object] = {
        "id": "urn:uuid:2f1e6a3c-0000-4000-8000-000000000001",
        "title": "Fællesspisning i forsamlingshuset",
        "updated": NOW,
        "start": datetime(2026, 12, 4, 18, 0, tzinfo=CPH),
    }
    return Event(**(base | fields))  # type: ignore[arg-type]


def errors_of(**fields: object) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        event(**fields)
    return {name: message.english() for name, message in caught.value.fields.items()}


@pytest.mark.parametrize(
    ("fields", "bad"),
    [
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"end": datetime(2026, 12, 4, 17, 0, tzinfo=CPH)}, "end"),
        ({"timezone": "Europe/Atlantis"}, "timezone"),
        ({"timezone": "../../etc/passwd"}, "timezone"),
        ({"rrule": "FREQ=WEEKLY"}, "rrule"),
        ({"rrule": "FREQ=MINUTELY;COUNT=5"}, "rrule"),
        ({"rrule": "FREQ=DAILY;COUNT=100000"}, "rrule"),
        ({"rrule": "NONSENSE"}, "rrule"),
        ({"url": "javascript:alert(1)"}, "url"),
        ({"link": "ftp://example.org/x"}, "link"),
        ({"status": "maybe"}, "status"),
        ({"category": "Not A Term!"}, "category"),
        ({"all_day": True}, "start"),
        ({"start": date(2026, 12, 4), "all_day": True, "end": date(2026, 12, 4)}, "end"),
        ({"start": datetime(2026, 12, 4, 18, 0)}, "start"),
        ({"sequence": -1}, "sequence"),
        ({"id": "has space"}, "id"),
    ],
)
def test_bad_fields_get_one_message_each(fields: dict[str, object], bad: str) -> None:
    errors = errors_of(**fields)
    assert bad in errors
    assert errors[bad].strip()


def test_several_bad_fields_are_reported_together() -> None:
    errors = errors_of(title="", url="javascript:x", status="maybe")
    assert set(errors) == {"title", "url", "status"}


def test_danish_text_survives_and_html_is_sanitised() -> None:
    e = event(
        title="  Æblekagefest på Østergård – lørdagsbrunch  ",
        description='<p>Kom <b>og</b> spis<script>alert(1)</script> <a href="javascript:x">her</a>'
        "<img src=x onerror=alert(1)></p>",
    )
    assert e.title == "Æblekagefest på Østergård – lørdagsbrunch"
    assert "<script" not in e.description and "javascript:" not in e.description
    assert "onerror" not in e.description and "<b>og</b>" in e.description


def test_nonexistent_local_time_moves_forward_and_ambiguous_end_is_compared_in_utc() -> None:
    gap = event(start=datetime(2026, 3, 29, 2, 30, tzinfo=CPH))
    assert gap.start.utcoffset() == datetime(2026, 3, 29, 4, tzinfo=CPH).utcoffset()
    assert gap.start.astimezone(UTC) == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    fold = event(
        start=datetime(2026, 10, 25, 2, 30, tzinfo=CPH),
        end=datetime(2026, 10, 25, 2, 15, fold=1, tzinfo=CPH),
    )
    assert fold.end is not None
    assert isinstance(fold.end, datetime)
    assert fold.end.astimezone(UTC) - fold.start.astimezone(UTC) == (
        datetime(2026, 10, 25, 1, 15, tzinfo=UTC) - datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    )


def test_parse_when_reads_local_offset_and_all_day_forms() -> None:
    local = parse_when("2026-07-01T19:00", tz="Europe/Copenhagen", all_day=False)
    assert isinstance(local, datetime) and local.utcoffset() is not None
    assert local.astimezone(UTC).hour == 17
    offset = parse_when("2026-07-01T19:00+00:00", tz="Europe/Copenhagen", all_day=False)
    assert isinstance(offset, datetime) and offset.astimezone(UTC).hour == 19
    assert parse_when("2026-07-01", tz="Europe/Copenhagen", all_day=True) == date(2026, 7, 1)
    for bad in ("2026-02-31T10:00", "tomorrow", "2026-07-01"):
        with pytest.raises(ValueError):
            parse_when(bad, tz="Europe/Copenhagen", all_day=False)


def test_recurring_series_end_and_bounds() -> None:
    weekly = event(rrule="FREQ=WEEKLY;COUNT=3")
    assert weekly.series_end() == datetime(2026, 12, 18, 17, 0, tzinfo=UTC)
    assert errors_of(rrule="FREQ=DAILY;UNTIL=20400101T000000Z")["rrule"]


def test_place_notice_and_tombstone_validation() -> None:
    with pytest.raises(ValidationError) as caught:
        Place(name="Hallen", lat=91.0, lon=9.0)
    assert "lat" in caught.value.fields
    with pytest.raises(ValidationError) as caught:
        Place(name="Hallen", lat=56.0)
    assert "lat" in caught.value.fields
    assert Place(name="Hallen", street="Idrætsvej 2", postcode="8883", locality="Gjern").full == (
        "Hallen, Idrætsvej 2, 8883 Gjern"
    )
    with pytest.raises(ValidationError) as caught:
        Notice(id="urn:x:1", title="Opslag", updated=utc_now(), expires=datetime(2026, 1, 1))
    assert "expires" in caught.value.fields
    with pytest.raises(ValidationError):
        Tombstone(id="urn:x:1", deleted=datetime(2026, 1, 1))


def test_a_rule_that_never_matches_is_refused_quickly_and_until_is_utc() -> None:
    # dateutil alone searches to year 9999 for these (about 7 s of CPU each); klynge.rrules
    # evaluates them in a twin calendar year next to 9999 instead.
    for rule in (
        "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30;COUNT=1",
        "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30;UNTIL=20270101T000000Z",
    ):
        weird = event(rrule=rule)  # only DTSTART matches: a series of one, or refused
        assert weird.series_end() <= datetime(2027, 1, 1, tzinfo=UTC)
    assert errors_of(rrule="FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30;COUNT=5")["rrule"]
    # A UTC UNTIL is compared on wall-clock time in the event's zone (RFC 5545 §3.3.10).
    late = event(
        start=datetime(2026, 12, 1, 23, 30, tzinfo=CPH),
        rrule="FREQ=WEEKLY;UNTIL=20261229T225959Z",
    )
    assert late.series_end() == datetime(2026, 12, 29, 22, 30, tzinfo=UTC)


def test_years_far_outside_are_refused_per_field() -> None:
    assert "start" in errors_of(start=datetime(9999, 12, 31, 18, 0, tzinfo=CPH))
    with pytest.raises(ValidationError) as caught:
        Notice(id="urn:x:1", title="Opslag", updated=NOW, expires=datetime(1, 1, 2, tzinfo=UTC))
    assert "expires" in caught.value.fields


def test_a_repeat_that_ends_before_the_first_date_is_refused() -> None:
    assert errors_of(rrule="FREQ=WEEKLY;UNTIL=20261120T000000Z")["rrule"] == (
        "The repeat rule ends before the first date."
    )
