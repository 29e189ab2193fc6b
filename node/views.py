"""Public pages: the village page, event and notice pages, the feed, calendars, health."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from aiohttp import web
from markupsafe import Markup

from klynge.ical import event_calendar, html_to_text
from klynge.model import Event, Notice, utcnow
from klynge.recurrence import expand
from klynge.web import render
from node.keys import CONFIG, PUBLISHER, STORE
from node.publish import CALENDAR_TYPE, FEED_TYPE, feed_links, linked, respond

UUID = r"{uuid:[0-9a-fA-F-]{36}}"
UPCOMING_DAYS = 60
EVENT_STATUS = {
    "confirmed": "https://schema.org/EventScheduled",
    "cancelled": "https://schema.org/EventCancelled",
    "postponed": "https://schema.org/EventPostponed",
}


def add_routes(app: web.Application) -> None:
    """Register the public routes."""
    app.router.add_get("/", village_page)
    app.router.add_get("/feed.atom", feed)
    app.router.add_get("/calendar.ics", calendar)
    app.router.add_get("/healthz", healthz)
    app.router.add_get(f"/events/{UUID}.ics", event_ics)
    app.router.add_get(f"/events/{UUID}", event_page)
    app.router.add_get(f"/notices/{UUID}", notice_page)


async def healthz(request: web.Request) -> web.Response:
    """GET /healthz: the node is up and its store is loaded."""
    store = request.app[STORE]
    body = {"status": "ok", "events": len(store.events()), "notices": len(store.notices())}
    return web.json_response(body)


async def feed(request: web.Request) -> web.Response:
    """GET /feed.atom: the village feed from cached bytes (304 when unchanged)."""
    doc = await request.app[PUBLISHER].feed()
    return respond(request, doc, FEED_TYPE, feed_links(request.app[CONFIG]))


async def calendar(request: web.Request) -> web.Response:
    """GET /calendar.ics: the village calendar from cached bytes (304 when unchanged)."""
    doc = await request.app[PUBLISHER].calendar()
    return respond(request, doc, CALENDAR_TYPE)


def _event(request: web.Request) -> Event:
    item = request.app[STORE].get(request.match_info["uuid"].lower(), "event")
    if not isinstance(item, Event):
        raise web.HTTPNotFound()
    return linked(request.app[CONFIG], item)


async def event_ics(request: web.Request) -> web.Response:
    """GET /events/{uuid}.ics: one event as an iCalendar file."""
    body = event_calendar(_event(request))
    headers = {"Content-Disposition": 'attachment; filename="event.ics"'}
    return web.Response(body=body, content_type=CALENDAR_TYPE, charset="utf-8", headers=headers)


async def event_page(request: web.Request) -> web.Response:
    """GET /events/{uuid}: the event's page with schema.org JSON-LD."""
    event = _event(request)
    context = {"event": event, "json_ld": json_ld(event), "ics_url": f"{event.link}.ics"}
    return render(request, "event.html", context)


async def notice_page(request: web.Request) -> web.Response:
    """GET /notices/{uuid}: one notice (also when expired, marked so)."""
    item = request.app[STORE].get(request.match_info["uuid"].lower(), "notice")
    if not isinstance(item, Notice):
        raise web.HTTPNotFound()
    expired = item.expires is not None and item.expires <= utcnow()
    return render(request, "notice.html", {"notice": item, "expired": expired})


async def village_page(request: web.Request) -> web.Response:
    """GET /: the village's upcoming events, notices and subscribe links."""
    config = request.app[CONFIG]
    store = request.app[STORE]
    now = utcnow()
    occurrences = expand(store.events(), now, now + timedelta(days=UPCOMING_DAYS), limit=200)
    notices = [n for n in store.notices() if n.expires is None or n.expires > now]
    notices.sort(key=lambda n: n.updated, reverse=True)
    context = {
        "occurrences": occurrences,
        "notices": notices,
        "feed_url": config.feed_url,
        "calendar_url": f"{config.public_url}/calendar.ics",
        "webcal_url": "webcal://" + config.public_url.split("://", 1)[1] + "/calendar.ics",
        "upcoming_days": UPCOMING_DAYS,
    }
    return render(request, "village.html", context)


def json_ld(event: Event) -> Markup:
    """Return the schema.org Event as JSON-LD, safe inside a <script> element."""
    data: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "Event",
        "@id": event.link,
        "name": event.title,
        "url": event.link,
        "startDate": _iso(event.start),
        "eventStatus": EVENT_STATUS[event.status],
        "eventAttendanceMode": "https://schema.org/OfflineEventAttendanceMode",
    }
    if event.end is not None:
        data["endDate"] = _iso(event.end)
    if event.description:
        data["description"] = html_to_text(event.description)
    if event.organizer:
        data["organizer"] = {"@type": "Organization", "name": event.organizer}
    if event.place is not None:
        data["location"] = _place_ld(event)
    text = json.dumps(data, ensure_ascii=False)
    # "</script>" or "<!--" inside a string would end or confuse the script element.
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)


def _iso(value: Any) -> str:
    return str(value.isoformat())


def _place_ld(event: Event) -> dict[str, Any]:
    place = event.place
    assert place is not None
    data: dict[str, Any] = {"@type": "Place", "name": place.name or place.address}
    if place.address:
        data["address"] = {
            "@type": "PostalAddress",
            "streetAddress": place.street,
            "postalCode": place.postcode,
            "addressLocality": place.locality,
            "addressCountry": "DK",
        }
    if place.lat is not None:
        data["geo"] = {"@type": "GeoCoordinates", "latitude": place.lat, "longitude": place.lon}
    return data
