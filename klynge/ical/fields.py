"""The properties of one VEVENT read into model values; a broken optional one is skipped.

DTSTART, DTEND/DURATION and RRULE make the event: when they cannot be read the event is
skipped. Every other property is optional (`optional`): a broken CREATED, GEO or URL is left
out with a message naming it, and the event is kept (icalendar 7 keeps an unreadable value as
a broken property that raises on access).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import icalendar
from icalendar.timezone.tzid import tzids_from_tzinfo
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from klynge.errors import InvalidValue
from klynge.messages import Message, define
from klynge.model import CATEGORIES, Place, When, is_http_url, localize, zone

T = TypeVar("T")
CANCELLED_MARK = "AFLYST: "  # titles are marked for calendars that hide STATUS
POSTPONED_MARK = "UDSAT: "
UNTITLED = "(uden titel)"  # the model needs a title; a VEVENT need not have a SUMMARY

BAD_DURATION = define("ical.bad_duration", "the duration (DURATION) cannot be read.")
MIXED_TIMES = define("ical.mixed_times", "the start and end are not both dates or both date-times.")
BAD_MOMENT = define("ical.bad_moment", "a time (DTSTART/DTEND) is not a date or date-time.")
BROKEN_PROPERTY = define(
    "ical.broken_property", "its %(name)s cannot be read and was left out; the event is kept."
)


def one(component: icalendar.Component, name: str, default: Any = None) -> Any:
    """Return a property; the first when a producer repeated one that RFC 5545 allows once.

    icalendar gives a list for a repeated property, which every reader below would trip on
    (found by tests/fuzz/: two CONTACT lines raised AttributeError).
    """
    value = component.get(name, default)
    return value[0] if isinstance(value, list) and value else value


def optional(name: str, read: Callable[[], T], default: T, notes: list[Message]) -> T:
    """Return `read()`, or `default` with a note when the optional property `name` is broken."""
    try:
        return read()
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError):
        notes.append(Message(BROKEN_PROPERTY, {"name": name}))
        return default


def read_times(component: icalendar.Component, default_tz: str) -> tuple[str, When, When | None]:
    prop = one(component, "DTSTART")
    start = _moment(prop)
    if not isinstance(start, datetime):
        return default_tz, start, _read_end(component, start)
    tzid = _zone_name(start, str(prop.params.get("TZID", "")), default_tz)
    if "TZID" not in prop.params and start.utcoffset() == timedelta(0) and "RRULE" not in component:
        tzid = default_tz  # a single UTC time reads best in local time; a UTC rule stays UTC
    start = aware(start, tzid)
    end = _read_end(component, start)
    return tzid, start, aware(end, tzid) if isinstance(end, datetime) else end


def _read_end(component: icalendar.Component, start: When) -> When | None:
    if "DTEND" in component:
        end: When = _moment(one(component, "DTEND"))
    elif "DURATION" in component:
        duration = getattr(one(component, "DURATION"), "dt", None)
        if not isinstance(duration, timedelta):
            raise InvalidValue(Message(BAD_DURATION))
        end = start + duration
    else:
        return None
    if type(end) is not type(start):
        raise InvalidValue(Message(MIXED_TIMES))
    # A zero-length event has no end in the model. Compared in UTC: Python never finds two
    # aware times in other zones equal when one is in a DST fold (PEP 495), so an instant at
    # 02:00 on the night summer time ends would get an end "before" its start.
    if isinstance(end, datetime) and isinstance(start, datetime):
        return None if end.astimezone(UTC) == start.astimezone(UTC) else end
    return None if end == start else end


def _moment(prop: Any) -> When:
    value = getattr(prop, "dt", None)
    if not isinstance(value, date):
        raise InvalidValue(Message(BAD_MOMENT))
    return value


def _zone_name(start: datetime, tzid_param: str, default_tz: str) -> str:
    # A calendar's own VTIMEZONE (Outlook's "Pacific Standard Time") gives a tzinfo without an
    # IANA key; its IANA name keeps the series on the source's wall clock across DST changes.
    key = getattr(start.tzinfo, "key", "")
    windows = WINDOWS_TO_OLSON.get(tzid_param.strip().rstrip(":"), "")
    for candidate in (key, tzid_param, windows, *tzids_from_tzinfo(start.tzinfo)):
        try:
            zone(candidate)
        except ValueError:
            continue
        return candidate
    return default_tz


def aware(value: datetime, tzid: str) -> datetime:
    if value.tzinfo is None:  # floating time: read as the source's local time
        return localize(value, zone(tzid))
    return value.astimezone(zone(tzid))


def utc(prop: Any, default_tz: str) -> datetime | None:
    value = getattr(prop, "dt", None)
    if not isinstance(value, datetime):
        return None
    return aware(value, default_tz).astimezone(UTC)


def read_status(component: icalendar.Component) -> tuple[Any, str]:
    status = str(one(component, "STATUS", "CONFIRMED")).upper()
    title = str(one(component, "SUMMARY", "")).strip()
    if status == "CANCELLED":
        return "cancelled", title.removeprefix(CANCELLED_MARK)
    if status == "TENTATIVE" and title.startswith(POSTPONED_MARK):
        return "postponed", title.removeprefix(POSTPONED_MARK)
    if status == "TENTATIVE":  # RFC 5545 §3.8.1.11: not yet confirmed (a reserved date)
        return "tentative", title
    return "confirmed", title


def read_organizer(component: icalendar.Component) -> tuple[str, str]:
    contact = one(component, "CONTACT")
    if contact is not None:
        text = str(contact).strip()
        url = http_url(contact.params.get("ALTREP"))
        return text.removesuffix(", " + url).strip() if url else text, url
    organizer = one(component, "ORGANIZER")
    if organizer is not None:
        return str(organizer.params.get("CN", "")).strip(), ""
    return "", ""


def http_url(value: Any) -> str:
    text = str(value or "").strip()
    return text if is_http_url(text) else ""


def read_category(component: icalendar.Component) -> str:
    prop = component.get("CATEGORIES")
    if prop is None:
        return ""
    first = prop[0] if isinstance(prop, list) else prop
    names = [str(c) for c in getattr(first, "cats", [])]
    return category_term(names[0]) if names else ""


def category_term(name: str) -> str:
    """Return the vocabulary term for a category name or label, else a slug of the name."""
    wanted = name.strip().lower()
    for term, labels in CATEGORIES.items():
        if wanted in (term, labels[0].lower(), labels[1].lower()):
            return term
    for letter, spelled in (("æ", "ae"), ("ø", "oe"), ("å", "aa")):
        wanted = wanted.replace(letter, spelled)
    return re.sub(r"[^a-z0-9]+", "-", wanted).strip("-")[:40].strip("-")


def read_place(component: icalendar.Component) -> Place | None:
    name = str(one(component, "LOCATION", "")).strip()[:200]
    geo = one(component, "GEO")
    lat = getattr(geo, "latitude", None)
    lon = getattr(geo, "longitude", None)
    if not name and lat is None:
        return None
    return Place(name=name, lat=lat, lon=lon)


def text_to_html(text: str) -> str:
    paragraphs = [p.strip() for p in text.strip().split("\n\n") if p.strip()]
    return "".join(
        "<p>" + "<br>".join(html.escape(line) for line in p.split("\n")) + "</p>"
        for p in paragraphs
    )
