"""A series' EXDATE, RDATE and RECURRENCE-ID overrides read into the model's exceptions.

`fit` returns the series with its excluded, extra and changed dates (klynge.series), or None
when the model cannot say what the calendar says; the reader then expands the series into its
single dates with recurring_ical_events instead (klynge.ical.expansion). One override with
RANGE=THISANDFUTURE splits the series in two (RFC 5545 §3.8.4.4): the dates before it, and a
second series from the override on, every later date moved as the override was.

None is returned for a second RRULE, more than one RANGE override, an RDATE period, a date of
another kind than the series' start (a date among date-times), an override with another status
than the series' own or cancelled, an override of a date the series does not have (inside the
window), more exceptions than `MAX_EXCEPTIONS`, a split whose second rule does not give the
moved dates (a BYDAY the move leaves), and any exception `sift` finds wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from klynge.errors import ValidationError
from klynge.ical.fields import (
    UNTITLED,
    aware,
    one,
    optional,
    read_place,
    read_status,
    read_times,
    text_to_html,
)
from klynge.ical.series import HORIZON, PAST
from klynge.messages import Message
from klynge.model import TEXT_MAX, TITLE_MAX, Event, Place, When, as_utc, localize, zone
from klynge.rrules import naive_start
from klynge.series import MAX_EXCEPTIONS, Change, changed_span, key, rule_starts, sift

Shift = Callable[[When], When]


class _Unfit(Exception):
    """The model cannot carry this series' exceptions as the calendar gives them."""


@dataclass(frozen=True)
class _Override:
    """One override as the calendar gives it: every value explicit, and its status."""

    original: When
    start: When
    end: When
    title: str
    description: str
    place: Place | None
    status: str
    sequence: int


def native(group: list[Any]) -> bool:
    """Tell whether one UID's components may become one series (two with a split)."""
    masters = [c for c in group if "RECURRENCE-ID" not in c]
    if len(masters) != 1 or isinstance(masters[0].get("RRULE"), list):
        return False  # no series, two series, or a second RRULE (the model has one rule)
    ranges = 0
    for override in group:
        prop = override.get("RECURRENCE-ID")
        if prop is None:
            continue
        if isinstance(prop, list) or "RRULE" in override:
            return False
        if "RANGE" in prop.params:
            if str(prop.params["RANGE"]).upper() != "THISANDFUTURE":
                return False
            ranges += 1
    return ranges <= 1 and "RRULE" in masters[0]


def future(group: list[Any]) -> Any | None:
    """Return the override with RANGE=THISANDFUTURE, if any."""
    for component in group:
        prop = component.get("RECURRENCE-ID")
        if prop is not None and not isinstance(prop, list) and "RANGE" in prop.params:
            return component
    return None


def fit(
    event: Event,
    group: list[Any],
    default_tz: str,
    now: datetime,
    notes: list[Message],
    tail: Event | None = None,
) -> list[Event] | None:
    """Return the series `event` with its exceptions (and `tail`, its split-off rest) or None.

    `tail` is the RANGE=THISANDFUTURE override read as an event without rule.
    """
    master = next(c for c in group if "RECURRENCE-ID" not in c)
    try:
        exdates = [_kind(event, v) for v in _values(master, "EXDATE")]
        rdates = [_kind(event, v) for v in _values(master, "RDATE")]
        overrides = [
            _override(event, c, default_tz, notes)
            for c in group
            if "RECURRENCE-ID" in c and "RANGE" not in c["RECURRENCE-ID"].params
        ]
        if tail is None:
            return [_fitted(event, exdates, rdates, overrides, now)]
        split = future(group)
        if split is None:
            raise _Unfit
        cut = _kind(event, one(split, "RECURRENCE-ID").dt)
        return _split(event, tail, cut, (exdates, rdates, overrides), now)
    except (
        _Unfit,
        ValidationError,
        ValueError,
        TypeError,
        AttributeError,
        KeyError,
        OverflowError,
    ):
        return None  # expanded instead, where a broken date is said in words


def _split(
    event: Event,
    tail: Event,
    cut: When,
    found: tuple[list[When], list[When], list[_Override]],
    now: datetime,
) -> list[Event]:
    """Return the series before `cut` and the series from `tail` on, with their exceptions."""
    if (tail.timezone, tail.all_day) != (event.timezone, event.all_day) or event.rrule is None:
        raise _Unfit
    starts = rule_starts(event)
    if key(cut) not in {key(s) for s in starts} or any(
        key(o.original) == key(cut) for o in found[2]
    ):
        raise _Unfit
    move = _mover(event, cut, tail.start)
    before = [s for s in starts if key(s) < key(cut)]
    after = [move(s) for s in starts if key(s) >= key(cut)]
    rest = _with_rule(tail, replace(event.rrule, count=None, until=_until(after[-1])), after)
    exdates, rdates, overrides = found
    parts = []
    if before:
        first = _with_rule(
            event, replace(event.rrule, count=None, until=_until(before[-1])), before
        )
        early = (
            [v for v in exdates if key(v) < key(cut)],
            [v for v in rdates if key(v) < key(cut)],
            [o for o in overrides if key(o.original) < key(cut)],
        )
        parts.append(_fitted(first, *early, now))
    # The later exceptions name the dates as the rule gave them: moved with their series.
    late = (
        [move(v) for v in exdates if key(v) >= key(cut)],
        [move(v) for v in rdates if key(v) >= key(cut)],
        [replace(o, original=move(o.original)) for o in overrides if key(o.original) > key(cut)],
    )
    if not parts:  # the override moved the series' first date: the series, one id
        rest = replace(rest, id=event.id)
    parts.append(_fitted(rest, *late, now))
    return parts


def _mover(event: Event, cut: When, start: When) -> Shift:
    """Return what moves a date as the override moved `cut` to `start` (on the wall clock)."""
    if not (isinstance(cut, datetime) and isinstance(start, datetime)):
        days = timedelta(days=start.toordinal() - cut.toordinal())

        def by_days(value: When) -> When:
            return value + days

        return by_days
    tz = zone(event.timezone)
    delta = naive_start(start.astimezone(tz)) - naive_start(cut.astimezone(tz))

    def by_wall_clock(value: When) -> When:
        # As recurring_ical_events: the same wall-clock move on every date (RFC 5545 §3.8.4.4).
        assert isinstance(value, datetime)
        return localize(naive_start(value.astimezone(tz)) + delta, tz)

    return by_wall_clock


def _with_rule(event: Event, rule: Any, wanted: list[When]) -> Event:
    """Return the event with the rule, when it gives exactly the wanted starts."""
    shaped = replace(event, rrule=rule, start=wanted[0], end=_end_from(event, wanted[0]))
    if [key(s) for s in rule_starts(shaped)] != [key(s) for s in wanted]:
        raise _Unfit  # e.g. a BYDAY that the move leaves behind
    return shaped


def _end_from(event: Event, start: When) -> When | None:
    if event.end is None:
        return None
    if isinstance(start, datetime) and isinstance(event.end, datetime):
        length = event.end.astimezone(UTC) - as_utc(event.start)
        return (start.astimezone(UTC) + length).astimezone(start.tzinfo)
    return start + (event.end - event.start)


def _until(last: When) -> When:
    return last.astimezone(UTC) if isinstance(last, datetime) else last


def _fitted(
    event: Event,
    exdates: list[When],
    rdates: list[When],
    overrides: list[_Override],
    now: datetime,
) -> Event:
    known = {key(v) for v in (*rule_starts(event), *rdates)}
    # An EXDATE of no date of the (bounded) series changes nothing: it is left out.
    exdates = [v for v in exdates if key(v) in known]
    changes = _changes(event, overrides, now, known)
    if len(exdates) + len(rdates) + len(changes) > MAX_EXCEPTIONS:
        raise _Unfit
    fitted, problems = sift(event, exdates, rdates, changes)
    if problems:
        raise _Unfit
    return fitted


def _values(component: Any, name: str) -> list[When]:
    prop = component.get(name)
    props = prop if isinstance(prop, list) else [prop] if prop is not None else []
    found: list[When] = []
    for each in props:
        for value in getattr(each, "dts", []):
            moment = value.dt
            if not isinstance(moment, date):  # a PERIOD (RFC 5545 §3.3.9): its own length
                raise _Unfit
            found.append(moment)
    return found


def _kind(event: Event, value: When) -> When:
    """Return `value` as a date of the series' kind (floating times in its zone)."""
    if event.all_day:
        if isinstance(value, datetime):
            raise _Unfit
        return value
    if not isinstance(value, datetime):
        raise _Unfit  # a date among date-times: recurring_ical_events matches it by day
    return aware(value, event.timezone)


def _changes(
    event: Event, overrides: list[_Override], now: datetime, known: set[When]
) -> list[Change]:
    chosen: dict[When, tuple[tuple[int, int], Change]] = {}
    for order, override in enumerate(overrides):
        change = _change(event, override)
        if key(change.original) not in known:
            if _outside(event, change, now):
                continue  # a change of a date long past or beyond the horizon
            raise _Unfit  # recurring_ical_events shows it as an extra date
        rank = (change.sequence, order)  # the newest revision of a date wins, as in RFC 5546
        other = chosen.get(key(change.original))
        if other is None or rank > other[0]:
            chosen[key(change.original)] = (rank, change)
    return [change for _, change in chosen.values()]


def _override(event: Event, component: Any, default_tz: str, notes: list[Message]) -> _Override:
    _, start, end = read_times(component, default_tz)
    start = _kind(event, start)
    if end is None:  # RFC 5545 §3.6.1: an instant, or one day for a date
        end = start + timedelta(days=1) if event.all_day else start
    status, title = read_status(component)
    return _Override(
        original=_kind(event, one(component, "RECURRENCE-ID").dt),
        start=start,
        end=_kind(event, end),
        title=(title or UNTITLED)[:TITLE_MAX],
        description=text_to_html(str(one(component, "DESCRIPTION", "")))[:TEXT_MAX],
        place=optional("LOCATION/GEO", lambda: read_place(component), None, notes),
        status=status,
        sequence=optional("SEQUENCE", lambda: max(0, int(one(component, "SEQUENCE", 0))), 0, []),
    )


def _change(event: Event, override: _Override) -> Change:
    """Return the override as a change of `event`: only what differs from the series."""
    if override.status not in ("cancelled", event.status):
        raise _Unfit  # the model changes a date's status only to cancelled
    change = Change(
        original=override.original,
        start=None if key(override.start) == key(override.original) else override.start,
        title="" if override.title == event.title else override.title,
        description="" if override.description == event.description else override.description,
        place=None if override.place == event.place else override.place,
        cancelled=override.status == "cancelled",
        sequence=override.sequence,
    )
    if key(changed_span(event, change)[1]) != key(override.end):
        change = change.with_times(end=override.end)
    return change


def _outside(event: Event, change: Change, now: datetime) -> bool:
    start, end = (as_utc(v, event.timezone) for v in changed_span(event, change))
    return end < now - PAST or start > now + HORIZON
