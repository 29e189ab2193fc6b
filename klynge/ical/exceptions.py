"""A series' EXDATE, RDATE and RECURRENCE-ID overrides read into the model's exceptions.

`fit` returns the series with its excluded, extra and changed dates (klynge.series), or None
when the model cannot say what the calendar says; the reader then expands the series into its
single dates with recurring_ical_events instead (klynge.ical.expansion). None is returned for a
second RRULE, a RANGE=THISANDFUTURE override, an RDATE period, a date of another kind than the
series' start (a date among date-times), an override with another status than the series' own
or cancelled, an override of a date the series does not have (inside the window), more
exceptions than `MAX_EXCEPTIONS`, and any exception `sift` finds wrong.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from klynge.errors import InvalidValue, ValidationError
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
from klynge.model import TEXT_MAX, TITLE_MAX, Event, When, as_utc
from klynge.series import MAX_EXCEPTIONS, Change, changed_span, key, rule_starts, sift


class _Unfit(Exception):
    """The model cannot carry this series' exceptions as the calendar gives them."""


def native(group: list[Any]) -> bool:
    """Tell whether one UID's components may become one series with exceptions."""
    masters = [c for c in group if "RECURRENCE-ID" not in c]
    if len(masters) != 1 or isinstance(masters[0].get("RRULE"), list):
        return False  # no series, two series, or a second RRULE (the model has one rule)
    for override in group:
        prop = override.get("RECURRENCE-ID")
        if prop is not None and (
            isinstance(prop, list) or "RANGE" in prop.params or "RRULE" in override
        ):
            return False
    return "RRULE" in masters[0]


def fit(
    event: Event, group: list[Any], default_tz: str, now: datetime, notes: list[Message]
) -> Event | None:
    """Return the series `event` with the exceptions of its components, or None (expand it)."""
    master = next(c for c in group if "RECURRENCE-ID" not in c)
    try:
        rdates = [_kind(event, v) for v in _values(master, "RDATE")]
        known = {key(v) for v in (*rule_starts(event), *rdates)}
        # An EXDATE of no date of the (bounded) series changes nothing: it is left out.
        exdates = [_kind(event, v) for v in _values(master, "EXDATE")]
        exdates = [v for v in exdates if key(v) in known]
        overrides = [c for c in group if "RECURRENCE-ID" in c]
        changes = _changes(event, overrides, default_tz, now, known, notes)
    except (_Unfit, InvalidValue, ValidationError, ValueError, TypeError, AttributeError):
        return None  # expanded instead, where a broken date is said in words
    if len(exdates) + len(rdates) + len(changes) > MAX_EXCEPTIONS:
        return None
    fitted, problems = sift(event, exdates, rdates, changes)
    return None if problems else fitted


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
    event: Event,
    overrides: list[Any],
    default_tz: str,
    now: datetime,
    known: set[When],
    notes: list[Message],
) -> list[Change]:
    chosen: dict[When, tuple[tuple[int, int], Change]] = {}
    for order, override in enumerate(overrides):
        change = _change(event, override, default_tz, notes)
        if key(change.original) not in known:
            if _outside(event, change, now):
                continue  # a change of a date long past or beyond the horizon
            raise _Unfit  # recurring_ical_events shows it as an extra date
        rank = (change.sequence, order)  # the newest revision of a date wins, as in RFC 5546
        other = chosen.get(key(change.original))
        if other is None or rank > other[0]:
            chosen[key(change.original)] = (rank, change)
    return [change for _, change in chosen.values()]


def _change(event: Event, override: Any, default_tz: str, notes: list[Message]) -> Change:
    original = _kind(event, one(override, "RECURRENCE-ID").dt)
    _, start, end = read_times(override, default_tz)
    start = _kind(event, start)
    if end is None:  # RFC 5545 §3.6.1: an instant, or one day for a date
        end = start + timedelta(days=1) if event.all_day else start
    status, title = read_status(override)
    if status not in ("cancelled", event.status):
        raise _Unfit  # the model changes a date's status only to cancelled
    title = (title or UNTITLED)[:TITLE_MAX]
    description = text_to_html(str(one(override, "DESCRIPTION", "")))[:TEXT_MAX]
    place = optional("LOCATION/GEO", lambda: read_place(override), None, notes)
    change = Change(
        original=original,
        start=None if key(start) == key(original) else start,
        title="" if title == event.title else title,
        description="" if description == event.description else description,
        place=None if place == event.place else place,
        cancelled=status == "cancelled",
        sequence=optional("SEQUENCE", lambda: max(0, int(one(override, "SEQUENCE", 0))), 0, []),
    )
    if key(changed_span(event, change)[1]) != key(_kind(event, end)):
        change = change.with_times(end=end)
    return change


def _outside(event: Event, change: Change, now: datetime) -> bool:
    start, end = (as_utc(v, event.timezone) for v in changed_span(event, change))
    return end < now - PAST or start > now + HORIZON
