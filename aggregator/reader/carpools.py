"""Carpool posts leave the aggregator when their event has ended, with their contact details.

A village deletes a carpool post when its event is over and its feed carries a tombstone; but a
village that is down sends nothing, so the aggregator drops ended posts itself too (issue 14,
docs/aggregator.md): on every refresh pass, whether or not their source answers.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from aggregator.reader.merge import Content, is_upcoming
from klynge.model import Event, Item, Notice


def ended_carpool(item: Item, content: Content, now: datetime) -> bool:
    """Tell whether an entry is a carpool post whose event has ended (or that has expired)."""
    if not isinstance(item, Notice) or item.carpool is None:
        return False
    event = content.entries.get(item.related)
    return not is_upcoming(item, now) or (isinstance(event, Event) and event.series_end() <= now)


def without_ended_carpools(content: Content, now: datetime) -> Content | None:
    """Return the content without its ended carpool posts, or None when it has none."""
    gone = {i for i, item in content.entries.items() if ended_carpool(item, content, now)}
    if not gone:
        return None
    return replace(
        content,
        entries={i: item for i, item in content.entries.items() if i not in gone},
        first_seen={i: t for i, t in content.first_seen.items() if i not in gone},
        held=content.held - gone,
    )


def carpool_contacts(record: object) -> set[str]:
    """Return the ids of the entries of a stored source record that carry contact details."""
    if not isinstance(record, dict):
        return set()
    found = set()
    for entry in record.get("entries") or ():
        carpool = entry.get("carpool") if isinstance(entry, dict) else None
        if isinstance(carpool, dict) and any(carpool.get(k) for k in ("contact", "phone", "email")):
            found.add(str(entry.get("id")))
    return found
