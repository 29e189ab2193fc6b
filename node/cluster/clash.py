"""Clash rules: which of the cluster's events a new or changed event collides with.

Each date of the event (a series on its own dates, exceptions included, through
klynge.recurrence) is compared with the cached cluster copy. Timed events clash when they
overlap, widened by the travel margin; an all-day event clashes with anything on its days;
the same venue is a hard clash; the same category counts more. Cancelled events and the
event itself never clash. A clash is a warning, never a reason to refuse (docs/node.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from klynge.model import Event, Place, When, as_utc, zone
from klynge.recurrence import Occurrence, occurrences
from node.cluster.events import ClusterEvent
from node.config import ClashRules

OVERLAP, SAME_DAY, SAME_VENUE = "overlap", "same_day", "same_venue"
HORIZON = timedelta(days=550)  # the aggregator serves 18 months ahead
MAX_DATES = 400  # dates of a series compared (a weekly series over five years has 261)
MAX_SPAN_DAYS = 31  # a longer event is looked at on its first month of days


@dataclass(frozen=True)
class Clash:
    """One of the cluster's events that collides with a date of ours."""

    other: ClusterEvent
    date: When  # the start of our date that it collides with
    kind: str  # OVERLAP, SAME_DAY or SAME_VENUE
    same_category: bool
    score: int

    @property
    def hard(self) -> bool:
        """Tell whether it is a hard conflict (the same venue)."""
        return self.kind == SAME_VENUE


def clashes(
    event: Event, cluster: list[ClusterEvent], rules: ClashRules, now: datetime
) -> list[Clash]:
    """Return the cluster's events that clash with `event`'s dates, the strongest first."""
    if event.status == "cancelled":
        return []
    dates = occurrences(event, now - timedelta(days=1), now + HORIZON, limit=MAX_DATES)
    by_day = _by_day([c for c in cluster if c.status != "cancelled" and c.id != event.id], event)
    found: dict[tuple[str, str, str], Clash] = {}
    for ours in dates:
        if ours.status == "cancelled":
            continue
        for other in _near(by_day, ours):
            clash = _clash(ours, other, rules)
            if clash is not None:
                found.setdefault((other.id, other.start.isoformat(), str(ours.start)), clash)
    ranked = sorted(
        found.values(), key=lambda c: (-c.score, as_utc(c.other.start, event.timezone), c.other.id)
    )
    return ranked[: rules.max_shown]


def _by_day(others: list[ClusterEvent], event: Event) -> dict[date, list[ClusterEvent]]:
    """Index the cluster's events by the local days they touch (the work stays per day)."""
    index: dict[date, list[ClusterEvent]] = {}
    for other in others:
        first, last = _days(other.start, other.end, event.timezone)
        for n in range(min((last - first).days, MAX_SPAN_DAYS) + 1):
            index.setdefault(first + timedelta(days=n), []).append(other)
    return index


def _near(index: dict[date, list[ClusterEvent]], ours: Occurrence) -> list[ClusterEvent]:
    """Return the events on our days and the day on each side (the travel margin)."""
    first, last = _days(ours.start, ours.end, ours.event.timezone)
    span = min((last - first).days, MAX_SPAN_DAYS) + 2
    seen: dict[int, ClusterEvent] = {}
    for n in range(-1, span + 1):
        for other in index.get(first + timedelta(days=n), ()):
            seen.setdefault(id(other), other)
    return list(seen.values())


def _clash(ours: Occurrence, other: ClusterEvent, rules: ClashRules) -> Clash | None:
    tz = ours.event.timezone
    if ours.event.all_day or other.all_day:
        if not _days_meet(ours.start, ours.end, other, tz):
            return None
        kind = SAME_DAY
    else:
        if not _times_meet(ours, other, rules):
            return None
        kind = OVERLAP
    if _same_venue(ours.place, other):
        kind = SAME_VENUE
    same_category = bool(ours.event.category) and ours.event.category == other.category
    score = 10 + (rules.category_weight * 10 if same_category else 0)
    score += 1000 if kind == SAME_VENUE else 0
    score += 5 if kind == OVERLAP else 0  # a meeting in time beats sharing a day
    return Clash(other, ours.start, kind, same_category, score)


def _times_meet(ours: Occurrence, other: ClusterEvent, rules: ClashRules) -> bool:
    margin = timedelta(minutes=rules.travel_minutes)
    start, end = _span(ours.start, ours.end, rules)
    other_start, other_end = _span(other.start, other.end, rules)
    return start - margin < other_end and other_start - margin < end


def _span(start: When, end: When, rules: ClashRules) -> tuple[datetime, datetime]:
    first = as_utc(start)
    last = as_utc(end)
    if last <= first:  # no end given: assume a usual length
        last = first + timedelta(hours=rules.assumed_hours)
    return first, last


def _days_meet(start: When, end: When, other: ClusterEvent, tz: str) -> bool:
    """Tell whether two spans share a local day (all-day ends are exclusive, RFC 5545)."""
    first, last = _days(start, end, tz)
    other_first, other_last = _days(other.start, other.end, tz)
    return first <= other_last and other_first <= last


def _days(start: When, end: When, tz: str) -> tuple[date, date]:
    """Return the first and last local day a span touches."""
    if not isinstance(start, datetime):
        last = end if isinstance(end, date) and not isinstance(end, datetime) else start
        return start, max(start, last - timedelta(days=1))
    local = zone(tz)
    first = start.astimezone(local).date()
    end_local = end.astimezone(local) if isinstance(end, datetime) else start.astimezone(local)
    # An evening that ends at midnight does not touch the next day.
    last = (end_local - timedelta(microseconds=1)).date() if end_local > start else first
    return first, max(first, last)


def _same_venue(place: Place | None, other: ClusterEvent) -> bool:
    if place is None:
        return False
    if place.postcode and other.postcode and place.postcode != other.postcode:
        return False  # two villages' "Forsamlingshuset" are two halls
    if place.name and other.place and _norm(place.name) == _norm(other.place):
        return True
    return bool(place.street and other.street) and (
        _norm(place.street),
        place.postcode,
    ) == (_norm(other.street), other.postcode)


def _norm(text: str) -> str:
    return " ".join(text.casefold().split())
