"""RRULE evaluation on wall-clock time, in bounded time and occurrences for every RepeatRule.

Only this module knows dateutil. Rules reach it as validated `RepeatRule` values
(klynge.repeat_rule), so nothing dateutil cannot finish (INTERVAL=0 loops forever) gets here,
and the rule is handed over as arguments, never as text to parse.

dateutil iterates a rule period by period until it finds a date or reaches year 9999: a rule
that can never match (FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30) costs about 7 s of CPU (measured),
whatever its UNTIL, since UNTIL is only compared with dates found. `series` therefore
evaluates the rule in a "twin" span of years just below 9999 whose calendar (weekdays and leap
days) is identical, so dateutil's own end of time stops the search soon, and moves the dates
back; it stops at the span and at the limit, so it yields at most `limit` starts.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

from dateutil.rrule import DAILY, MONTHLY, WEEKLY, YEARLY, rrule, weekday

from klynge.repeat_rule import WEEKDAYS, RepeatRule

_LAST_SAFE_YEAR = 9993  # the twin span ends a few years before datetime.MAXYEAR
_FIRST_TWIN_YEAR = 8000
_FREQ: dict[str, Literal[0, 1, 2, 3]] = {
    "DAILY": DAILY,
    "WEEKLY": WEEKLY,
    "MONTHLY": MONTHLY,
    "YEARLY": YEARLY,
}
MAX_SPAN = timedelta(days=100 * 366)  # longer spans have no twin below 9999


def naive_start(start: date) -> datetime:
    """Return a date or an aware datetime as a naive wall-clock datetime."""
    if isinstance(start, datetime):
        return start.replace(tzinfo=None)
    return datetime(start.year, start.month, start.day)


def wall_until(rule: RepeatRule, tz: ZoneInfo | None) -> datetime | None:
    """Return the rule's UNTIL as naive wall-clock time (a UTC UNTIL moved into `tz`)."""
    until = rule.until
    if until is None:
        return None
    if not isinstance(until, datetime):
        return datetime(until.year, until.month, until.day, 23, 59, 59)
    if until.tzinfo is not None and tz is not None:
        return until.astimezone(UTC).astimezone(tz).replace(tzinfo=None)
    return until.replace(tzinfo=None)


def series(
    rule: RepeatRule, start: date, tz: ZoneInfo | None, *, span: timedelta, limit: int
) -> Iterator[datetime]:
    """Yield the series' naive wall-clock starts within `span` of `start`, at most `limit`.

    RFC 5545 §3.8.5.3: DTSTART is always the first and counts towards COUNT; a UTC UNTIL is
    compared on wall-clock time after moving it to `tz`. Runs in bounded time.
    """
    naive = naive_start(start)
    horizon = naive + min(span, MAX_SPAN)
    offset = _twin_offset(naive.year, horizon.year)
    until = wall_until(rule, tz)
    wanted = min(limit, rule.count or limit)
    if wanted < 1:
        return
    yield naive
    found = 1
    twin_horizon = horizon.replace(year=horizon.year + offset)
    for twin in _dateutil(rule, naive.replace(year=naive.year + offset)):
        if found >= wanted or twin > twin_horizon:
            return  # the loop ends at year 9999 anyway: soon after the twin span
        moment = twin.replace(year=twin.year - offset)
        if until is not None and moment > until:
            return
        if moment > naive:
            found += 1
            yield moment


def wall_starts(
    rule: RepeatRule, start: date, tz: ZoneInfo | None, span: timedelta, limit: int
) -> list[datetime]:
    """Return the series' naive wall-clock starts within `span` of `start`, at most `limit`."""
    return list(series(rule, start, tz, span=span, limit=limit))


def _dateutil(rule: RepeatRule, dtstart: datetime) -> rrule:
    days = [weekday(WEEKDAYS.index(code), ordinal or None) for ordinal, code in rule.by_day]
    return rrule(
        _FREQ[rule.freq],
        dtstart=dtstart,
        interval=rule.interval,
        wkst=WEEKDAYS.index(rule.wkst),
        bymonth=rule.by_month or None,
        byweekno=rule.by_week_no or None,
        byyearday=rule.by_year_day or None,
        bymonthday=rule.by_month_day or None,
        byweekday=days or None,
        bysetpos=rule.by_set_pos or None,
        cache=False,
    )


@lru_cache(maxsize=1024)
def _twin_offset(first: int, last: int) -> int:
    """Return how many years to add to reach a twin span of years just below 9999.

    Two runs of years are twins when each year has the same leap-ness and weekday of 1 January;
    between the skipped leap days of 1900, 2100 and 2200 a twin lies within 35 years of 9999,
    across them within about 300 (measured over 1900-2200, 7-year spans).
    """
    length = last - first
    for candidate in range(_LAST_SAFE_YEAR - length, max(first, _FIRST_TWIN_YEAR), -1):
        if all(_same_year(first + i, candidate + i) for i in range(length + 1)):
            return candidate - first
    raise ValueError(f"no twin years for {first}-{last}")


def _same_year(a: int, b: int) -> bool:
    return calendar.isleap(a) == calendar.isleap(b) and _weekday(a) == _weekday(b)


def _weekday(year: int) -> int:
    return date(year, 1, 1).weekday()
