"""Per-source polling state: validators, health, problems as messages, back-off, content.

What can happen to a source is a method of `SourceState` (as in Miniflux's model.Feed): it
succeeded, was held back, was not modified, or failed. Each sets the health and the next check
and returns whether the change is worth writing to the store; a repeat of the same failure,
or a 304 with the validators we sent, is not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from aggregator.reader.merge import Content
from klynge.messages import Message

Health = Literal["new", "ok", "failing", "stale"]


@dataclass(frozen=True)
class Polling:
    """How often a source is polled: every `interval`, backing off to at most `ceiling`."""

    interval: timedelta
    ceiling: timedelta

    def wait(self, failures: int) -> timedelta:
        """Return the wait before the next check after `failures` failures in a row."""
        return backoff(failures, self.interval, self.ceiling)


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

    # --- what happens to a source ------------------------------------------------------------

    def succeeded(
        self,
        now: datetime,
        polling: Polling,
        *,
        content: Content,
        problems: tuple[Message, ...] = (),
        limited: Message | None = None,
        etag: str = "",
        last_modified: str = "",
        body_hash: str = "",
    ) -> bool:
        """Take a good fetch's content, problems and validators; tell whether to write them."""
        news = self._validators(etag, last_modified, body_hash)
        return self._took(now, polling, content, problems, limited) or news

    def held_back(
        self,
        now: datetime,
        polling: Polling,
        *,
        content: Content,
        problems: tuple[Message, ...] = (),
        limited: Message | None = None,
    ) -> bool:
        """Take a good fetch whose removal of entries is held back, forgetting the validators.

        `content` keeps the entries the fetch would remove (`Content.held`); the next fetch must
        then be a full GET, so that it can confirm (or undo) the removal.
        """
        news = self._validators("", "", "")
        return self._took(now, polling, content, problems, limited) or news

    def not_modified(
        self, now: datetime, polling: Polling, *, etag: str = "", last_modified: str = ""
    ) -> bool:
        """Take a 304 or an identical body, keeping the validators the response carries.

        RFC 9110 §15.4.5: a 304 carries the validators the stored response is to be updated
        with. While a removal is held back no validators are kept: the next fetch confirms it.
        """
        news = not self.content.held and self._validators(etag, last_modified, self.body_hash)
        return self._good(now, polling) or news

    def failed(self, error: Message, now: datetime, polling: Polling) -> bool:
        """Count a failure and back off, keeping the last good entries; tell whether it is news.

        A failure is a fetch that failed, a body refused as not a usable feed, or a body whose
        parsing overran its time or memory limit. A body cut at the entry limit is a success
        (`limited`); a mass removal is `held_back`.
        """
        news = self.with_error_message(error)
        self.schedule_next_check(now, polling)
        return news

    def with_error_message(self, message: Message) -> bool:
        """Count one more failure in a row; tell whether the source was healthy or said else."""
        news = self.failures == 0 or message != self.last_error
        self.failures += 1
        self.last_error = message
        return news

    def reset_error_counter(self) -> bool:
        """Forget the failures in a row; tell whether there were any."""
        recovered = bool(self.failures or self.last_error)
        self.failures, self.last_error = 0, None
        return recovered

    def schedule_next_check(self, now: datetime, polling: Polling) -> None:
        """Set the next check one poll interval on, or later after failures (`backoff`)."""
        self.next_check = now + polling.wait(self.failures)

    def _good(self, now: datetime, polling: Polling) -> bool:
        self.last_success = now
        recovered = self.reset_error_counter()
        self.schedule_next_check(now, polling)
        return recovered

    def _took(
        self,
        now: datetime,
        polling: Polling,
        content: Content,
        problems: tuple[Message, ...],
        limited: Message | None,
    ) -> bool:
        # Identity, not equality: comparing thousands of entries would stall the event loop,
        # and `refresh.settle` hands back the old Content when a fetch changed nothing.
        news = content is not self.content or problems != self.problems or limited != self.limited
        self.content, self.problems, self.limited = content, problems, limited
        return self._good(now, polling) or news

    def _validators(self, etag: str, last_modified: str, body_hash: str) -> bool:
        news = (etag, last_modified, body_hash) != (self.etag, self.last_modified, self.body_hash)
        self.etag, self.last_modified, self.body_hash = etag, last_modified, body_hash
        return news

    # --- reading it ------------------------------------------------------------------------

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
