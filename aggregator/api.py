"""Machine-facing routes: feeds, calendars, the JSON API, OPML, /ping and /healthz."""

from __future__ import annotations

import asyncio
import json
from datetime import date
from typing import Any

from aiohttp import web

from aggregator import outputs
from aggregator.keys import CONFIG, OUTPUTS, REFRESHER, SCHEDULER
from aggregator.status import source_rows
from klynge.errors import ValidationError
from klynge.model import YEARS
from klynge.web import read_form


def add_routes(app: web.Application) -> None:
    """Register the machine-facing routes."""
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/feed.atom", feed)
    app.router.add_get("/calendar.ics", calendar)
    app.router.add_get("/sources.opml", opml)
    app.router.add_get("/api/events", api_events)
    app.router.add_get("/api/notices", api_notices)
    app.router.add_get("/api/sources", api_sources)
    app.router.add_post("/ping", ping)


async def healthz(request: web.Request) -> web.Response:
    """Answer at once: the event loop is alive (never builds or touches the disk)."""
    return web.Response(text="ok\n", headers={"Cache-Control": "no-store"})


async def feed(request: web.Request) -> web.Response:
    """Serve the merged Atom feed (cached bytes, ETag/304)."""
    return outputs.respond(request, await request.app[OUTPUTS].feed())


def _filters(request: web.Request) -> tuple[str, str]:
    village = request.query.get("village", "").strip()[:100]
    category = request.query.get("category", "").strip().lower()[:40]
    return village, category


async def calendar(request: web.Request) -> web.Response:
    """Serve the cluster's iCalendar file, optionally for one village and/or category."""
    village, category = _filters(request)
    return outputs.respond(request, await request.app[OUTPUTS].calendar(village, category))


async def opml(request: web.Request) -> web.Response:
    """Serve the list of polled feeds as OPML."""
    config = request.app[CONFIG]
    rows = source_rows(config, request.app[REFRESHER])
    doc = outputs.build_opml(config, ((r["url"], r["name"], r["kind"]) for r in rows))
    return outputs.respond(request, doc)


def _date(request: web.Request, name: str) -> date | None:
    value = request.query.get(name, "").strip()
    if not value:
        return None
    try:
        day = date.fromisoformat(value[:10])
    except ValueError:
        raise ValidationError({name: "Give a date as YYYY-MM-DD."}) from None
    # Clamped (the window is clamped to the horizon anyway): arithmetic overflows near 1 and 9999.
    return min(max(day, date(YEARS.start, 1, 1)), date(YEARS.stop - 1, 12, 31))


async def api_events(request: web.Request) -> web.Response:
    """Return the occurrences in a date range (recurrences expanded, 18-month horizon)."""
    config = request.app[CONFIG]
    lo, hi = outputs.window(
        _date(request, "from"), _date(request, "to"), config.timezone, config.clock.now()
    )
    village, category = _filters(request)
    merged = await request.app[REFRESHER].current()
    loop = asyncio.get_running_loop()
    found = await loop.run_in_executor(None, outputs.occurrences, merged, lo, hi, village, category)
    body: dict[str, Any] = {
        "from": lo.isoformat(),
        "to": hi.isoformat(),
        "events": [outputs.occurrence_json(o) for o in found],
    }
    return web.json_response(body, dumps=_dumps)


async def api_notices(request: web.Request) -> web.Response:
    """Return the unexpired notices, newest first."""
    config = request.app[CONFIG]
    village, category = _filters(request)
    notices = outputs.current_notices(
        await request.app[REFRESHER].current(), config.clock.now(), village, category
    )
    return web.json_response({"notices": [outputs.notice_json(n) for n in notices]}, dumps=_dumps)


async def api_sources(request: web.Request) -> web.Response:
    """Return every source's health."""
    rows = source_rows(request.app[CONFIG], request.app[REFRESHER])
    return web.json_response({"sources": rows}, dumps=_dumps)


async def ping(request: web.Request) -> web.Response:
    """Take a WebSub-style publish ping: 202 for a registered feed, 404 for an unknown one."""
    form = await read_form(request)
    mode = str(form.get("hub.mode", "publish"))
    url = str(form.get("hub.url", "")).strip()
    # Plain-text answers, as WebSub hubs give: the caller is a program, not a browser.
    if mode != "publish" or not url:
        return web.Response(status=400, text="Send hub.mode=publish&hub.url=FEED_URL as a form.\n")
    if not request.app[SCHEDULER].ping(url):
        return web.Response(status=404, text="That feed is not a source of this aggregator.\n")
    return web.Response(status=202, text="Accepted: the feed will be fetched shortly.\n")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
