"""The dates of a series Klynge's model cannot carry, worked out by `recurring_ical_events`.

Used where klynge.ical.exceptions cannot make the series one (or two) model series: a second
RRULE, two RANGE=THISANDFUTURE overrides, an RDATE period, exceptions of another kind than the
start, more than the model's cap (docs/aggregator.md, "ICS sources"); rules the model refuses (a
sparse YEARLY;INTERVAL=4 has too few dates in its five years); and overrides whose series is
missing. Each rule is first checked by Klynge's own parser (attacks such as INTERVAL=0 or BYHOUR
are refused in the same words as elsewhere), and an old series is moved to a recent occurrence
first, so that dateutil never walks decades of days (a DAILY rule that never matches cost 7 s
from 1995, measured).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import icalendar
import recurring_ical_events
from icalendar import Calendar

from klynge.errors import InvalidValue
from klynge.ical.fields import read_times
from klynge.ical.series import HORIZON, PAST, REBASE_AFTER, bound_rule
from klynge.messages import Message, define
from klynge.model import as_utc
from klynge.repeat_rule import MAX_COUNT, parse_rrule

_COUNT = re.compile(r"\bCOUNT=(\d{1,9})\b")

OLD_DENSE = define(
    "ical.old_dense",
    "its repeat rule began long ago and has too few dates to be moved forward, "
    "so its dates cannot be worked out in bounded time.",
)


def occurrences(
    cal: Calendar, group: list[Any], default_tz: str, now: datetime
) -> list[icalendar.Component]:
    """Return the occurrences of one UID's components from 90 days ago to 18 months ahead.

    Raises ValidationError for a rule Klynge refuses, InvalidValue for an old dense series.
    """
    calendar = Calendar()
    for timezone in cal.walk("VTIMEZONE"):
        calendar.add_component(timezone)
    for component in group:
        calendar.add_component(_prepared(component, default_tz, now))
    return list(recurring_ical_events.of(calendar).between(now - PAST, now + HORIZON))


def _prepared(component: Any, default_tz: str, now: datetime) -> Any:
    prop = component.get("RRULE")
    if prop is None or "RECURRENCE-ID" in component:
        return component
    props = prop if isinstance(prop, list) else [prop]
    rules = [parse_rrule(_checked_text(p)) for p in props]
    tzid, start, end = read_times(component, default_tz)
    if as_utc(start, tzid) >= now - REBASE_AFTER:
        return component
    if len(rules) == 1 and rules[0].count is None:
        # Moved to an occurrence of its own rule, the series keeps its phase, its EXDATEs
        # and the RECURRENCE-IDs of its overrides.
        _, start, end, _ = bound_rule(rules[0], start, end, tzid, now)
        _set(component, "DTSTART", start)
        if end is not None and "DTEND" in component:
            _set(component, "DTEND", end)
    if as_utc(start, tzid) < now - REBASE_AFTER and any(
        r.freq in ("DAILY", "WEEKLY") for r in rules
    ):
        raise InvalidValue(Message(OLD_DENSE))
    return component


def _checked_text(prop: Any) -> str:
    # The dates are worked out only within the window, so a COUNT above the model's 500 is
    # harmless here: the rest of the rule is checked as everywhere.
    text: str = prop.to_ical().decode("ascii", "replace")
    return _COUNT.sub(lambda m: f"COUNT={min(int(m.group(1)), MAX_COUNT)}", text)


def _set(component: Any, name: str, value: Any) -> None:
    del component[name]
    component.add(name, value)
