"""The info screen: today and the coming days in large type, for a TV in the hall or the shop.

No JavaScript: the page asks the browser to reload itself (meta refresh), and every list is
capped in Python so that a busy day never runs off a landscape screen.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from aiohttp import web

from aggregator.keys import now
from aggregator.web.pages import (
    Days,
    by_day,
    local_today,
    occurrences_between,
    public_url,
    timezone_of,
)
from klynge.model import zone
from klynge.recurrence import Occurrence

REFRESH_SECONDS = 300  # a TV left alone: new events within five minutes are soon enough
TODAY_CAP = 5  # entries in today's column at 1080 px (two lines each, screen.css)
DAYS_AHEAD = 6
COMING_ROWS = 13  # the right column's rows: a day heading, an entry or "+ N more" each
COMING_PER_DAY = 3


def not_over(found: list[Occurrence], at: datetime) -> list[Occurrence]:
    """Return today's occurrences that have not ended at `at` (all-day ones last the day)."""
    return [o for o in found if _ends_after(o, at)]


def _ends_after(occurrence: Occurrence, at: datetime) -> bool:
    start, end = occurrence.start, occurrence.end or occurrence.start
    if not isinstance(start, datetime) or not isinstance(end, datetime):
        return True  # an all-day date listed under today lasts all of today
    # An event without a length stays up for an hour after it starts.
    return (end if end > start else start + timedelta(hours=1)) > at


def coming_rows(days: Days) -> list[tuple[date, list[Occurrence], int]]:
    """Return the coming days with at most a few entries each, within the column's rows."""
    rows, kept = 0, []
    for day, items in days:
        room = COMING_ROWS - rows - 1  # the day's heading takes one row
        count = max(0, min(COMING_PER_DAY, len(items), room))
        if count < len(items) and count >= room:
            count -= 1  # leave a row for "+ N more"
        if count < 1:
            break
        more = len(items) - count
        rows += 1 + count + bool(more)
        kept.append((day, items[:count], more))
    return kept


async def screen_context(request: web.Request) -> dict[str, Any]:
    """Gather what is left of today and the next days for the info screen."""
    tz = timezone_of(request)
    today = local_today(request)
    at = now(request)
    found = await occurrences_between(request, today, today + timedelta(DAYS_AHEAD + 1))
    days = by_day(found, tz)
    todays = not_over(next((items for d, items in days if d == today), []), at)
    return {
        "today": today,
        "updated": at.astimezone(zone(tz)),
        "refresh_seconds": REFRESH_SECONDS,
        "today_items": todays[:TODAY_CAP],
        "today_more": max(0, len(todays) - TODAY_CAP),
        "coming": coming_rows([(d, items) for d, items in days if d > today]),
        "short_url": public_url(request, "/calendar").split("://", 1)[-1],
    }
