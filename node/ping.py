"""Telling the aggregators: a WebSub-style publish ping after every change.

The node's only outbound HTTP so far, made with `klynge.http` (one deadline per attempt, no
redirects followed, no cookies kept; failures worded from its messages). A change only sets a
flag per aggregator; one background task per aggregator POSTs
`hub.mode=publish&hub.url=<feed url>` to its /ping at once, retrying with exponential backoff.
Changes while a ping is in flight are coalesced, not delayed: they set the flag again, and one
more ping follows right after (edits that come while one ping is in flight cost one ping more,
and the first ping never waits). The tasks are separate so that an aggregator that hangs or
is down never delays the others. Failures are logged and kept in the store for /admin/status.
A lost ping is not fatal: aggregators also poll the feed with conditional GET.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from klynge import __version__
from klynge.http import Client, HttpError, Limits
from node.config import NodeConfig
from node.store import Store

log = logging.getLogger("node.ping")
LIMITS = Limits(connect_timeout=5, total_timeout=10)  # per attempt; the backoff waits between
MAX_BACKOFF = 300.0


@dataclass
class PingStatus:
    """The latest outcome of pinging one aggregator."""

    url: str
    last_ok: str = ""
    last_error: str = ""
    last_error_at: str = ""
    failures: int = 0


class Pinger:
    """Coalesces changes into pings and delivers them in the background."""

    def __init__(self, config: NodeConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self.status = {url: PingStatus(url) for url in config.ping_urls}
        self.sent = 0
        self._pending: set[str] = set()  # aggregators with a change not yet pinged (the flag)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        user_agent = f"Klynge-node/{__version__} (+{config.public_url})"
        self._http = Client(LIMITS, user_agent=user_agent)
        store.listeners.append(self.notify)
        self.after_ping: list[Callable[[], None]] = []  # e.g. refresh the cluster copy

    def notify(self) -> None:
        """Note a change; its ping goes out at once in the background, or after one in flight."""
        for url in self.status:
            self._pending.add(url)
            task = self._tasks.get(url)
            if task is None or task.done():
                self._tasks[url] = asyncio.get_running_loop().create_task(self._run(url))

    async def _run(self, url: str) -> None:
        while url in self._pending:
            self._pending.discard(url)  # a change from now on brings one more ping
            await self._deliver(url)

    def _busy(self) -> list[asyncio.Task[None]]:
        return [task for task in self._tasks.values() if not task.done()]

    async def idle(self) -> None:
        """Wait until no ping is pending or in flight (tests, shutdown)."""
        while busy := self._busy():
            await asyncio.shield(asyncio.gather(*busy))

    async def close(self) -> None:
        """Stop pinging and close the HTTP session."""
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        await self._http.close()

    async def _deliver(self, url: str) -> None:
        delay = self.config.ping_backoff
        error = ""
        for attempt in range(1, self.config.ping_retries + 1):
            error, retry = await self._post(url)
            if not error:
                await self._succeeded(url)
                return
            log.debug("ping to %s failed (attempt %d): %s", url, attempt, error)
            if not retry or attempt == self.config.ping_retries:
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)
        await self._failed(url, error, attempt)

    async def _post(self, url: str) -> tuple[str, bool]:
        """POST one ping; return (error or "", whether retrying may help)."""
        form = {"hub.mode": "publish", "hub.url": self.config.feed_url}
        try:
            await self._http.post_form(url, form)
        except HttpError as e:
            return e.problem.english(), _worth_retrying(e.server_status)
        return "", False

    async def _succeeded(self, url: str) -> None:
        status = self.status[url]
        status.last_ok = self.config.clock.now().isoformat()
        self.sent += 1
        for listener in self.after_ping:
            listener()
        if status.failures:
            log.info("ping to %s works again", url)
            status.failures = 0
            await self._record(url, ok=True, error="", attempts=1)

    async def _failed(self, url: str, error: str, attempts: int) -> None:
        # One line per failed ping, not per attempt (the attempts are --verbose's).
        log.warning("ping to %s failed after %d attempts: %s", url, attempts, error)
        status = self.status[url]
        status.failures += 1
        status.last_error = error
        status.last_error_at = self.config.clock.now().isoformat()
        await self._record(url, ok=False, error=error, attempts=attempts)

    async def _record(self, url: str, *, ok: bool, error: str, attempts: int) -> None:
        entry: dict[str, Any] = {
            "at": self.config.clock.now().isoformat(),
            "url": url,
            "ok": ok,
            "error": error,
            "attempts": attempts,
        }
        try:
            await self.store.record_ping(entry)
        except Exception:  # the log must never break pinging
            log.exception("could not record the ping outcome")


def _worth_retrying(status: int | None) -> bool:
    """Say whether a failed ping may succeed later: network errors, 5xx and 429 may."""
    # 4xx other than 429 will not change by retrying (e.g. 404: feed unknown there).
    return status is None or status >= 500 or status == 429
