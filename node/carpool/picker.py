"""The notice form's event picker: tie any notice to one of the village's coming events.

Only this node's events are offered: the node does not know the cluster's events yet (issue
13 brings them); a notice tied through the API to another village's event keeps its tie.
"""

from __future__ import annotations

from datetime import datetime

from klynge.i18n import date_short
from klynge.model import Event, zone
from node.store import Store

PICKER_MAX = 100  # coming events listed; a village has a few dozen


def event_choices(
    store: Store, association: str, current: str, now: datetime, tz: str, lang: str
) -> list[tuple[str, str]]:
    """Return (event id, label) for the coming events, our association's first."""
    coming = [e for e in store.events() if e.series_end() > now]
    coming.sort(key=lambda e: (e.organizer != association, e.series_end()))
    choices = [(e.id, _label(e, tz, lang)) for e in coming[:PICKER_MAX]]
    if current and all(value != current for value, _ in choices):
        choices.append((current, current))  # tied elsewhere (the API): kept as it is
    return choices


def _label(event: Event, tz: str, lang: str) -> str:
    start = event.start
    day = start.astimezone(zone(tz)).date() if isinstance(start, datetime) else start
    return f"{date_short(day, lang)} – {event.title} ({event.organizer})"
