"""Window rules and housekeeping with a fake clock: what the feed and calendar hold, what the
hourly job removes, and that cached documents are rebuilt when an entry's time runs out."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import icalendar
from clock_support import hostile_dates, utc_now
from node_support import NodeDir, make_node

from klynge.model import Event, Notice
from node.housekeeping import start_scheduler, tidy
from node.publish import Publisher
from node.store import Store


def event(uid: str, ended_days_ago: float, now: datetime) -> Event:
    end = now - timedelta(days=ended_days_ago)
    return Event(id=f"urn:uuid:{uid}", title=uid, updated=now - timedelta(days=90),
                 start=end - timedelta(hours=2), end=end, organizer="IF")  # fmt: skip


def notice(uid: str, expires: datetime | None, now: datetime) -> Notice:
    return Notice(id=f"urn:uuid:{uid}", title=uid, updated=now - timedelta(days=1),
                  expires=expires)  # fmt: skip


async def seeded(node_dir: NodeDir, now: datetime) -> Store:
    store = Store.open(node_dir.config().db_path)
    await store.save_many([
        event("e-old", 40, now), event("e-recent", 10, now), event("e-coming", -3, now),
        event("e-cal", 60, now), notice("n-expired", now - timedelta(hours=1), now),
        notice("n-soon", now + timedelta(hours=1), now), notice("n-forever", None, now),
    ])  # fmt: skip
    for uid, days in (("t-old", 40), ("t-new", 5)):
        gone = notice(uid, None, now)
        await store.save_item(gone)
        await store.delete_item(gone, when=now - timedelta(days=days))
    return store


@hostile_dates
async def test_feed_and_calendar_windows(tmp_path: Path, now: datetime) -> None:
    NOW = now.astimezone(UTC)
    store = await seeded(make_node(tmp_path), NOW)
    clock = [NOW]
    publisher = Publisher(make_node(tmp_path / "b").config(), store, clock=lambda: clock[0])
    feed = await publisher.feed()
    parsed = feedparser.parse(feed.body)
    ids = {e.id.removeprefix("urn:uuid:") for e in parsed.entries}
    assert ids == {"e-recent", "e-coming", "n-soon", "n-forever"}
    assert b'ref="urn:uuid:t-new"' in feed.body and b"t-old" not in feed.body
    cal = icalendar.Calendar.from_ical((await publisher.calendar()).body)
    uids = {str(v["uid"]).removeprefix("urn:uuid:") for v in cal.walk("VEVENT")}
    assert uids == {"e-old", "e-recent", "e-coming", "e-cal"}

    # Unchanged data and clock: the same cached object; after n-soon expires: rebuilt.
    assert await publisher.feed() is feed
    clock[0] = NOW + timedelta(hours=2)
    later = await publisher.feed()
    assert later.etag != feed.etag and b"n-soon" not in later.body
    assert later.last_modified == (NOW + timedelta(hours=1))
    store.close()


@hostile_dates
async def test_housekeeping_drops_expired_notices_and_old_tombstones(
    tmp_path: Path, now: datetime
) -> None:
    NOW = now.astimezone(UTC)
    node_dir = make_node(tmp_path)
    store = await seeded(node_dir, NOW)
    assert await tidy(store, NOW) == 2
    assert {n.title for n in store.notices()} == {"n-soon", "n-forever"}
    assert {t.id for t in store.tombstones()} == {"urn:uuid:t-new"}
    assert {e.title for e in store.events()} == {"e-old", "e-recent", "e-coming", "e-cal"}
    store.close()
    reopened = Store.open(node_dir.config().db_path)  # the removal is on disk
    assert {n.title for n in reopened.notices()} == {"n-soon", "n-forever"}
    assert await tidy(reopened, NOW) == 0
    reopened.close()


async def test_scheduler_runs_the_job_at_start(tmp_path: Path) -> None:
    store = Store.open(make_node(tmp_path).config().db_path)
    now = utc_now()
    await store.save_many(
        [notice("n-expired", now - timedelta(days=1), now), notice("n", None, now)]
    )
    changes: list[int] = []
    store.listeners.append(lambda: changes.append(1))
    scheduler = start_scheduler(store, minutes=60)
    try:
        for _ in range(200):  # bounded wait for the first run
            if changes:
                break
            await asyncio.sleep(0.05)
    finally:
        scheduler.shutdown(wait=False)
    assert changes and all(n.title != "n-expired" for n in store.notices())
    store.close()
