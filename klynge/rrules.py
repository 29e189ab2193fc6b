"""RRULE evaluation on wall-clock time, in bounded time even for rules that never match.

dateutil iterates a rule period by period until it finds a date or reaches year 9999: a rule
that can never match (FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30) costs about 7 s of CPU (measured),
whatever its UNTIL, since UNTIL is only compared with dates found. Anyone who can post an
event or publish a feed could send one. `wall_starts` therefore evaluates the rule in a "twin"
year just below 9999 whose calendar (weekdays and leap days) is identical, so dateutil's own
end of time stops the search after a few decades, and moves the dates back.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule, rruleset, rrulestr

_LAST_SAFE_YEAR = 9993  # the twin window (start + 6 years) must end before datetime.MAXYEAR
_COUNT_RE = re.compile(r"COUNT=(\d+)", re.IGNORECASE)
_UNTIL_RE = re.compile(r"UNTIL=(\d{8})(?:T(\d{6})(Z?))?", re.IGNORECASE)
_BOUND_RE = re.compile(r";?(COUNT|UNTIL)=[^;]*", re.IGNORECASE)


def naive_start(start: date) -> datetime:
    """Return a date or an aware datetime as a naive wall-clock datetime."""
    if isinstance(start, datetime):
        return start.replace(tzinfo=None)
    return datetime(start.year, start.month, start.day)


def wall_until(rule: str, tz: ZoneInfo | None) -> datetime | None:
    """Return the rule's UNTIL as naive wall-clock time (a UTC UNTIL moved into `tz`)."""
    match = _UNTIL_RE.search(rule)
    if match is None:
        return None
    day, clock, utc = match.group(1), match.group(2) or "235959", match.group(3)
    moment = datetime.strptime(day + clock, "%Y%m%d%H%M%S")
    if utc and tz is not None:
        return moment.replace(tzinfo=UTC).astimezone(tz).replace(tzinfo=None)
    return moment


def wall_rule(rule: str, start: date, tz: ZoneInfo | None) -> rruleset:
    """Return the rule as a dateutil set of naive wall-clock starts, DTSTART included.

    Only for rules `wall_starts` has shown to have dates: iterating a rule without any never
    ends before year 9999. RFC 5545 §3.8.5.3: DTSTART is always the first occurrence and
    counts towards COUNT; a UTC UNTIL is compared on wall-clock time after moving it to `tz`.
    """
    naive = naive_start(start)
    until = wall_until(rule, tz)
    text = _UNTIL_RE.sub(f"UNTIL={until:%Y%m%dT%H%M%S}", rule) if until else rule
    parsed = rrulestr(text, dtstart=naive, ignoretz=True)
    if not isinstance(parsed, rrule):
        raise ValueError("give one RRULE line")
    result = rruleset()
    result.rdate(naive)
    count = _COUNT_RE.search(text)
    if count is None or parsed.after(naive, inc=True) == naive:
        result.rrule(parsed)
    elif int(count.group(1)) > 1:
        result.rrule(parsed.replace(count=int(count.group(1)) - 1))
    return result


def wall_starts(
    rule: str, start: date, tz: ZoneInfo | None, span: timedelta, limit: int
) -> list[datetime]:
    """Return the series' naive wall-clock starts within `span` of `start`, at most `limit`.

    DTSTART is the first; COUNT and UNTIL apply as RFC 5545 says. Runs in bounded time.
    """
    naive = naive_start(start)
    offset = _twin_offset(naive.year)
    unbounded = _BOUND_RE.sub("", rule).strip(";")
    parsed = rrulestr(unbounded, dtstart=naive.replace(year=naive.year + offset), ignoretz=True)
    if not isinstance(parsed, rrule):
        raise ValueError("give one RRULE line")
    horizon, found = naive + span, [naive]
    for twin in parsed:  # ends at year 9999 at the latest: a few decades after the twin start
        moment = twin.replace(year=twin.year - offset)
        if moment > horizon or len(found) >= limit:
            break
        if moment > naive:
            found.append(moment)
    return _bounded(found, rule, tz)


def _bounded(found: list[datetime], rule: str, tz: ZoneInfo | None) -> list[datetime]:
    until = wall_until(rule, tz)
    if until is not None:
        found = [moment for moment in found if moment <= until] or found[:1]
    count = _COUNT_RE.search(rule)
    return found[: int(count.group(1))] if count else found


def _twin_offset(year: int) -> int:
    """Return how many years to add to `year` to reach a twin calendar just below 9999.

    Gregorian calendars repeat every 400 years. Where no leap day is skipped (years 1901-2099,
    9901-9999), a seven-year run also repeats whenever the first year has the same leap phase
    and weekday: that twin lies within 33 years of 9999, so a rule without dates ends quickly.
    """
    if not any(y % 100 == 0 and y % 400 != 0 for y in range(year, year + 7)):
        for candidate in range(_LAST_SAFE_YEAR, 9900, -1):
            if candidate % 4 == year % 4 and _weekday(candidate) == _weekday(year):
                return candidate - year
    base = year % 400
    return base + (9600 if base + 9600 <= _LAST_SAFE_YEAR else 9200) - year


def _weekday(year: int) -> int:
    return date(year, 1, 1).weekday()
