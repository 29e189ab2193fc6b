"""A series' exceptions in the model: excluded, extra and changed dates, at hostile dates.

Copenhagen leaves summer time on the last Sunday of October (25 October 2026, 03:00 -> 02:00)
and enters it on the last Sunday of March (28 March 2027); 2028 has a 29 February.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aggregator.store.records import item_from, item_record
from klynge.errors import ValidationError
from klynge.model import Event, Place, format_when
from klynge.recurrence import expand, occurrences
from klynge.series import MAX_EXCEPTIONS, Change, sift
from node.serialize import doc_to_item, item_to_doc
from node.store import Store

CPH = ZoneInfo("Europe/Copenhagen")
UPDATED = datetime(2026, 9, 1, 8, 0, tzinfo=UTC)
B = "Badminton for voksne"
WINDOW = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2029, 1, 1, tzinfo=UTC))


def badminton(**fields: object) -> Event:
    """Sundays 19-21 from 4 October 2026, six times: across the end of summer time."""
    start = datetime(2026, 10, 4, 19, 0, tzinfo=CPH)
    values: dict[str, object] = {
        "id": "urn:uuid:6d1f3c1e-8f0e-4f55-9a51-0b7a2c1e0001",
        "title": B,
        "updated": UPDATED,
        "start": start,
        "end": start + timedelta(hours=2),
        "rrule": "FREQ=WEEKLY;COUNT=6",
        "place": Place(name="Hallen"),
    }
    values.update(fields)
    return Event(**values)  # type: ignore[arg-type]


def at(day: int, month: int = 10, hour: int = 19) -> datetime:
    return datetime(2026, month, day, hour, 0, tzinfo=CPH)


def shown(event: Event) -> list[tuple[str, str, str, str]]:
    return [
        (o.start.isoformat(), o.end.isoformat(), o.title, o.status)  # type: ignore[union-attr]
        for o in occurrences(event, *WINDOW)
    ]


def test_skipped_moved_retitled_and_cancelled_dates_across_dst() -> None:
    event = badminton(
        exdates=(datetime(2026, 10, 11, 17, 0, tzinfo=UTC),),  # 19:00 summer time, in UTC
        changes=(
            Change(original=at(25), start=at(28, hour=20), place=Place(name="Skolen")),
            Change(original=at(1, 11), title="Juleafslutning"),
            Change(original=at(8, 11), cancelled=True),
        ),
        rdates=(at(20, 11, hour=10),),
    )
    assert event.exdates == (at(11),)  # normalised into the series' zone
    assert shown(event) == [
        ("2026-10-04T19:00:00+02:00", "2026-10-04T21:00:00+02:00", B, "confirmed"),
        ("2026-10-18T19:00:00+02:00", "2026-10-18T21:00:00+02:00", B, "confirmed"),
        ("2026-10-28T20:00:00+01:00", "2026-10-28T22:00:00+01:00", B, "confirmed"),
        ("2026-11-01T19:00:00+01:00", "2026-11-01T21:00:00+01:00", "Juleafslutning", "confirmed"),
        ("2026-11-08T19:00:00+01:00", "2026-11-08T21:00:00+01:00", B, "cancelled"),
        ("2026-11-20T10:00:00+01:00", "2026-11-20T12:00:00+01:00", B, "confirmed"),
    ]  # fmt: skip
    moved = occurrences(event, *WINDOW)[2]
    assert moved.moved and moved.place == Place(name="Skolen")
    assert moved.original == at(25)
    assert event.series_end() == datetime(2026, 11, 20, 11, 0, tzinfo=UTC)


def test_a_date_moved_out_of_the_window_leaves_it_and_one_moved_in_appears() -> None:
    event = badminton(changes=(Change(original=at(4), start=at(1, 12)),))
    october = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
    december = (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    assert [o.start.day for o in occurrences(event, *october)] == [11, 18, 25]  # type: ignore[union-attr]
    assert [o.start for o in occurrences(event, *december)] == [at(1, 12)]
    assert event.series_end() == datetime(2026, 12, 1, 20, 0, tzinfo=UTC)
    assert [o.start for o in expand([event], *december)] == [at(1, 12)]


def test_the_limit_counts_changed_dates_in_order() -> None:
    event = badminton(
        changes=(Change(original=at(8, 11), start=datetime(2026, 9, 30, 9, tzinfo=CPH)),)
    )
    first = occurrences(event, *WINDOW, limit=2)
    assert [o.start.day for o in first] == [30, 4]  # type: ignore[union-attr]


def test_all_day_series_over_29_february_and_new_year() -> None:
    start = date(2027, 12, 31)
    event = Event(
        id="urn:uuid:6d1f3c1e-8f0e-4f55-9a51-0b7a2c1e0002",
        title="Vinterbadning",
        updated=UPDATED,
        start=start,
        all_day=True,
        rrule="FREQ=DAILY;COUNT=62",
        exdates=(date(2028, 1, 1),),
        rdates=(date(2028, 3, 5),),
        changes=(Change(original=date(2028, 2, 29), start=date(2028, 3, 1), end=date(2028, 3, 3)),),
    )
    days = [(o.start, o.end) for o in occurrences(event, *WINDOW)]
    assert (date(2028, 1, 1), date(2028, 1, 2)) not in days
    assert (date(2028, 3, 1), date(2028, 3, 3)) in days
    assert days[-1] == (date(2028, 3, 5), date(2028, 3, 6))
    assert len(days) == 62


TWICE = (Change(original=at(4)), Change(original=datetime(2026, 10, 4, 17, tzinfo=UTC)))
EARLY_END = (Change(original=at(4), end=at(4, hour=18)),)
MANY = tuple(at(1, 12) + timedelta(days=i) for i in range(MAX_EXCEPTIONS + 1))


@pytest.mark.parametrize(
    ("fields", "field", "code"),
    [
        ({"rrule": None, "exdates": (at(4),)}, "exdates", "series.not_a_series"),
        ({"exdates": (at(5),)}, "exdates", "series.not_a_date"),
        ({"exdates": (date(2026, 10, 4),)}, "exdates", "series.bad_date"),
        ({"rdates": (datetime(2026, 10, 4, 19, 0),)}, "rdates", "series.bad_date"),  # no zone
        ({"rdates": (datetime(2300, 1, 1, tzinfo=UTC),)}, "rdates", "series.bad_year"),
        ({"changes": (Change(original=at(5)),)}, "changes", "series.not_a_date"),
        ({"exdates": (at(4),), "changes": (Change(original=at(4)),)}, "changes",
         "series.not_a_date"),
        ({"changes": TWICE}, "changes", "series.twice"),
        ({"changes": EARLY_END}, "changes", "series.end_before_start"),
        ({"changes": (Change(original=at(4), title="x" * 201),)}, "changes", "series.long_title"),
        ({"changes": (Change(original=at(4), sequence=-1),)}, "changes", "series.bad_sequence"),
        ({"rdates": MANY}, "exceptions", "series.too_many"),
    ],
)  # fmt: skip
def test_refusals_name_the_field_and_a_code(
    fields: dict[str, object], field: str, code: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        badminton(**fields)
    assert caught.value.fields[field].code == code


def test_a_change_on_the_repeated_hour_is_named_by_its_instant() -> None:
    """02:30 happens twice on 25 October 2026; each is its own date of a daily 02:30 series."""
    first = datetime(2026, 10, 24, 2, 30, tzinfo=CPH)
    daily = badminton(start=first, end=None, rrule="FREQ=DAILY;COUNT=3")
    second_pass = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)  # the later 02:30 (fold 1)
    with pytest.raises(ValidationError):
        replace(daily, exdates=(second_pass,))  # the rule's 02:30 is the first pass (fold 0)
    event = replace(daily, exdates=(datetime(2026, 10, 25, 0, 30, tzinfo=UTC),))
    assert [format_when(o.start) for o in occurrences(event, *WINDOW)] == [
        "2026-10-24T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
    ]


def test_sift_keeps_the_good_and_names_the_bad() -> None:
    event, problems = sift(
        badminton(),
        exdates=[at(4), at(5)],
        changes=[Change(original=at(18), cancelled=True), Change(original=at(19))],
    )
    assert event.exdates == (at(4),)
    assert [c.original for c in event.changes] == [at(18)]
    assert [(f, m.code) for f, m in problems] == [
        ("exdates", "series.not_a_date"),
        ("changes", "series.not_a_date"),
    ]


def _full() -> Event:
    return badminton(
        exdates=(at(11),),
        rdates=(at(20, 11, hour=10),),
        changes=(
            Change(original=at(25), start=at(28, hour=20), sequence=2, place=Place(name="Skolen")),
            Change(original=at(1, 11), title="Juleafslutning", description="<p>Gløgg</p>"),
            Change(original=at(8, 11), cancelled=True),
        ),
    )


def test_both_stores_keep_the_exceptions_and_read_old_records() -> None:
    event = _full()
    assert doc_to_item(item_to_doc(event)) == event
    back = item_from(item_record(event))
    assert back == event and shown(back) == shown(event)
    old = {k: v for k, v in item_record(event).items() if k not in ("exdates", "rdates", "changes")}
    assert item_from(old) == badminton()
    old_doc = {
        k: v for k, v in item_to_doc(event).items() if k not in ("exdates", "rdates", "changes")
    }
    assert doc_to_item(old_doc) == badminton()


async def test_node_store_file_round_trip_with_exceptions(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "node.json")
    await store.save_item(_full())
    store.close()
    reopened = Store.open(tmp_path / "node.json")
    assert reopened.get("6d1f3c1e-8f0e-4f55-9a51-0b7a2c1e0001") == _full()
    reopened.close()
