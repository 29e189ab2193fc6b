"""Resident-facing HTML pages: one function gathers each page's data, one template shows it.

Plain, correct pages; the designed ones come with the web-experience issue and only need to
replace the templates (the context of each page is gathered by a `*_context` function here).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from itertools import groupby
from typing import Any

from aiohttp import web

from aggregator import outputs
from aggregator.keys import CONFIG, REFRESHER
from aggregator.merge import Merged
from aggregator.status import source_rows
from klynge.errors import NotFound
from klynge.model import CATEGORIES, utcnow
from klynge.recurrence import Occurrence
from klynge.web import render

WEEK = timedelta(days=7)
CALENDAR_DAYS = timedelta(days=62)


def add_routes(app: web.Application) -> None:
    """Register the HTML pages."""
    app.router.add_get("/", home)
    app.router.add_get("/calendar", calendar_page)
    app.router.add_get("/noticeboard", noticeboard)
    app.router.add_get("/events/{uuid}", event_page)
    app.router.add_get("/status", status_page)


def day_of(occurrence: Occurrence) -> date:
    """Return the local day an occurrence starts on."""
    start = occurrence.start
    return start.date() if isinstance(start, datetime) else start


def by_day(found: Iterable[Occurrence]) -> list[tuple[date, list[Occurrence]]]:
    """Group occurrences (sorted by start) by their local day."""
    return [(day, list(group)) for day, group in groupby(found, key=day_of)]


def villages(merged: Merged) -> list[tuple[str, str]]:
    """Return (key, name) of every village with entries, sorted by name."""
    names = {outputs.village_of(i).title for i in merged.items}
    return sorted(((outputs.slug(n), n) for n in names if n), key=lambda p: p[1])


async def _occurrences(
    request: web.Request, lo: datetime, hi: datetime, village: str = "", category: str = ""
) -> list[Occurrence]:
    merged = await request.app[REFRESHER].current()
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, outputs.occurrences, merged, lo, hi, village, category)


async def home_context(request: web.Request) -> dict[str, Any]:
    """Gather this week across the cluster and the newest notices."""
    lo, _ = outputs.window(None, None, request.app[CONFIG].timezone)
    found = await _occurrences(request, lo, lo + WEEK)
    notices = outputs.current_notices(await request.app[REFRESHER].current())
    return {"days": by_day(found), "notices": notices[:5]}


async def home(request: web.Request) -> web.Response:
    """Show this week across the cluster."""
    return render(request, "home.html", await home_context(request))


async def calendar_context(request: web.Request) -> dict[str, Any]:
    """Gather two months of occurrences, filtered by village and category."""
    village = request.query.get("village", "").strip()[:100]
    category = request.query.get("category", "").strip().lower()[:40]
    lo, _ = outputs.window(None, None, request.app[CONFIG].timezone)
    found = await _occurrences(request, lo, lo + CALENDAR_DAYS, village, category)
    return {
        "days": by_day(found),
        "village": village,
        "category": category,
        "villages": villages(await request.app[REFRESHER].current()),
        "categories": list(CATEGORIES),
    }


async def calendar_page(request: web.Request) -> web.Response:
    """Show the coming two months as a list, with filters."""
    return render(request, "calendar.html", await calendar_context(request))


async def noticeboard(request: web.Request) -> web.Response:
    """Show the unexpired notices, newest first."""
    notices = outputs.current_notices(await request.app[REFRESHER].current())
    return render(request, "noticeboard.html", {"notices": notices})


async def event_context(request: web.Request) -> dict[str, Any]:
    """Gather one event and its coming occurrences, or raise NotFound."""
    try:
        entry_id = f"urn:uuid:{uuid.UUID(request.match_info['uuid'])}"
    except ValueError:
        raise NotFound("There is no such event.") from None
    merged = await request.app[REFRESHER].current()
    event = outputs.find_event(merged, entry_id)
    if event is None:
        raise NotFound("There is no such event.")
    lo, hi = outputs.event_window(event)
    loop = asyncio.get_running_loop()
    found = await loop.run_in_executor(None, outputs.occurrences, Merged((event,)), lo, hi)
    return {"event": event, "occurrences": found[:50], "village": outputs.village_of(event)}


async def event_page(request: web.Request) -> web.Response:
    """Show one event with its provenance."""
    return render(request, "event.html", await event_context(request))


async def status_page(request: web.Request) -> web.Response:
    """Show every source's health, problems named in words."""
    rows = source_rows(request.app[CONFIG], request.app[REFRESHER])
    return render(request, "status.html", {"sources": rows, "now": utcnow()})
