"""Recurrence expansion: the occurrences of events in a time window.

Rules are expanded on wall-clock time in the event's own zone (dateutil with a naive start,
then `localize` per occurrence), so a weekly 19:00 stays 19:00 across DST changes, as
RFC 5545 §3.3.10 requires for DTSTART with a TZID.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from klynge.model import MAX_RRULE_SPAN, Event, Place, When, as_utc, localize, zone
from klynge.render_guard import each_entry
from klynge.rrules import series
from klynge.series import Change, changed, changed_span, dates, end_of, has_exceptions, key

DEFAULT_LIMIT = 500
SERIES_SPAN = MAX_RRULE_SPAN + timedelta(days=1)  # the model refuses longer series


@dataclass(frozen=True)
class Occurrence:
    """One happening of an event: its start and end (dates for all-day events).

    A date of a series also names its `original` start (RECURRENCE-ID) and the `change` made
    to it, if any; the properties give what to show: the change's, else the series' own.
    """

    event: Event
    start: When
    end: When
    original: When | None = None
    change: Change | None = None

    @property
    def title(self) -> str:
        """Return the title of this date."""
        return (self.change.title if self.change else "") or self.event.title

    @property
    def description(self) -> str:
        """Return the description of this date."""
        return (self.change.description if self.change else "") or self.event.description

    @property
    def place(self) -> Place | None:
        """Return the place of this date."""
        if self.change is not None and self.change.place is not None:
            return self.change.place
        return self.event.place

    @property
    def status(self) -> str:
        """Return the status of this date: a cancelled date is cancelled whatever the series."""
        return "cancelled" if self.change and self.change.cancelled else self.event.status

    @property
    def moved(self) -> bool:
        """Tell whether this date starts or ends at another time than the series gives it."""
        change = self.change
        return change is not None and (change.start is not None or change.end is not None)


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
    if not event.changes:
        return found
    # A changed date may move anywhere, so it is looked at whatever the window's order.
    for occurrence in _changed_occurrences(event):
        start_utc = as_utc(occurrence.start, event.timezone)
        if _overlaps(start_utc, as_utc(occurrence.end, event.timezone), lo, hi):
            found.append(occurrence)
    return sorted(found, key=_sort_key)[:limit]


def expand(
    events: Iterable[Event],
    window_start: datetime,
    window_end: datetime,
    *,
    limit: int = DEFAULT_LIMIT,
    output: str = "the occurrences",
) -> list[Occurrence]:
    """Return the occurrences of `events` in the window, sorted by start (dates as midnight).

    An event whose occurrences cannot be found is left out and logged (klynge.render_guard).
    """
    found = [
        occurrence
        for series_found in each_entry(
            events, lambda e: occurrences(e, window_start, window_end, limit=limit), output
        )
        for occurrence in series_found
    ]
    return sorted(found, key=_sort_key)


def _sort_key(occurrence: Occurrence) -> tuple[datetime, str]:
    return as_utc(occurrence.start, occurrence.event.timezone), occurrence.event.id


def _overlaps(start: datetime, end: datetime, lo: datetime, hi: datetime) -> bool:
    if end == start:  # an instant (no end given) belongs to the window it starts in
        return lo <= start < hi
    return start < hi and end > lo


def _all_occurrences(event: Event, tz: ZoneInfo) -> Iterator[Occurrence]:
    """Yield the unchanged occurrences in order of start (changed ones are left out)."""
    if event.rrule is None:
        yield Occurrence(event, event.start, event.effective_end)
        return
    if has_exceptions(event):
        skipped = changed(event)
        for start in dates(event):
            if key(start) not in skipped:
                yield Occurrence(event, start, end_of(event, start), original=start)
        return
    starts = series(event.rrule, event.start, tz, span=SERIES_SPAN, limit=DEFAULT_LIMIT * 4)
    if event.all_day:
        days = event.effective_end - event.start
        for naive in starts:
            yield Occurrence(event, naive.date(), naive.date() + days, original=naive.date())
        return
    # RFC 5545 §3.8.5.3: a DTEND-given duration is exact, so the end follows in elapsed time.
    elapsed = as_utc(event.effective_end) - as_utc(event.start)
    for naive in starts:
        start = localize(naive, tz)
        yield Occurrence(
            event, start, (start.astimezone(UTC) + elapsed).astimezone(tz), original=start
        )


def _changed_occurrences(event: Event) -> Iterator[Occurrence]:
    for change in event.changes:
        start, end = changed_span(event, change)
        yield Occurrence(event, start, end, original=change.original, change=change)
