"""iCalendar input: events of an .ics source (aggregator kind "ics") as model Events."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import icalendar
from icalendar import Calendar

from klynge.errors import FeedError, InvalidValue, ValidationError, problem_of
from klynge.messages import Message, define
from klynge.model import (
    CATEGORIES,
    DEFAULT_TIMEZONE,
    TEXT_MAX,
    TITLE_MAX,
    Event,
    Place,
    When,
    as_utc,
    is_http_url,
    localize,
    utcnow,
    zone,
)
from klynge.repeat_rule import RepeatRule, Until, parse_rrule
from klynge.rrules import naive_start, series, wall_starts

CANCELLED_MARK = "AFLYST: "  # titles are marked for calendars that hide STATUS
POSTPONED_MARK = "UDSAT: "
HORIZON = timedelta(days=548)  # unbounded rules from .ics sources end 18 months from now
REBASE_AFTER = timedelta(days=365)  # older open-ended series start again at a recent occurrence
REBASE_LIMIT = 100_000  # a daily series over the longest span that has twin years (klynge.rrules)
_URI_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")

# What an .ics source can get wrong (Danish in klynge/locale); an event's note is its cause.
NOT_ICAL = define("ical.not_ical", "The file is not an iCalendar file: %(detail)s")
NO_VCALENDAR = define("ical.no_vcalendar", "The file is not an iCalendar file: no VCALENDAR.")
TOO_MANY_EVENTS = define(
    "ical.too_many_events",
    "The calendar has %(total)s events, more than the limit of %(limit)s; "
    "only the first %(limit)s were read.",
)
EVENT = define("ical.event", "Event %(uid)s (%(summary)s)")
SKIPPED = define("ical.skipped", "Event %(uid)s (%(summary)s) skipped")
NO_UID = define("ical.no_uid", "it has no UID.")
CHANGED_OCCURRENCE = define(
    "ical.changed_occurrence", "a changed single occurrence (RECURRENCE-ID) was ignored."
)
EXTRA_DATES = define("ical.extra_dates", "extra or excluded dates (RDATE/EXDATE) were ignored.")
NO_START = define("ical.no_start", "it has no start (DTSTART).")
BAD_DURATION = define("ical.bad_duration", "the duration (DURATION) cannot be read.")
MIXED_TIMES = define("ical.mixed_times", "the start and end are not both dates or both date-times.")
BAD_MOMENT = define("ical.bad_moment", "a time (DTSTART/DTEND) is not a date or date-time.")
BOUNDED = define("ical.bounded", "the open-ended repeat rule was bounded at %(date)s (18 months).")


def read_calendar(
    data: bytes,
    *,
    default_timezone: str = DEFAULT_TIMEZONE,
    now: datetime | None = None,
    max_events: int | None = None,
) -> tuple[list[Event], list[Message]]:
    """Return the events of an .ics source and the problems met.

    Raises FeedError when the bytes are not an iCalendar file at all. Recurrences are not
    expanded here; open-ended ones are bounded 18 months ahead. `max_events` reads only the
    first events of a longer file, saying so in the first problem.
    """
    try:
        cal = Calendar.from_ical(data)
    except Exception as e:
        # icalendar raises many kinds on hostile input (found by tests/fuzz/: a TypeError for
        # CATEGORIES;VALUE=DATE), besides ValueError, IndexError, KeyError, UnicodeDecodeError.
        raise FeedError(Message(NOT_ICAL, {"detail": str(e)[:200]})) from e
    if not isinstance(cal, Calendar) or cal.name != "VCALENDAR":
        raise FeedError(Message(NO_VCALENDAR))
    when = now or utcnow()
    events: dict[str, Event] = {}
    problems: list[Message] = []
    components = cal.walk("VEVENT")
    if max_events is not None and len(components) > max_events:
        limit = {"total": len(components), "limit": max_events}
        problems.append(Message(TOO_MANY_EVENTS, limit))
        components = components[:max_events]
    for component in components:
        event = _read_one(component, default_timezone, when, problems)
        if event is not None and _newer(event, events.get(event.id)):
            events[event.id] = event
    return list(events.values()), problems


def _one(component: icalendar.Component, name: str, default: Any = None) -> Any:
    """Return a property; the first when a producer repeated one that RFC 5545 allows once.

    icalendar gives a list for a repeated property, which every reader below would trip on
    (found by tests/fuzz/: two CONTACT lines raised AttributeError).
    """
    value = component.get(name, default)
    return value[0] if isinstance(value, list) and value else value


def _newer(event: Event, other: Event | None) -> bool:
    return other is None or (event.updated, event.sequence) > (other.updated, other.sequence)


def _read_one(
    component: icalendar.Component, default_tz: str, now: datetime, problems: list[Message]
) -> Event | None:
    uid = str(_one(component, "UID", "")).strip()
    label = {"uid": uid or "(no UID)", "summary": str(_one(component, "SUMMARY", "")).strip()[:60]}
    if not uid:
        problems.append(Message(SKIPPED, label, Message(NO_UID)))
        return None
    if "RECURRENCE-ID" in component:
        problems.append(Message(EVENT, label, Message(CHANGED_OCCURRENCE)))
        return None
    try:
        return _to_event(component, uid, default_tz, now, problems, label)
    except ValidationError as e:
        problems.append(Message(SKIPPED, label, e.detail))
    except (ValueError, TypeError, KeyError, OverflowError) as e:
        problems.append(Message(SKIPPED, label, problem_of(e)))
    return None


def _to_event(
    component: icalendar.Component,
    uid: str,
    default_tz: str,
    now: datetime,
    problems: list[Message],
    label: dict[str, str],
) -> Event:
    if "DTSTART" not in component:
        raise InvalidValue(Message(NO_START))
    tzid, start, end = _read_times(component, default_tz)
    status, title = _read_status(component)
    rule = _read_rule(component)
    if rule is not None:
        rule, start, end, note = bound_rule(rule, start, end, tzid, now)
        if note:
            problems.append(Message(EVENT, label, note))
    if "EXDATE" in component or "RDATE" in component:
        problems.append(Message(EVENT, label, Message(EXTRA_DATES)))
    updated = _utc(_one(component, "LAST-MODIFIED") or _one(component, "DTSTAMP"), default_tz)
    organizer, organizer_url = _read_organizer(component)
    return Event(
        id=uid if _URI_RE.match(uid) else "urn:x-ics:" + quote(uid, safe="@:/._-~+=!$&'()*,;"),
        title=title[:TITLE_MAX],
        updated=updated or now,
        created=_utc(_one(component, "CREATED"), default_tz),
        category=_read_category(component),
        organizer=organizer,
        organizer_url=organizer_url,
        url=_http(_one(component, "URL")),
        sequence=max(0, int(_one(component, "SEQUENCE", 0))),
        start=start,
        end=end,
        all_day=not isinstance(start, datetime),
        timezone=tzid,
        description=_text_to_html(str(_one(component, "DESCRIPTION", "")))[:TEXT_MAX],
        status=status,
        rrule=rule,
        place=_read_place(component),
    )


def _read_times(component: icalendar.Component, default_tz: str) -> tuple[str, When, When | None]:
    prop = _one(component, "DTSTART")
    start = _moment(prop)
    if not isinstance(start, datetime):
        return default_tz, start, _read_end(component, start)
    tzid = _zone_name(start, str(prop.params.get("TZID", "")), default_tz)
    if "TZID" not in prop.params and start.utcoffset() == timedelta(0) and "RRULE" not in component:
        tzid = default_tz  # a single UTC time reads best in local time; a UTC rule stays UTC
    start = _aware(start, tzid)
    end = _read_end(component, start)
    return tzid, start, _aware(end, tzid) if isinstance(end, datetime) else end


def _read_end(component: icalendar.Component, start: When) -> When | None:
    if "DTEND" in component:
        end: When = _moment(_one(component, "DTEND"))
    elif "DURATION" in component:
        duration = getattr(_one(component, "DURATION"), "dt", None)
        if not isinstance(duration, timedelta):
            raise InvalidValue(Message(BAD_DURATION))
        end = start + duration
    else:
        return None
    if type(end) is not type(start):
        raise InvalidValue(Message(MIXED_TIMES))
    return None if end == start else end  # a zero-length event has no end in the model


def _moment(prop: Any) -> When:
    value = getattr(prop, "dt", None)
    if not isinstance(value, date):
        raise InvalidValue(Message(BAD_MOMENT))
    return value


def _zone_name(start: datetime, tzid_param: str, default_tz: str) -> str:
    key = getattr(start.tzinfo, "key", "")
    for candidate in (key, tzid_param):
        try:
            zone(candidate)
        except ValueError:
            continue
        return candidate
    return default_tz


def _aware(value: datetime, tzid: str) -> datetime:
    if value.tzinfo is None:  # floating time: read as the source's local time
        return localize(value, zone(tzid))
    return value.astimezone(zone(tzid))


def _utc(prop: Any, default_tz: str) -> datetime | None:
    value = getattr(prop, "dt", None)
    if not isinstance(value, datetime):
        return None
    return _aware(value, default_tz).astimezone(UTC)


def _read_status(component: icalendar.Component) -> tuple[Any, str]:
    status = str(_one(component, "STATUS", "CONFIRMED")).upper()
    title = str(_one(component, "SUMMARY", "")).strip()
    if status == "CANCELLED":
        return "cancelled", title.removeprefix(CANCELLED_MARK)
    if status == "TENTATIVE" and title.startswith(POSTPONED_MARK):
        return "postponed", title.removeprefix(POSTPONED_MARK)
    return "confirmed", title


def _read_rule(component: icalendar.Component) -> RepeatRule | None:
    prop = component.get("RRULE")
    if prop is None:
        return None
    if isinstance(prop, list):
        prop = prop[0]  # the model keeps one rule; RFC 5545 advises against several
    # icalendar re-serialises what it read: the text is ASCII or the rule is refused.
    return parse_rrule(prop.to_ical().decode("ascii", "replace"))


REBASE_CHECK = timedelta(days=5 * 366)  # a rule must show a second date this soon


def bound_rule(
    rule: RepeatRule, start: When, end: When | None, tzid: str, now: datetime
) -> tuple[RepeatRule, When, When | None, Message | None]:
    """Return the rule bounded 18 months ahead, an old open-ended series moved to a recent start.

    The model accepts only bounded series of at most five years (design.md: rrule is bounded).
    """
    if rule.count is not None:
        return rule, start, end, None
    horizon = now + HORIZON
    note = None
    if rule.until is None or _until_after(rule.until, horizon, tzid):
        rule = replace(rule, until=_until_value(horizon, start))
        note = Message(BOUNDED, {"date": f"{horizon:%Y-%m-%d}"})
    if as_utc(start, tzid) < now - REBASE_AFTER:
        start, end = _rebase(rule, start, end, tzid, now - timedelta(days=90))
    return rule, start, end, note


def _until_value(moment: datetime, start: When) -> Until:
    if isinstance(start, datetime):
        return moment.astimezone(UTC).replace(microsecond=0)
    return moment.date()


def _until_after(until: Until, horizon: datetime, tzid: str) -> bool:
    day = datetime(until.year, until.month, until.day)
    return localize(day, zone(tzid)) > horizon


def _rebase(
    rule: RepeatRule, start: When, end: When | None, tzid: str, since: datetime
) -> tuple[When, When | None]:
    tz = zone(tzid)
    if len(wall_starts(rule, start, tz, REBASE_CHECK, 2)) < 2:
        return start, end  # no date after DTSTART within years: the model refuses it
    wanted = since.astimezone(tz).replace(tzinfo=None)
    span = wanted - naive_start(start) + REBASE_CHECK
    following = next((m for m in _starts(rule, start, tz, span) if m >= wanted), None)
    if following is None:
        return start, end
    if not isinstance(start, datetime):
        shift = following.date() - start
        return following.date(), (end + shift if end is not None else None)
    new_start = localize(following, tz)
    if end is None:
        return new_start, None
    return new_start, (new_start.astimezone(UTC) + (as_utc(end) - as_utc(start))).astimezone(tz)


def _starts(rule: RepeatRule, start: When, tz: ZoneInfo, span: timedelta) -> Iterator[datetime]:
    """Yield the series' starts over a long span, or none when no twin years cover it."""
    try:
        yield from series(rule, start, tz, span=span, limit=REBASE_LIMIT)
    except ValueError:
        return


def _read_organizer(component: icalendar.Component) -> tuple[str, str]:
    contact = _one(component, "CONTACT")
    if contact is not None:
        text = str(contact).strip()
        url = _http(contact.params.get("ALTREP"))
        return text.removesuffix(", " + url).strip() if url else text, url
    organizer = _one(component, "ORGANIZER")
    if organizer is not None:
        return str(organizer.params.get("CN", "")).strip(), ""
    return "", ""


def _http(value: Any) -> str:
    text = str(value or "").strip()
    return text if is_http_url(text) else ""


def _read_category(component: icalendar.Component) -> str:
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


def _read_place(component: icalendar.Component) -> Place | None:
    name = str(_one(component, "LOCATION", "")).strip()[:200]
    geo = _one(component, "GEO")
    lat = getattr(geo, "latitude", None)
    lon = getattr(geo, "longitude", None)
    if not name and lat is None:
        return None
    return Place(name=name, lat=lat, lon=lon)


def _text_to_html(text: str) -> str:
    paragraphs = [p.strip() for p in text.strip().split("\n\n") if p.strip()]
    return "".join(
        "<p>" + "<br>".join(html.escape(line) for line in p.split("\n")) + "</p>"
        for p in paragraphs
    )
