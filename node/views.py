"""Public pages: the village page, event and notice pages, the feed, calendars, health."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import groupby
from typing import Any
from urllib.parse import quote

from aiohttp import web
from markupsafe import Markup

from klynge.ical.writer import event_calendar, html_to_text
from klynge.model import MAX_OCCURRENCES, Event, Notice, Place, zone
from klynge.recurrence import Occurrence, expand, occurrences
from klynge.render_guard import rendered
from klynge.web import EVENT_STATUS, render
from node.carpool import views as carpool_views
from node.forms import last_day_shown
from node.keys import CONFIG, PUBLISHER, STORE, now
from node.publish import CALENDAR_TYPE, FEED_TYPE, feed_links, linked, respond

UUID = r"{uuid:[0-9a-fA-F-]{36}}"
UPCOMING_DAYS = 60


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
    # An event that cannot be shown is left out of its own page too (klynge.render_guard).
    for shown in rendered([item], lambda e: linked(request.app[CONFIG], e), "its own page"):
        return shown
    raise web.HTTPNotFound()


async def event_ics(request: web.Request) -> web.Response:
    """GET /events/{uuid}.ics: one event as an iCalendar file."""
    body = event_calendar(_event(request), now=now(request))
    headers = {"Content-Disposition": 'attachment; filename="event.ics"'}
    return web.Response(body=body, content_type=CALENDAR_TYPE, charset="utf-8", headers=headers)


@dataclass(frozen=True)
class Span:
    """When something happens, as the pages say it: a day, times, and a last day if later."""

    day: date
    start: datetime | None  # None for all-day
    end: datetime | None
    last_day: date | None  # only when it ends on a later day


def span(start: date, end: date | None, all_day: bool) -> Span:
    """Return the display span of an event or occurrence (all-day ends are exclusive)."""
    if all_day or not isinstance(start, datetime):
        last = end - timedelta(days=1) if end is not None else None
        return Span(start, None, None, last if last is not None and last > start else None)
    timed_end = end if isinstance(end, datetime) else None
    last = timed_end.date() if timed_end is not None else None
    return Span(start.date(), start, timed_end, last if last != start.date() else None)


def map_url(place: Place | None) -> str:
    """Return an OpenStreetMap link for a place: its point, else a search for its address."""
    if place is None:
        return ""
    if place.lat is not None and place.lon is not None:
        return (
            f"https://www.openstreetmap.org/?mlat={place.lat}&mlon={place.lon}"
            f"#map=17/{place.lat}/{place.lon}"
        )
    if not place.address:
        return ""
    return f"https://www.openstreetmap.org/search?query={quote(place.full)}"


DATES_SHOWN = 24  # dates of a series listed on its page; the rest are counted
_EARLY, _FAR = datetime(1900, 1, 1, tzinfo=UTC), datetime(2201, 1, 1, tzinfo=UTC)


def event_context(event: Event) -> dict[str, Any]:
    """Return what event_body.html needs to show an event (page and preview alike)."""
    return {
        "event": event,
        "span": span(event.start, event.end, event.all_day),
        "map_url": map_url(event.place),
        "weekly": _every_week(event),
        **series_dates(event),
    }


def series_dates(event: Event) -> dict[str, Any]:
    """Return a series' dates (changed ones as changed), how many, and the last one's day."""
    if event.rrule is None:
        return {"dates": []}
    # Every date, wherever a change moved it (a series has at most 1,000: rule and extras).
    found = occurrences(event, _EARLY, _FAR, limit=2 * MAX_OCCURRENCES)
    last = found[-1].start if found else event.start
    return {
        "dates": found[:DATES_SHOWN],
        "more_dates": max(0, len(found) - DATES_SHOWN),
        "date_count": len(found),
        "last_date": last,
    }


def _every_week(event: Event) -> bool:
    rule = event.rrule
    return rule is not None and (rule.freq, rule.interval) == ("WEEKLY", 1)


async def event_page(request: web.Request) -> web.Response:
    """GET /events/{uuid}: the event's page with schema.org JSON-LD."""
    event = _event(request)
    context = event_context(event) | {"json_ld": json_ld(event), "ics_url": f"{event.link}.ics"}
    context |= carpool_views.section_context(request, event)
    return render(request, "event.html", context)


async def notice_page(request: web.Request) -> web.Response:
    """GET /notices/{uuid}: one notice (also when expired, marked so)."""
    item = request.app[STORE].get(request.match_info["uuid"].lower(), "notice")
    if not isinstance(item, Notice):
        raise web.HTTPNotFound()
    return render(
        request, "notice.html", notice_context(item, request.app[CONFIG].timezone, now(request))
    )


def notice_context(notice: Notice, tz: str, now: datetime) -> dict[str, Any]:
    """Return what notice_body.html needs to show a notice (page and preview alike)."""
    expires = notice.expires
    return {
        "notice": notice,
        "expired": expires is not None and expires <= now,
        "last_day": None if expires is None else last_day_shown(expires, tz),
    }


async def village_page(request: web.Request) -> web.Response:
    """GET /: the village's upcoming events, notices and subscribe links."""
    config = request.app[CONFIG]
    store = request.app[STORE]
    moment = now(request)
    occurrences = expand(
        store.events(),
        moment,
        moment + timedelta(days=UPCOMING_DAYS),
        limit=200,
        output="the village page",
    )
    notices = [n for n in store.notices() if n.expires is None or n.expires > moment]
    notices = [n for n in notices if n.carpool is None]  # shown on their event's page
    notices.sort(key=lambda n: n.updated, reverse=True)
    today = moment.astimezone(zone(config.timezone)).date()
    context = {
        "days": by_day(occurrences),
        "today": today,
        "tomorrow": today + timedelta(days=1),
        "notices": [notice_context(n, config.timezone, moment) for n in notices],
        "feed_url": config.feed_url,
        "calendar_url": f"{config.public_url}/calendar.ics",
        "webcal_url": "webcal://" + config.public_url.split("://", 1)[1] + "/calendar.ics",
        "upcoming_days": UPCOMING_DAYS,
    }
    return render(request, "village.html", context)


def by_day(occurrences: list[Occurrence]) -> list[tuple[date, list[tuple[Occurrence, Span]]]]:
    """Group occurrences (sorted by start) by their first day, each with its display span."""
    spans = [(o, span(o.start, o.end, o.event.all_day)) for o in occurrences]
    return [(day, list(group)) for day, group in groupby(spans, key=lambda pair: pair[1].day)]


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
