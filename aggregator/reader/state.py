"""Per-source polling state: validators, health, problems as messages, back-off, content."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from aggregator.reader.merge import Content
from klynge.messages import Message

Health = Literal["new", "ok", "failing", "stale"]


@dataclass
class SourceState:
    """What the aggregator knows about one source; mutated only on the event loop."""

    url: str
    etag: str = ""
    last_modified: str = ""
    body_hash: str = ""
    last_success: datetime | None = None
    last_attempt: datetime | None = None
    last_error: Message | None = None
    failures: int = 0
    next_check: datetime | None = None
    problems: tuple[Message, ...] = ()
    limited: Message | None = None  # why only part of the last body was read (the entry limit)
    content: Content = field(default_factory=Content)

    def due(self, now: datetime) -> bool:
        """Tell whether a scheduled poll should fetch now (back-off respected)."""
        return self.next_check is None or self.next_check <= now

    def health(self, now: datetime, stale_after: timedelta) -> Health:
        """Return `new`, `ok`, `failing` (recently good) or `stale` (no success in a while)."""
        if self.last_success is None and not self.failures:
            return "new"
        if not self.failures:
            return "ok"
        if self.last_success is None or now - self.last_success > stale_after:
            return "stale"
        return "failing"

    def scalars(self) -> dict[str, Any]:
        """Return the persisted scalar fields as JSON-ready values."""
        return {
            "url": self.url,
            "etag": self.etag,
            "last_modified": self.last_modified,
            "body_hash": self.body_hash,
            "last_success": _iso(self.last_success),
            "last_attempt": _iso(self.last_attempt),
            "last_error": _json(self.last_error),
            "failures": self.failures,
            "next_check": _iso(self.next_check),
            "problems": [p.to_json() for p in self.problems],
            "limited": _json(self.limited),
        }


def _json(message: Message | None) -> dict[str, Any] | None:
    return message.to_json() if message is not None else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def backoff(failures: int, interval: timedelta, ceiling: timedelta) -> timedelta:
    """Return the wait before the next poll after `failures` consecutive failures."""
    if failures <= 0:
        return interval
    # Doubling from the poll interval: 15, 30, 60 … minutes, never more than the ceiling.
    wait: timedelta = interval * (2 ** min(failures - 1, 16))
    return min(wait, ceiling)
