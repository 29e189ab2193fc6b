"""Housekeeping on a schedule: expired notices, old tombstones and sessions leave the store.

The only APScheduler importer of the node. Events that ended long ago stay in the store; the
feed and calendar builders leave them out by their window rules.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from klynge.clock import system_now
from node.auth import SESSION_MAX_AGE
from node.carpool import posts as carpool_posts
from node.store import Store

log = logging.getLogger("node.housekeeping")


async def tidy(store: Store, now: datetime | None = None) -> int:
    """Drop expired notices and tombstones older than 30 days; return how many went."""
    now = now or store.clock.now()
    # First: purge() drops expired notices without a tombstone; carpools need theirs.
    expired = await carpool_posts.expire(store, now)
    if expired:
        log.info("housekeeping removed %d carpool posts of ended events", expired)
    removed = await store.purge(now)
    if removed:
        log.info("housekeeping removed %d expired notices and old tombstones", removed)
    ended = await store.purge_sessions(now - timedelta(seconds=SESSION_MAX_AGE))
    if ended:
        log.info("housekeeping removed %d expired sessions", ended)
    return removed


def start_scheduler(store: Store, minutes: int) -> AsyncIOScheduler:
    """Start the housekeeping job every `minutes` (and once soon after start)."""
    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_job(
        tidy,
        "interval",
        minutes=minutes,
        args=[store],
        next_run_time=system_now(),  # APScheduler runs on the system clock
        id="tidy",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=None,
    )
    scheduler.start()
    return scheduler
