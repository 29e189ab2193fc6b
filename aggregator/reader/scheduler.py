"""Scheduling: one APScheduler job per source (with jitter), and ping-triggered fetches.

The only module here that imports apscheduler. A ping (POST /ping) starts a conditional GET
at once. A ping that comes while that source's fetch is under way is coalesced: it marks the
source dirty, and exactly one more fetch follows right after (the change may have come after
the fetch read the feed); a ping while a fetch waits to start needs nothing more. Coalescing,
not a delay, keeps a chatty node from making us hammer it, with one bound: at most
`limits.ping_fetches_per_minute` ping-triggered fetches of one source start in any minute of
the service's clock (`config.clock`). bench/latency_bench.py measures what a burst costs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from aggregator.config import AggregatorConfig, Source
from aggregator.reader.refresh import Refresher
from klynge.clock import system_now
from klynge.errors import StorageError

log = logging.getLogger("klynge.aggregator")
FIRST_POLL_SPREAD = 30.0  # seconds over which the first polls after start are spread
MINUTE = timedelta(minutes=1)


@dataclass
class _PingState:
    starts: deque[datetime] = field(default_factory=deque)  # this minute's fetch starts
    task: asyncio.Task[None] | None = None
    fetching: bool = False
    again: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)  # a ping while waiting

    def wait(self, now: datetime, per_minute: int) -> float:
        """Return how long the next fetch must wait to keep the minute's bound (0: start now)."""
        while self.starts and self.starts[0] <= now - MINUTE:
            self.starts.popleft()
        while self.starts and self.starts[-1] > now:  # the clock was set back: forget them
            self.starts.pop()
        if len(self.starts) < per_minute:
            return 0.0
        return max(0.0, (self.starts[0] + MINUTE - now).total_seconds())


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
        """Fetch a registered feed at once (bounded per minute); return False for an unknown URL."""
        source = self.config.source(url)
        if source is None:
            return False
        if url in self.refresher.paused:
            return True  # registered, but the host paused it: nothing is fetched
        state = self._pings.setdefault(url, _PingState())
        if state.task is not None and not state.task.done():
            state.again = state.again or state.fetching  # a change after the fetch started
            state.wake.set()  # a fetch waiting for the minute's bound looks at the clock again
            return True
        state.task = asyncio.get_running_loop().create_task(self._ping_fetch(source, state))
        return True

    async def _ping_fetch(self, source: Source, state: _PingState) -> None:
        while True:
            await self._within_budget(state)
            state.starts.append(self.config.clock.now())
            state.fetching, state.again = True, False
            try:
                await self.refresher.refresh_source(source)
            finally:
                state.fetching = False
            if not state.again:
                return

    async def _within_budget(self, state: _PingState) -> None:
        """Wait until the minute's bound lets one more fetch start, on the service's clock."""
        while delay := state.wait(
            self.config.clock.now(), self.config.limits.ping_fetches_per_minute
        ):
            state.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.wake.wait(), delay)

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
