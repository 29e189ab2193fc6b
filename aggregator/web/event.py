"""The event page: when in words (recurrence too), place and map link, JSON-LD, its .ics."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from aiohttp import web
from markupsafe import Markup

from aggregator.keys import now
from aggregator.publish import outputs
from aggregator.reader.merge import Merged
from aggregator.web.pages import (
    day_month,
    event_path,
    lang_of,
    local_day,
    merged_of,
    public_url,
    timezone_of,
    weekday_name,
)
from klynge.errors import NotFound
from klynge.i18n import N_
from klynge.ical.writer import event_calendar, html_to_text
from klynge.model import Event, Notice, Place, sanitise_html
from klynge.phone import tel_links
from klynge.repeat_rule import DayPart, RepeatRule
from klynge.web import EVENT_STATUS, gettext

OCCURRENCES_SHOWN = 12
NO_EVENT = N_("There is no such event.")
_DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_ORDINALS = {
    "1": N_("first"),
    "2": N_("second"),
    "3": N_("third"),
    "4": N_("fourth"),
    "-1": N_("last"),
}


@dataclass(frozen=True)
class Span:
    """When something happens, as the page says it: a day, times, and a last day if later."""

    day: date
    start: datetime | None  # None for all-day
    end: datetime | None
    last_day: date | None  # only when it ends on a later day


def span(start: date, end: date | None, all_day: bool, tz: str) -> Span:
    """Return the display span of an occurrence (all-day ends are exclusive)."""
    if all_day or not isinstance(start, datetime):
        last = end - timedelta(days=1) if end is not None else None
        return Span(start, None, None, last if last is not None and last > start else None)
    timed_end = end if isinstance(end, datetime) else None
    last = local_day(timed_end, tz) if timed_end is not None else None
    first = local_day(start, tz)
    return Span(first, start, timed_end, last if last != first else None)


def map_url(place: Place | None) -> str:
    """Return an OpenStreetMap link to a place's point, or "" without coordinates."""
    if place is None or place.lat is None or place.lon is None:
        return ""
    lat, lon = place.lat, place.lon
    return f"https://www.openstreetmap.org/?mlat={lat}&mlon={lon}#map=16/{lat}/{lon}"


# --- the recurrence rule in words ---------------------------------------------------------


def _join(request: web.Request, names: list[str]) -> str:
    if len(names) < 2:
        return "".join(names)
    return gettext(request, "%(first)s and %(last)s", first=", ".join(names[:-1]), last=names[-1])


def _weekdays(request: web.Request, by_day: tuple[DayPart, ...], start: date) -> tuple[str, str]:
    """Return (ordinal, weekday names) of a BYDAY value, e.g. ("first", "tuesday")."""
    lang = lang_of(request)
    names, ordinal = [], ""
    for number, code in by_day or [(0, _DAYS[start.weekday()])]:
        names.append(weekday_name(_DAYS.index(code), lang))
        if str(number) in _ORDINALS:
            ordinal = gettext(request, _ORDINALS[str(number)])
    return ordinal, _join(request, names)


def _rule_words(request: web.Request, rule: RepeatRule, start: date) -> str:
    freq, interval = rule.freq, rule.interval
    ordinal, days = _weekdays(request, rule.by_day, start)
    if freq == "DAILY":
        if interval == 1:
            return gettext(request, "every day")
        return gettext(request, "every %(n)s days", n=interval)
    if freq == "WEEKLY":
        if interval == 1:
            return gettext(request, "every %(days)s", days=days)
        if interval == 2:
            return gettext(request, "every other %(days)s", days=days)
        return gettext(request, "every %(n)s weeks on %(days)s", n=interval, days=days)
    if freq == "MONTHLY":
        if ordinal and rule.by_day:
            return gettext(request, "the %(nth)s %(day)s of every month", nth=ordinal, day=days)
        return gettext(request, "every month")
    if freq == "YEARLY":
        return gettext(request, "every year")
    return gettext(request, "repeats")


def recurrence_words(request: web.Request, event: Event) -> str:
    """Describe an event's repetition, e.g. "hver tirsdag indtil 26. januar"; "" if none."""
    if event.rrule is None:
        return ""
    tz = timezone_of(request)
    first = local_day(event.start, tz)
    rule = _rule_words(request, event.rrule, first)
    try:
        last_end = event.series_end()
    except (ValueError, TypeError, OverflowError):
        return rule
    last = local_day(last_end - _duration(event), tz)
    year = last.year != first.year
    until = day_month(last, lang_of(request), year=year)
    return gettext(request, "%(rule)s until %(date)s", rule=rule, date=until)


def _duration(event: Event) -> timedelta:
    if event.all_day:
        return timedelta(days=1) if event.end is None else event.effective_end - event.start
    return event.effective_end - event.start


# --- schema.org JSON-LD -------------------------------------------------------------------


def json_ld(event: Event, page_url: str) -> Markup:
    """Return the schema.org Event as JSON-LD, safe inside a <script> element."""
    data: dict[str, Any] = {
        "@context": "https://schema.org",
        "@type": "Event",
        "@id": page_url,
        "name": event.title,
        "url": page_url,
        "startDate": event.start.isoformat(),
        "eventStatus": EVENT_STATUS[event.status],
        "eventAttendanceMode": "https://schema.org/OfflineEventAttendanceMode",
    }
    if event.end is not None:
        data["endDate"] = event.end.isoformat()
    if event.description:
        data["description"] = html_to_text(event.description)
    if event.organizer:
        data["organizer"] = _organizer_ld(event)
    if event.place is not None and not event.place.is_empty():
        data["location"] = _place_ld(event.place)
    text = json.dumps(data, ensure_ascii=False)
    # "</script>" or "<!--" inside a string would end or confuse the script element.
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(text)


def _organizer_ld(event: Event) -> dict[str, str]:
    found = {"@type": "Organization", "name": event.organizer}
    return found | ({"url": event.organizer_url} if event.organizer_url else {})


def _place_ld(place: Place) -> dict[str, Any]:
    found: dict[str, Any] = {"@type": "Place", "name": place.name or place.address}
    address = {
        "streetAddress": place.street,
        "postalCode": place.postcode,
        "addressLocality": place.locality,
    }
    if any(address.values()):
        found["address"] = {"@type": "PostalAddress", "addressCountry": "DK"} | {
            k: v for k, v in address.items() if v
        }
    if place.lat is not None and place.lon is not None:
        found["geo"] = {"@type": "GeoCoordinates", "latitude": place.lat, "longitude": place.lon}
    return found


# --- the page and its .ics ----------------------------------------------------------------


def _entry_id(request: web.Request) -> str:
    try:
        return f"urn:uuid:{uuid.UUID(request.match_info['uuid'])}"
    except ValueError:
        raise NotFound(NO_EVENT) from None


async def find_event(request: web.Request) -> tuple[Merged, Event]:
    """Return the merged view and the event the URL names, or raise NotFound."""
    merged = await merged_of(request)
    event = outputs.find_event(merged, _entry_id(request))
    if event is None:
        raise NotFound(NO_EVENT)
    return merged, event


def carpools_for(merged: Merged, entry_id: str, now: datetime) -> list[Notice]:
    """Return the unexpired carpool notices that belong to an event, newest first."""
    offers = outputs.current_notices(merged, now, category="carpool")
    found = [n for n in offers if n.related == entry_id]
    return sorted(found, key=lambda n: n.updated, reverse=True)


def carpool_form(event: Event, now: datetime) -> str:
    """Return the owning node's public carpool form for an event that takes posts, or ''.

    A node publishes `carpooling` on such events and serves the form at the event's page
    plus `/carpool` (docs/feed-format.md, "Carpools").
    """
    if not event.carpooling or not event.link or event.series_end() <= now:
        return ""
    return event.link.rstrip("/") + "/carpool"


async def event_context(request: web.Request) -> dict[str, Any]:
    """Gather one event: coming dates, words, place, provenance, carpools and JSON-LD."""
    merged, event = await find_event(request)
    lo, hi = outputs.event_window(event, now(request))
    loop = asyncio.get_running_loop()
    found = await loop.run_in_executor(None, outputs.occurrences, Merged((event,)), lo, hi)
    tz = timezone_of(request)
    first = found[0] if found else None
    shown = span(first.start, first.end, event.all_day, tz) if first else None
    village = outputs.village_of(event)
    path = event_path(event.id)
    return {
        "event": event,
        "span": shown or span(event.start, event.end, event.all_day, tz),
        "occurrences": found[:OCCURRENCES_SHOWN] if event.rrule else [],
        "more_dates": max(0, len(found) - OCCURRENCES_SHOWN) if event.rrule else 0,
        "repeats": recurrence_words(request, event),
        "description": tel_links(sanitise_html(event.description)) if event.description else "",
        "map_url": map_url(event.place),
        "village": village,
        "village_key": outputs.slug(village.title),
        "carpools": carpools_for(merged, event.id, now(request)),
        "carpool_form": carpool_form(event, now(request)),
        "ics_path": f"{path}.ics",
        "json_ld": json_ld(event, public_url(request, path)),
    }


async def event_ics(request: web.Request) -> web.Response:
    """Serve one event as an iCalendar file (exactly one VEVENT)."""
    _merged, event = await find_event(request)
    body = event_calendar(event, now=now(request))
    headers = {"Content-Disposition": 'attachment; filename="event.ics"'}
    return web.Response(body=body, content_type="text/calendar", charset="utf-8", headers=headers)
