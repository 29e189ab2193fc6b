"""Machine-facing routes: feeds, calendars, the JSON API, OPML, /ping and /healthz."""

from __future__ import annotations

import json
from datetime import date
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from aggregator.keys import CONFIG, MERGED, OUTPUTS, REFRESHER, SCHEDULER, SOURCE_ROWS
from aggregator.publish import outputs
from aggregator.publish.paging import parse_cursor
from aggregator.web.kept import kept
from klynge.errors import BadRequest, NotFound, ValidationError
from klynge.i18n import N_
from klynge.model import YEARS
from klynge.render_guard import rendered

FORM_TYPE = "application/x-www-form-urlencoded"
PING_FORM = N_("Send hub.mode=publish&hub.url=FEED_URL as a form (UTF-8).")


def add_routes(app: web.Application) -> None:
    """Register the machine-facing routes."""
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/feed.atom", feed)
    app.router.add_get("/calendar.ics", calendar)
    app.router.add_get("/sources.opml", opml)
    app.router.add_get("/api/events", kept(api_events))
    app.router.add_get("/api/notices", kept(api_notices))
    app.router.add_get("/api/sources", api_sources)
    app.router.add_post("/ping", ping)


async def healthz(request: web.Request) -> web.Response:
    """Answer at once: the event loop is alive (never builds or touches the disk)."""
    return web.Response(text="ok\n", headers={"Cache-Control": "no-store"})


async def feed(request: web.Request) -> web.Response:
    """Serve the merged Atom feed's first page, or with `after` a later one (ETag/304)."""
    after = request.query.get("after", "")
    if not after:
        return outputs.respond(request, await request.app[OUTPUTS].feed())
    parse_cursor(after)  # a 400 for a cursor no link gives, before any building
    return outputs.respond(request, await request.app[OUTPUTS].get(("feed", after)))


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
    rows = request.app[SOURCE_ROWS].rows(config, request.app[REFRESHER])
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
    merged = await request.app[MERGED].current()
    # Off the loop, joined from each occurrence's kept JSON row (aggregator.publish.pieces).
    parts = await request.app[OUTPUTS].events_json(merged, lo, hi, village, category)
    mime = "application/json; charset=utf-8"
    return web.Response(body=parts.body(mime), headers={"Content-Type": mime})


async def api_notices(request: web.Request) -> web.Response:
    """Return the unexpired notices, newest first."""
    config = request.app[CONFIG]
    village, category = _filters(request)
    notices = outputs.current_notices(
        await request.app[MERGED].current(), config.clock.now(), village, category
    )
    body = {"notices": rendered(notices, outputs.notice_json, "/api/notices")}
    return web.json_response(body, dumps=_dumps)


async def api_sources(request: web.Request) -> web.Response:
    """Return every source's health."""
    body = request.app[SOURCE_ROWS].json(request.app[CONFIG], request.app[REFRESHER])
    return web.Response(body=body, content_type="application/json", charset="utf-8")


async def ping(request: web.Request) -> web.Response:
    """Take a WebSub-style publish ping: 202 for a registered feed, 404 for an unknown one."""
    form = await read_ping(request)
    if form.get("hub.mode", "publish") != "publish" or not form.get("hub.url", "").strip():
        raise BadRequest(PING_FORM)
    if not request.app[SCHEDULER].ping(form["hub.url"].strip()):
        raise NotFound(N_("That feed is not a source of this aggregator."))
    # Plain text, as WebSub hubs answer: the caller is a program, not a browser.
    return web.Response(status=202, text="Accepted: the feed will be fetched shortly.\n")


async def read_ping(request: web.Request) -> dict[str, str]:
    """Read a ping's form body: strict UTF-8 application/x-www-form-urlencoded, each key once.

    aiohttp's request.post() answered 500 to undecodable bytes, unknown charsets and broken
    multipart bodies; a ping is always a small urlencoded form (WebSub §7), so read only that.
    """
    charset = (request.charset or "utf-8").lower()
    if request.content_type != FORM_TYPE or charset not in ("utf-8", "utf8"):
        raise BadRequest(PING_FORM)
    body = await request.read()  # capped by client_max_size (413)
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError) as e:
        raise BadRequest(PING_FORM) from e
    form = dict(pairs)
    if len(form) != len(pairs):
        raise BadRequest(PING_FORM)
    return form


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
