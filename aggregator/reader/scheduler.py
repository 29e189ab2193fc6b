"""Scheduling: one APScheduler job per source (with jitter), and ping-triggered fetches.

The only module here that imports apscheduler. A ping (POST /ping) starts a conditional GET
at once. A ping that comes while that source's fetch is waiting or under way is coalesced:
it marks the source dirty, and one more fetch follows right after (the change may have come
after the fetch read the feed). Two bounds keep a chatty node from making us hammer it: the
fetches of one source start at least `limits.ping_interval` seconds apart, and at most
`limits.ping_fetches_per_minute` start in any minute.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from aggregator.config import AggregatorConfig, Source
from aggregator.reader.refresh import Refresher
from klynge.clock import system_now
from klynge.errors import StorageError

log = logging.getLogger("klynge.aggregator")
FIRST_POLL_SPREAD = 30.0  # seconds over which the first polls after start are spread
MINUTE = 60.0


@dataclass
class _PingState:
    starts: deque[float] = field(default_factory=deque)  # loop times of this minute's fetches
    task: asyncio.Task[None] | None = None
    fetching: bool = False
    again: bool = False

    def wait(self, now: float, gap: float, per_minute: int) -> float:
        """Return how long the next fetch must wait to keep both bounds (0: start now)."""
        while self.starts and self.starts[0] <= now - MINUTE:
            self.starts.popleft()
        if not self.starts:
            return 0.0
        after_gap = self.starts[-1] + gap - now
        after_budget = self.starts[0] + MINUTE - now if len(self.starts) >= per_minute else 0.0
        return max(0.0, after_gap, after_budget)


class Scheduler:
    """Runs the periodic polls and the ping-triggered fetches of one aggregator."""

    def __init__(self, refresher: Refresher, *, periodic: bool = True) -> None:
        self.refresher = refresher  # its config holds the sources, which change while serving
        self.periodic = periodic
        self._scheduler: AsyncIOScheduler | None = None
        self._pings: dict[str, _PingState] = {}

    @property
    def config(self) -> AggregatorConfig:
        """Return the configuration as it is now (sources are added and removed while serving)."""
        return self.refresher.config

    def start(self) -> None:
        """Start one polling job per source (when periodic polling is on)."""
        if not self.periodic:
            return
        spread = min(FIRST_POLL_SPREAD, self.config.poll_interval.total_seconds())
        for source in self.config.sources:
            self._add_job(source, random.uniform(0, spread))

    def _add_job(self, source: Source, delay: float) -> None:
        if self._scheduler is None:
            loop = asyncio.get_running_loop()
            self._scheduler = AsyncIOScheduler(event_loop=loop, timezone="UTC")
            self._scheduler.start()
        interval = self.config.poll_interval.total_seconds()
        jitter = self._jitter()
        # APScheduler runs on the system clock, whatever the service clock reads.
        first = system_now() + timedelta(seconds=delay)
        self._scheduler.add_job(
            self._poll,
            IntervalTrigger(seconds=interval, jitter=jitter or None),
            args=[source],
            id=source.url,
            next_run_time=first,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=int(interval),
            replace_existing=True,
        )

    def add(self, source: Source) -> None:
        """Poll a source added while serving (its first fetch is the caller's, at once)."""
        if self.periodic:
            self._add_job(source, self.config.poll_interval.total_seconds())

    def remove(self, url: str) -> None:
        """Stop polling a removed source and drop its pending ping fetch."""
        if self._scheduler is not None and self._scheduler.get_job(url) is not None:
            self._scheduler.remove_job(url)
        state = self._pings.pop(url, None)
        if state is not None and state.task is not None:
            state.task.cancel()

    async def _poll(self, source: Source) -> None:
        if source.url in self.refresher.paused or self.config.source(source.url) is None:
            return
        state = self.refresher.state(source)
        # Only a failing source waits for its back-off; a healthy one polls on every run (a
        # jittered run may come a little before `next_check`, and must not be skipped).
        if state.failures and not state.due(
            self.config.clock.now() + timedelta(seconds=self._jitter() + 1)
        ):
            return
        try:
            await self.refresher.refresh_source(source)
        except asyncio.CancelledError:
            # Shutdown cancels a poll in flight; APScheduler would log it as a traceback. The
            # job ends here, at its own boundary: nothing waits for its result.
            log.debug("stopped polling %s: the aggregator is stopping", source.url)
        except StorageError:
            # The stored states did not load: the app reports that once and stops (a poll that
            # came first must not log it again as a traceback).
            return

    def _jitter(self) -> float:
        return min(self.config.limits.jitter, self.config.poll_interval.total_seconds() / 2)

    def ping(self, url: str) -> bool:
        """Fetch a registered feed soon (rate-limited); return False for an unknown URL."""
        source = self.config.source(url)
        if source is None:
            return False
        if url in self.refresher.paused:
            return True  # registered, but the host paused it: nothing is fetched
        state = self._pings.setdefault(url, _PingState())
        if state.task is not None and not state.task.done():
            state.again = state.again or state.fetching  # a change after the fetch started
            return True
        state.task = asyncio.get_running_loop().create_task(self._ping_fetch(source, state))
        return True

    async def _ping_fetch(self, source: Source, state: _PingState) -> None:
        loop = asyncio.get_running_loop()
        limits = self.config.limits
        while True:
            delay = state.wait(loop.time(), limits.ping_interval, limits.ping_fetches_per_minute)
            if delay:
                await asyncio.sleep(delay)
            state.starts.append(loop.time())
            state.fetching, state.again = True, False
            try:
                await self.refresher.refresh_source(source)
            finally:
                state.fetching = False
            if not state.again:
                return

    async def shutdown(self) -> None:
        """Stop polling and cancel pending ping fetches."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        tasks = [p.task for p in self._pings.values() if p.task and not p.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def add_periodic(
        self, job_id: str, run: Callable[[], Awaitable[object]], seconds: float
    ) -> None:
        """Run `run` every `seconds` (when periodic); the job itself decides whether to act."""
        if not self.periodic:
            return
        if self._scheduler is None:
            self._scheduler = AsyncIOScheduler(
                event_loop=asyncio.get_running_loop(), timezone="UTC"
            )
            self._scheduler.start()
        self._scheduler.add_job(
            run,
            IntervalTrigger(seconds=seconds),
            id=job_id,
            next_run_time=system_now() + timedelta(seconds=min(seconds, FIRST_POLL_SPREAD)),
            coalesce=True,
            max_instances=1,
            replace_existing=True,
        )

    def job_ids(self) -> list[str]:
        """Return the ids of the scheduled jobs (the sources' URLs and any periodic job)."""
        return [job.id for job in self._scheduler.get_jobs()] if self._scheduler else []
