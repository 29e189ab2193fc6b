"""Recurrence expansion: the occurrences of events in a time window.

Rules are expanded on wall-clock time in the event's own zone (dateutil with a naive start,
then `localize` per occurrence), so a weekly 19:00 stays 19:00 across DST changes, as
RFC 5545 §3.3.10 requires for DTSTART with a TZID.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from dateutil.rrule import rrule, rruleset, rrulestr

from klynge.model import Event, When, as_utc, localize, zone

DEFAULT_LIMIT = 500
_COUNT_RE = re.compile(r"COUNT=(\d+)", re.IGNORECASE)
_UTC_UNTIL_RE = re.compile(r"UNTIL=(\d{8}T\d{6})Z", re.IGNORECASE)


@dataclass(frozen=True)
class Occurrence:
    """One happening of an event: its start and end (dates for all-day events)."""

    event: Event
    start: When
    end: When


def wall_rule(rule: str, start: When, tz: ZoneInfo) -> rruleset:
    """Return the rule as a dateutil set of naive wall-clock starts, DTSTART included.

    A UTC UNTIL is moved to wall-clock time first: dateutil compares it with the naive
    starts, and RFC 5545 defines UNTIL in UTC when DTSTART has a TZID.
    """
    naive = _naive(start)
    text = _UTC_UNTIL_RE.sub(lambda m: "UNTIL=" + _wall_until(m.group(1), tz), rule)
    parsed = rrulestr(text, dtstart=naive, ignoretz=True)
    if not isinstance(parsed, rrule):
        raise ValueError("give one RRULE line")
    result = rruleset()
    result.rdate(naive)  # RFC 5545 §3.8.5.3: DTSTART is always the first occurrence...
    count = _COUNT_RE.search(text)
    if count is None or parsed[0] == naive:
        result.rrule(parsed)
    elif int(count.group(1)) > 1:  # ...and counts towards COUNT when the rule misses it
        result.rrule(parsed.replace(count=int(count.group(1)) - 1))
    return result


def occurrences(
    event: Event, window_start: datetime, window_end: datetime, *, limit: int = DEFAULT_LIMIT
) -> list[Occurrence]:
    """Return the event's occurrences that overlap [window_start, window_end), at most `limit`."""
    tz = zone(event.timezone)
    lo, hi = window_start.astimezone(UTC), window_end.astimezone(UTC)
    found: list[Occurrence] = []
    for occurrence in _all_occurrences(event, tz):
        start_utc = as_utc(occurrence.start, event.timezone)
        if start_utc >= hi or len(found) >= limit:
            break
        if _overlaps(start_utc, as_utc(occurrence.end, event.timezone), lo, hi):
            found.append(occurrence)
    return found


def expand(
    events: Iterable[Event],
    window_start: datetime,
    window_end: datetime,
    *,
    limit: int = DEFAULT_LIMIT,
) -> list[Occurrence]:
    """Return the occurrences of `events` in the window, sorted by start (dates as midnight)."""
    found = [
        occurrence
        for event in events
        for occurrence in occurrences(event, window_start, window_end, limit=limit)
    ]
    return sorted(found, key=_sort_key)


def _sort_key(occurrence: Occurrence) -> tuple[datetime, str]:
    return as_utc(occurrence.start, occurrence.event.timezone), occurrence.event.id


def _overlaps(start: datetime, end: datetime, lo: datetime, hi: datetime) -> bool:
    if end == start:  # an instant (no end given) belongs to the window it starts in
        return lo <= start < hi
    return start < hi and end > lo


def _all_occurrences(event: Event, tz: ZoneInfo) -> Iterator[Occurrence]:
    if not event.rrule:
        yield Occurrence(event, event.start, event.effective_end)
        return
    if event.all_day:
        days = event.effective_end - event.start
        for naive in wall_rule(event.rrule, event.start, tz):
            yield Occurrence(event, naive.date(), naive.date() + days)
        return
    # RFC 5545 §3.8.5.3: a DTEND-given duration is exact, so the end follows in elapsed time.
    elapsed = as_utc(event.effective_end) - as_utc(event.start)
    for naive in wall_rule(event.rrule, event.start, tz):
        start = localize(naive, tz)
        yield Occurrence(event, start, (start.astimezone(UTC) + elapsed).astimezone(tz))


def _wall_until(stamp: str, tz: ZoneInfo) -> str:
    utc = datetime.strptime(stamp, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    return utc.astimezone(tz).strftime("%Y%m%dT%H%M%S")


def _naive(start: When) -> datetime:
    if isinstance(start, datetime):
        return start.replace(tzinfo=None)
    return datetime(start.year, start.month, start.day)
