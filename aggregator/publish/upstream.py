"""Telling the aggregators that read this one: a WebSub-style publish ping per feed change.

Aggregators stack (design.md): a region polls its clusters' merged feeds. Without a ping it
hears of a village's change only at its next poll (15 minutes); with one it fetches at once,
as a cluster does when a village pings it. After the merged view changed, the merged feed is
built (it would be on the next request anyway) and, if its ETag differs from the one last
announced, each configured `upstream` /ping gets `hub.mode=publish&hub.url=<our feed>`.
Changes during a build or a ping are coalesced into one more round. The request itself is the
fetcher's (the aggregator's only outbound HTTP); a lost ping is not fatal: the region polls.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aggregator.config import AggregatorConfig
from aggregator.publish.outputs import Cached
from klynge.errors import KlyngeError

log = logging.getLogger("klynge.aggregator")
ATTEMPTS = 3  # per ping; a region that restarts is back within seconds
RETRY_DELAY = 1.0  # seconds before the second attempt, doubled for the third

Send = Callable[[str, str], Awaitable[None]]  # (ping URL, our feed URL); raises KlyngeError


class Upstream:
    """Pings the upstream aggregators when the merged feed changed, one round at a time."""

    def __init__(
        self, config: AggregatorConfig, feed: Callable[[], Awaitable[Cached]], send: Send
    ) -> None:
        self.config = config
        self.sent = 0  # pings delivered since start, for tests and the benchmark
        self.failures: dict[str, str] = {}  # ping URL -> the last failure, in English
        self._feed = feed
        self._send = send
        self._announced = ""  # the ETag of the feed last announced
        self._dirty = False
        self._task: asyncio.Task[None] | None = None

    def notify(self) -> None:
        """Note that the merged view changed; a round of pings follows, never inline."""
        if not self.config.upstream:
            return
        self._dirty = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def idle(self) -> None:
        """Wait until no round is pending or under way (tests, benchmarks)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def close(self) -> None:
        """Stop pinging (a round under way is cancelled)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while self._dirty:
            self._dirty = False
            try:
                feed = await self._feed()
            except Exception:  # a failed build is the next request's error too; do not stop
                log.exception("could not build the merged feed to ping upstream")
                continue
            if feed.etag == self._announced:
                continue  # the change did not reach the feed (e.g. a notice's expiry)
            self._announced = feed.etag
            await asyncio.gather(*(self._deliver(url) for url in self.config.upstream_pings))

    async def _deliver(self, url: str) -> None:
        delay = RETRY_DELAY
        for attempt in range(1, ATTEMPTS + 1):
            try:
                await self._send(url, self.config.feed_url)
            except KlyngeError as e:
                error = e.message
                if attempt == ATTEMPTS:
                    self._failed(url, error)
                    return
                await asyncio.sleep(delay)
                delay *= 2
            else:
                self.sent += 1
                if self.failures.pop(url, None) is not None:
                    log.info("ping to %s works again", url)
                return

    def _failed(self, url: str, error: str) -> None:
        if self.failures.get(url) != error:  # one line per new failure, not per change
            log.warning("ping to upstream %s failed: %s", url, error)
        self.failures[url] = error
