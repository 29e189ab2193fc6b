"""The notice form's event picker: tie any notice to one of the village's coming events.

The village's own events come first (our association's at the top), then the other villages'
coming events from the node's cached copy of the cluster (node/cluster), so that a carpool
notice can be tied to an away match elsewhere. A tie made through the API to an event in
neither list is kept as it is.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from klynge.i18n import date_short
from klynge.model import Event, When, zone
from node.cluster.events import ClusterEvent
from node.store import Store

PICKER_MAX = 100  # coming events listed; a village has a few dozen


def event_choices(
    store: Store,
    association: str,
    current: str,
    now: datetime,
    tz: str,
    lang: str,
    cluster: Iterable[ClusterEvent] = (),
) -> list[tuple[str, str]]:
    """Return (event id, label) for the coming events: ours, the village's, then the cluster's."""
    coming = [e for e in store.events() if e.series_end() > now]
    coming.sort(key=lambda e: (e.organizer != association, e.series_end()))
    choices = [(e.id, _label(e, tz, lang)) for e in coming[:PICKER_MAX]]
    choices += _cluster_choices(cluster, {value for value, _ in choices}, now, tz, lang)
    if current and all(value != current for value, _ in choices):
        choices.append((current, current))  # tied elsewhere (the API): kept as it is
    return choices


def _cluster_choices(
    cluster: Iterable[ClusterEvent], taken: set[str], now: datetime, tz: str, lang: str
) -> list[tuple[str, str]]:
    # One choice per event (a series is listed once, at its next date), soonest first.
    first: dict[str, ClusterEvent] = {}
    for event in cluster:
        if event.id in taken or event.status == "cancelled" or not _after(event.end, now):
            continue
        known = first.get(event.id)
        if known is None or _sort_key(event.start) < _sort_key(known.start):
            first[event.id] = event
    soonest = sorted(first.values(), key=lambda e: _sort_key(e.start))[:PICKER_MAX]
    return [(e.id, f"{_day(e.start, tz, lang)} – {e.title} ({e.village})") for e in soonest]


def _label(event: Event, tz: str, lang: str) -> str:
    return f"{_day(event.start, tz, lang)} – {event.title} ({event.organizer})"


def _day(start: When, tz: str, lang: str) -> str:
    day = start.astimezone(zone(tz)).date() if isinstance(start, datetime) else start
    return date_short(day, lang)


def _sort_key(when: When) -> str:
    return when.isoformat()[:10]


def _after(end: When, now: datetime) -> bool:
    return end > now if isinstance(end, datetime) else end > now.date()
