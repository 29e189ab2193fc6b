"""The cluster's upcoming events as the node keeps them: rows of an aggregator's /api/events.

The rows are untrusted (fetched, or read back from the node's own file): each is checked
field by field into a `ClusterEvent`, and a row that does not fit is left out, never raised.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from klynge.model import STATUSES, When, clean_text

MAX_EVENTS = 5000  # rows kept per aggregator: a cluster of 15 villages has a few hundred
MAX_TEXT = 200


@dataclass(frozen=True)
class ClusterEvent:
    """One occurrence somewhere in the cluster, as an aggregator listed it."""

    id: str
    title: str
    village: str
    start: When
    end: When
    all_day: bool = False
    category: str = ""
    status: str = "confirmed"
    place: str = ""  # the venue's name
    street: str = ""
    postcode: str = ""
    link: str = ""
    source: str = ""  # the self URL of the feed it came from


def event_of(row: object) -> ClusterEvent | None:
    """Return a row of /api/events as a ClusterEvent, or None if it does not fit."""
    if not isinstance(row, dict):
        return None
    all_day = row.get("all_day") is True
    start, end = _when(row.get("start"), all_day), _when(row.get("end"), all_day)
    status = _text(row.get("status")) or "confirmed"
    if start is None or not _text(row.get("id")) or status not in STATUSES:
        return None
    location = _dict(row.get("location"))
    source = _dict(row.get("source"))
    return ClusterEvent(
        id=_text(row.get("id")),
        title=_text(row.get("title")),
        village=_text(row.get("village")),
        start=start,
        end=end if end is not None and _after(end, start) else start,
        all_day=all_day,
        category=_text(row.get("category")).lower(),
        status=status,
        place=_text(location.get("name")),
        street=_text(location.get("street")),
        postcode=_text(location.get("postcode")),
        link=_text(row.get("link")),
        source=_text(source.get("self_url")),
    )


def events_of(rows: object) -> list[ClusterEvent]:
    """Return the rows that fit, at most MAX_EVENTS."""
    if not isinstance(rows, list):
        return []
    found = (event_of(row) for row in rows[: MAX_EVENTS * 2])
    return [e for e in found if e is not None][:MAX_EVENTS]


def row_of(event: ClusterEvent) -> dict[str, Any]:
    """Return a ClusterEvent as the row it was read from (for the node's file)."""
    return {
        "id": event.id,
        "title": event.title,
        "village": event.village,
        "start": event.start.isoformat(),
        "end": event.end.isoformat(),
        "all_day": event.all_day,
        "category": event.category,
        "status": event.status,
        "location": {"name": event.place, "street": event.street, "postcode": event.postcode},
        "link": event.link,
        "source": {"self_url": event.source},
    }


def _when(value: object, all_day: bool) -> When | None:
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        if all_day:
            return date.fromisoformat(value[:10])
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _after(end: When, start: When) -> bool:
    if isinstance(end, datetime) != isinstance(start, datetime):
        return False
    return end > start


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: object) -> str:
    return clean_text(value)[:MAX_TEXT] if isinstance(value, str) else ""
