"""iCalendar output (RFC 5545 + RFC 7986) of events.

Only the modules of klynge.ical know icalendar's types; the rest of Klynge sees model Events.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import icalendar
from icalendar import Calendar, vDuration, vText
from icalendar.prop import vInline

from klynge.ical.reader import CANCELLED_MARK, POSTPONED_MARK
from klynge.ical.timezones import vtimezone
from klynge.model import (
    DEFAULT_TIMEZONE,
    Event,
    Item,
    Place,
    as_utc,
    category_label,
    is_http_url,
    utcnow,
)
from klynge.render_guard import rendered
from klynge.series import Change, changed_span

PRODID = "-//Klynge//Klynge landsbykalender//DA"
_END = b"END:VCALENDAR\r\n"
_ISTATUS = {
    "confirmed": "CONFIRMED",
    "cancelled": "CANCELLED",
    "postponed": "TENTATIVE",
    "tentative": "TENTATIVE",  # a reserved date (issue 13): no title mark, unlike postponed
}


# One event's serialised VEVENT (or VEVENTs) and the time zones they name.
Piece = tuple[bytes, frozenset[str]]
# Equal zone sets are one object (`zone_set`): a tier of 50,000 pieces named two or three sets,
# and a set of its own per piece held 8.4 MB (tracemalloc). Bounded: hostile feeds name many.
_ZONE_SETS: dict[frozenset[str], frozenset[str]] = {}
MAX_ZONE_SETS = 1000


def write_calendar(
    events: Iterable[Item],
    *,
    name: str,
    url: str = "",
    description: str = "",
    refresh: timedelta = timedelta(hours=1),
    now: datetime | None = None,
) -> bytes:
    """Return the events as one iCalendar file (notices are left out), byte-stable.

    Each event is built and serialised on its own (klynge.render_guard): one that fails is
    left out and logged, and the calendar is still served.
    """
    only_events = [item for item in events if isinstance(item, Event)]
    pieces = rendered(only_events, lambda e: (e, vevent_piece(e)), "the calendar")
    chunks = calendar_chunks(
        pieces, name=name, url=url, description=description, refresh=refresh, now=now
    )
    return b"".join(chunks)


def vevent_piece(event: Event) -> Piece:
    """Return the event's VEVENT, then one override VEVENT per changed date, and their TZIDs.

    `calendar_chunks` lists such pieces to join; the aggregator keeps them per entry.
    """
    vevent = _vevent(event)
    body = [bytes(vevent.to_ical())]
    body.extend(bytes(override.to_ical()) for override in overrides(event))
    return b"".join(body), _tzids(vevent)


def calendar_chunks(
    pieces: Iterable[tuple[Event, Piece]],
    *,
    name: str,
    url: str = "",
    description: str = "",
    refresh: timedelta = timedelta(hours=1),
    now: datetime | None = None,
    ordered: bool = False,
) -> list[bytes]:
    """Return the bytes of one iCalendar file of `vevent_piece` pieces, as a list to join.

    The aggregator keeps each event's piece and joins them again after a change, so a
    change costs the events that changed; the time zones are decided here, and the order
    (by start, then id: `start_order`) unless the caller gives the pieces `ordered` so.
    A big tier serves the list without joining it (aggregator.publish.parts).
    """
    chosen = list(pieces) if ordered else sorted(pieces, key=lambda p: start_order(p[0]))
    main_zone = _main_zone([event for event, _ in chosen])
    head = bytes(_calendar_head(name, url, description, refresh, main_zone).to_ical())
    year = (now or utcnow()).year
    tzids = sorted({tzid for _, (_, zones) in chosen for tzid in zones})
    zones = [bytes(vtimezone(tzid, year).to_ical()) for tzid in tzids]
    # What Calendar.to_ical() would write with these components added, one piece at a time.
    bodies = (body for _, (body, _) in chosen)
    return [head.removesuffix(_END), *zones, *bodies, _END]


def start_order(event: Event) -> tuple[datetime, str]:
    """Return the key that orders a calendar's events: start in UTC, then id."""
    return as_utc(event.start, event.timezone), event.id


def event_calendar(event: Event, *, now: datetime | None = None) -> bytes:
    """Return a one-event calendar (for an event page's .ics link)."""
    return write_calendar([event], name=event.title, url=event.link, now=now)


def _calendar_head(
    name: str, url: str, description: str, refresh: timedelta, tzid: str
) -> Calendar:
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    # RFC 7986 NAME is TEXT; icalendar does not know it (nor the X- names) and would write a
    # line break in the name raw, which it then refuses: give them as text to be escaped.
    cal.add("name", vText(name))
    cal.add("x-wr-calname", vText(name))
    cal.add("x-wr-timezone", tzid)
    if description:
        cal.add("description", vText(description))
        cal.add("x-wr-caldesc", vText(description))
    if is_http_url(url):  # a feed's link is untrusted text (a CR/LF breaks the content line)
        cal.add("url", url, parameters={"VALUE": "URI"})
    cal.add("refresh-interval", refresh, parameters={"VALUE": "DURATION"})
    cal.add("x-published-ttl", vDuration(refresh))  # the older name Outlook and Apple read
    return cal


def _main_zone(events: list[Event]) -> str:
    counts = Counter(event.timezone for event in events)
    if not counts:
        return DEFAULT_TIMEZONE
    return min(counts, key=lambda tzid: (-counts[tzid], tzid))


def _vevent(event: Event) -> icalendar.Event:
    vevent = icalendar.Event()
    vevent.add("uid", event.id)  # the entry id never changes (design.md, feed format)
    vevent.add("dtstamp", event.updated.astimezone(UTC))  # not "now": builds stay byte-stable
    vevent.add("sequence", event.sequence)
    if event.created is not None:
        vevent.add("created", event.created.astimezone(UTC))
    vevent.add("last-modified", event.updated.astimezone(UTC))
    vevent.add("summary", _marked_title(event))
    _add_times(vevent, event)
    if event.rrule is not None:
        # The model's canonical RFC 5545 text, checked part by part (klynge.repeat_rule).
        vevent.add("rrule", vInline(event.rrule.text))
    _add_exception_dates(vevent, event)
    vevent.add("status", _ISTATUS[event.status])
    _add_place(vevent, event.place)
    _add_details(vevent, event)
    vevent.add("class", "PUBLIC")
    return vevent


def _add_exception_dates(vevent: icalendar.Event, event: Event) -> None:
    """Write EXDATE and RDATE (RFC 5545 §3.8.5.1-2): one line each, in the series' zone."""
    params = {"VALUE": "DATE"} if event.all_day else {}
    if event.exdates:
        vevent.add("exdate", list(event.exdates), parameters=params)
    if event.rdates:
        vevent.add("rdate", list(event.rdates), parameters=params)


def overrides(event: Event) -> list[icalendar.Event]:
    """Return one VEVENT per changed date of a series: same UID, RECURRENCE-ID, own SEQUENCE.

    A cancelled date is an override with STATUS:CANCELLED, as Google, Apple and Outlook
    write it (RFC 5545 §3.8.1.11), so calendars show it struck through rather than lose it.
    """
    return [_override(event, change) for change in event.changes]


def _override(event: Event, change: Change) -> icalendar.Event:
    start, end = changed_span(event, change)
    instance = replace(
        event,
        title=change.title or event.title,
        description=change.description or event.description,
        place=change.place if change.place is not None else event.place,
        status="cancelled" if change.cancelled else event.status,
        # Never below the series' own: some clients drop an override older than its master.
        sequence=max(event.sequence, change.sequence),
        start=start,
        end=end if event.end is not None or change.end is not None else None,
        rrule=None,
        exdates=(),
        rdates=(),
        changes=(),
    )
    vevent = _vevent(instance)
    params = {"VALUE": "DATE"} if event.all_day else {}
    vevent.add("recurrence-id", change.original, parameters=params)
    return vevent


def _marked_title(event: Event) -> str:
    if event.status == "cancelled":
        return CANCELLED_MARK + event.title
    if event.status == "postponed":
        return POSTPONED_MARK + event.title
    return event.title


def _add_times(vevent: icalendar.Event, event: Event) -> None:
    if event.all_day:
        # RFC 5545 §3.6.1: an all-day end is the exclusive next day.
        vevent.add("dtstart", event.start)
        vevent.add("dtend", event.effective_end)
    else:
        vevent.add("dtstart", event.start)
        if event.end is not None:
            vevent.add("dtend", event.end)


def _add_place(vevent: icalendar.Event, place: Place | None) -> None:
    if place is None:
        return
    if place.full:
        vevent.add("location", place.full)
    if place.lat is not None and place.lon is not None:
        vevent.add("geo", (place.lat, place.lon))


def _add_details(vevent: icalendar.Event, event: Event) -> None:
    text = html_to_text(event.description)
    if text:
        vevent.add("description", text)
    if event.organizer:
        contact = ", ".join(p for p in (event.organizer, event.organizer_url) if p)
        params = {"ALTREP": event.organizer_url} if event.organizer_url else {}
        vevent.add("contact", contact, parameters=params)
    if event.link or event.url:
        vevent.add("url", event.link or event.url, parameters={"VALUE": "URI"})
    if event.category:
        vevent.add("categories", [category_label(event.category, "da")])


def zone_set(names: Iterable[str]) -> frozenset[str]:
    """Return these zone names as a frozenset, the same object as an equal set's before."""
    found = frozenset(names)
    if len(_ZONE_SETS) < MAX_ZONE_SETS:
        return _ZONE_SETS.setdefault(found, found)
    return _ZONE_SETS.get(found, found)


def _tzids(vevent: icalendar.Event) -> frozenset[str]:
    found = []
    for key in ("DTSTART", "DTEND"):
        prop = vevent.get(key)
        if prop is not None and "TZID" in prop.params:
            found.append(str(prop.params["TZID"]))
    return zone_set(found)


class _TextExtractor(HTMLParser):
    """Collect plain text from sanitised HTML, keeping paragraphs, breaks and link targets."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.href = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag == "a":
            self.href = dict(attrs).get("href") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag in ("p", "blockquote", "ul", "ol"):
            self.parts.append("\n\n")
        elif tag == "a" and self.href:
            self.parts.append(f" ({self.href})")
            self.href = ""

    def handle_data(self, data: str) -> None:
        if self.href and data.strip() == self.href:
            self.href = ""  # the link text is the address already
        self.parts.append(data)


def html_to_text(markup: str) -> str:
    """Return readable plain text for a DESCRIPTION from the model's sanitised HTML."""
    extractor = _TextExtractor()
    extractor.feed(markup)
    extractor.close()
    text = "".join(extractor.parts)
    return re.sub(r"\n{3,}", "\n\n", re.sub(r"[ \t]*\n[ \t]*", "\n", text)).strip()
