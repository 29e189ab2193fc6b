"""Clashes across villages: pairs of occurrences of two villages that meet in time.

Timed occurrences meet when they overlap; an all-day occurrence meets anything on its local
days. Cancelled dates never clash. Occurrences are grouped by local day first, so the work is
bounded by the busiest day, not the square of the window (MAX_PAIRS caps the answer).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import combinations

from aggregator.publish.documents import village_of
from klynge.model import as_utc, zone
from klynge.recurrence import Occurrence

MAX_PAIRS = 2000
EVENING_HOUR = 17  # a weekday event starting from 17:00 is an evening event


@dataclass(frozen=True)
class Pair:
    """Two occurrences of two villages that meet."""

    first: Occurrence
    second: Occurrence
    kind: str  # "overlap" (timed) or "same_day" (an all-day one involved)

    @property
    def same_category(self) -> bool:
        """Tell whether both are of the same category."""
        category = self.first.event.category
        return bool(category) and category == self.second.event.category


def village(occurrence: Occurrence) -> str:
    """Return the name of the village an occurrence comes from."""
    return village_of(occurrence.event).title


def days_of(occurrence: Occurrence, tz: str) -> list[date]:
    """Return the local days an occurrence touches (all-day ends are exclusive)."""
    start, end = occurrence.start, occurrence.end
    if not isinstance(start, datetime):
        last = end - timedelta(days=1) if isinstance(end, date) and end > start else start
    else:
        local = zone(tz)
        first_local = start.astimezone(local)
        end_local = end.astimezone(local) if isinstance(end, datetime) else first_local
        last_moment = (
            end_local - timedelta(microseconds=1) if end_local > first_local else end_local
        )
        start, last = first_local.date(), last_moment.date()
    span = min((last - start).days, 31)  # a long festival counts on its first month of days
    return [start + timedelta(days=n) for n in range(span + 1)]


def pairs(found: list[Occurrence], tz: str) -> list[Pair]:
    """Return the pairs of occurrences of different villages that meet, at most MAX_PAIRS."""
    by_day: dict[date, list[Occurrence]] = defaultdict(list)
    for occurrence in found:
        if occurrence.status != "cancelled":
            for day in days_of(occurrence, tz):
                by_day[day].append(occurrence)
    out: dict[tuple[str, str, str, str], Pair] = {}
    for day in sorted(by_day):
        for a, b in combinations(by_day[day], 2):
            pair = _pair(a, b)
            if pair is not None:
                out.setdefault(_key(pair), pair)
            if len(out) >= MAX_PAIRS:
                return list(out.values())
    return list(out.values())


def _pair(a: Occurrence, b: Occurrence) -> Pair | None:
    if village(a) == village(b):
        return None
    if a.event.all_day or b.event.all_day:
        return Pair(a, b, "same_day")
    a_start, a_end = _span(a)
    b_start, b_end = _span(b)
    return Pair(a, b, "overlap") if a_start < b_end and b_start < a_end else None


def _span(occurrence: Occurrence) -> tuple[datetime, datetime]:
    start, end = as_utc(occurrence.start), as_utc(occurrence.end)
    return start, end if end > start else start + timedelta(hours=2)


def _key(pair: Pair) -> tuple[str, str, str, str]:
    ends = sorted(
        [
            (pair.first.event.id, pair.first.start.isoformat()),
            (pair.second.event.id, pair.second.start.isoformat()),
        ]
    )
    return ends[0][0], ends[0][1], ends[1][0], ends[1][1]


def is_evening(occurrence: Occurrence, tz: str) -> bool:
    """Tell whether a timed occurrence starts in the evening (local time)."""
    start = occurrence.start
    return isinstance(start, datetime) and start.astimezone(zone(tz)).hour >= EVENING_HOUR
