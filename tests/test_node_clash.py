"""Clash rules (node.cluster.clash) as one table of cases, then series, ranking, hostile dates."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from clock_support import COPENHAGEN, hostile_dates, local

from klynge.model import Event, Place
from node.cluster.clash import OVERLAP, SAME_DAY, SAME_VENUE, clashes
from node.cluster.events import ClusterEvent, event_of, events_of, row_of
from node.config import ClashRules

NOW = local("2026-12-01 10:00")
SATURDAY = date(2026, 12, 5)
RULES = ClashRules()
OURS_ID = "urn:uuid:00000000-0000-4000-8000-000000000001"
HALL = Place(name="Østerby Forsamlingshus", street="Skolevej 4", postcode="8500")


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=COPENHAGEN)


def ours(start: Any, end: Any, **extra: Any) -> Event:
    fields: dict[str, Any] = {"id": OURS_ID, "title": "Høstfest", "updated": NOW}
    fields |= {"start": start, "end": end, "category": "market"}
    return Event(**(fields | extra))


def other(start: Any, end: Any, **extra: Any) -> ClusterEvent:
    fields: dict[str, Any] = {"id": "urn:uuid:flea", "title": "Loppemarked", "village": "Vesterby"}
    fields |= {"start": start, "end": end, "category": "market"}
    return ClusterEvent(**(fields | extra))


TIMED = ours(at(SATURDAY, 11), at(SATURDAY, 13))
FLEA = other(at(SATURDAY, 10), at(SATURDAY, 15))

# name -> (our event, the cluster's event, the kind of clash or None)
CASES: dict[str, tuple[Event, ClusterEvent, str | None]] = {
    "overlapping times": (TIMED, FLEA, OVERLAP),
    "within the travel margin": (TIMED, other(at(SATURDAY, 9), at(SATURDAY, 10, 40)), OVERLAP),
    "beyond the travel margin": (TIMED, other(at(SATURDAY, 9), at(SATURDAY, 10, 20)), None),
    "later the same day, no overlap": (TIMED, other(at(SATURDAY, 19), at(SATURDAY, 22)), None),
    "no end: assumed two hours": (TIMED, other(at(SATURDAY, 9), at(SATURDAY, 9)), OVERLAP),
    "the next day": (TIMED, other(at(SATURDAY, 10) + timedelta(days=1),
                                  at(SATURDAY, 15) + timedelta(days=1)), None),
    "a cancelled event": (TIMED, replace(FLEA, status="cancelled"), None),
    "the event itself": (TIMED, replace(FLEA, id=OURS_ID), None),
    "a tentative reservation": (TIMED, replace(FLEA, status="tentative"), OVERLAP),
    "all-day vs timed, same day": (ours(SATURDAY, SATURDAY + timedelta(days=1), all_day=True),
                                   FLEA, SAME_DAY),
    "all-day vs all-day, next day": (ours(SATURDAY, SATURDAY + timedelta(days=1), all_day=True),
                                     other(SATURDAY + timedelta(days=1),
                                           SATURDAY + timedelta(days=2), all_day=True), None),
    "timed vs all-day the day before": (TIMED, other(SATURDAY - timedelta(days=1), SATURDAY,
                                                     all_day=True), None),
    "evening ending at midnight vs all-day next day": (
        ours(at(SATURDAY, 20), at(SATURDAY + timedelta(days=1), 0)),
        other(SATURDAY + timedelta(days=1), SATURDAY + timedelta(days=2), all_day=True), None),
    "the same venue": (replace(TIMED, place=HALL),
                       replace(FLEA, place="østerby  forsamlingshus", postcode="8500"), SAME_VENUE),
    "a hall of the same name elsewhere": (replace(TIMED, place=HALL),
                                          replace(FLEA, place=HALL.name, postcode="6000"),
                                          OVERLAP),
}  # fmt: skip


@pytest.mark.parametrize(("event", "cluster_event", "kind"), CASES.values(), ids=CASES.keys())
def test_clash_rule(event: Event, cluster_event: ClusterEvent, kind: str | None) -> None:
    found = clashes(event, [cluster_event], RULES, NOW)
    assert [c.kind for c in found] == ([kind] if kind else [])
    if found:
        assert found[0].other == cluster_event
        assert found[0].hard is (kind == SAME_VENUE)


def test_a_cancelled_event_of_ours_clashes_with_nothing() -> None:
    assert clashes(replace(TIMED, status="cancelled"), [FLEA], RULES, NOW) == []


def test_the_margin_is_tunable() -> None:
    near = other(at(SATURDAY, 9), at(SATURDAY, 10, 40))
    assert clashes(TIMED, [near], ClashRules(travel_minutes=0), NOW) == []
    assert clashes(TIMED, [near], ClashRules(travel_minutes=30), NOW) != []


def test_hard_first_then_same_category_then_time() -> None:
    sport = replace(FLEA, id="urn:uuid:sport", category="sport", start=at(SATURDAY, 9))
    market = replace(FLEA, id="urn:uuid:market", start=at(SATURDAY, 12))
    venue = replace(FLEA, id="urn:uuid:venue", category="sport", place=HALL.name)
    found = clashes(replace(TIMED, place=HALL), [sport, market, venue], RULES, NOW)
    assert [c.other.id for c in found] == ["urn:uuid:venue", "urn:uuid:market", "urn:uuid:sport"]
    assert [c.same_category for c in found] == [False, True, False]
    flat = clashes(TIMED, [sport, market], ClashRules(category_weight=0), NOW)
    assert [c.other.id for c in flat] == ["urn:uuid:sport", "urn:uuid:market"]  # by time


def test_an_overlap_ranks_above_a_shared_day() -> None:
    fair = other(SATURDAY, SATURDAY + timedelta(days=1), all_day=True, id="urn:uuid:fair")
    assert [c.kind for c in clashes(TIMED, [fair, FLEA], RULES, NOW)] == [OVERLAP, SAME_DAY]


def test_at_most_max_shown() -> None:
    many = [replace(FLEA, id=f"urn:uuid:{n}") for n in range(20)]
    assert len(clashes(TIMED, many, ClashRules(max_shown=3), NOW)) == 3


# --- series: every date on its own, exceptions included -------------------------------------

WEEKLY = ours(at(SATURDAY, 11), at(SATURDAY, 13), rrule="FREQ=WEEKLY;COUNT=6")
THIRD = SATURDAY + timedelta(weeks=2)


def test_a_series_clashes_on_its_own_date() -> None:
    flea = other(at(THIRD, 10), at(THIRD, 15))
    [found] = clashes(WEEKLY, [flea], RULES, NOW)
    assert found.date == at(THIRD, 11)


def test_an_excluded_date_does_not_clash() -> None:
    flea = other(at(THIRD, 10), at(THIRD, 15))
    assert clashes(replace(WEEKLY, exdates=(at(THIRD, 11),)), [flea], RULES, NOW) == []


def test_a_moved_date_clashes_where_it_moved() -> None:
    from klynge.series import Change

    sunday = THIRD + timedelta(days=1)
    moved = Change(original=at(THIRD, 11), start=at(sunday, 11), end=at(sunday, 13))
    series = replace(WEEKLY, changes=(moved,))
    on_saturday = other(at(THIRD, 10), at(THIRD, 15))
    on_sunday = other(at(sunday, 12), at(sunday, 14), id="urn:uuid:sunday")
    assert [c.other.id for c in clashes(series, [on_saturday, on_sunday], RULES, NOW)] == [
        "urn:uuid:sunday"
    ]


def test_a_cancelled_date_of_a_series_does_not_clash() -> None:
    from klynge.series import Change

    off = Change(original=at(THIRD, 11), cancelled=True)
    flea = other(at(THIRD, 10), at(THIRD, 15))
    assert clashes(replace(WEEKLY, changes=(off,)), [flea], RULES, NOW) == []


# --- hostile dates: DST changes and 29 February -------------------------------------------


@hostile_dates
def test_tomorrow_evening_clashes_and_the_day_after_does_not(now: datetime) -> None:
    tomorrow = now.astimezone(COPENHAGEN).date() + timedelta(days=1)
    event = ours(at(tomorrow, 18), at(tomorrow, 21))
    same = other(at(tomorrow, 19), at(tomorrow, 23))
    after = other(at(tomorrow, 19) + timedelta(days=1), at(tomorrow, 23) + timedelta(days=1),
                  id="urn:uuid:after")  # fmt: skip
    assert [c.other.id for c in clashes(event, [same, after], RULES, now)] == [same.id]


def test_on_the_spring_dst_change() -> None:
    day = date(2027, 3, 28)  # 02:00-03:00 does not exist in Copenhagen
    event = ours(at(day, 1, 30), at(day, 3, 30))  # 1 h 00 of real time, 01:30 CET-03:30 CEST
    before = other(at(day, 0), at(day, 0, 50))  # ends 40 min before: beyond the margin
    inside = other(at(day, 3), at(day, 4), id="urn:uuid:inside")
    assert [
        c.other.id for c in clashes(event, [before, inside], RULES, local("2027-03-27 12:00"))
    ] == ["urn:uuid:inside"]


def test_on_the_autumn_dst_change_the_day_is_25_hours() -> None:
    day = date(2027, 10, 31)
    allday = ours(day, day + timedelta(days=1), all_day=True)
    late = other(at(day, 23, 30), at(day, 23, 45))
    next_morning = other(at(day + timedelta(days=1), 0, 15), at(day + timedelta(days=1), 1),
                         id="urn:uuid:monday")  # fmt: skip
    assert [c.other.id for c in clashes(allday, [late, next_morning], RULES, NOW)] == [late.id]


def test_on_29_february() -> None:
    leap = date(2028, 2, 29)
    allday = ours(leap, leap + timedelta(days=1), all_day=True)
    same = other(at(leap, 19), at(leap, 21))
    march = other(at(date(2028, 3, 1), 10), at(date(2028, 3, 1), 12), id="urn:uuid:march")
    now = local("2028-02-28 12:00")
    assert [c.other.id for c in clashes(allday, [same, march], RULES, now)] == [same.id]
    yearly = ours(at(leap, 19), at(leap, 21), rrule="FREQ=YEARLY;COUNT=2")  # 2028, 2032
    assert clashes(yearly, [march], RULES, now) == []


# --- the copy's rows: untrusted, checked field by field -----------------------------------


def test_rows_round_trip_and_bad_rows_are_left_out() -> None:
    event = replace(FLEA, status="tentative", place="Skolen", street="Vej 1", postcode="6000")
    assert event_of(row_of(event)) == event
    bad: list[Any] = [
        None, "x", {}, {"id": "x"}, {"id": "x", "start": "soon"},
        {"id": "x", "start": "2026-12-05T10:00"},  # no offset
        {"id": "x", "start": "2026-12-05T10:00+01:00", "status": "maybe"},
        {"id": "x", "start": 5},
    ]  # fmt: skip
    assert events_of([*bad, row_of(event)]) == [event]
    assert events_of("not a list") == []


def test_an_end_before_the_start_is_read_as_no_end() -> None:
    row = row_of(FLEA) | {"end": "2026-12-05T08:00:00+01:00"}
    read = event_of(row)
    assert read is not None and read.end == read.start
