"""iCalendar input: events of an .ics source (aggregator kind "ics") as model Events.

The components of one UID are read together:

* a **single event or a series** becomes one model Event; an open-ended rule is bounded 18
  months ahead (klynge.ical.series). A series' EXDATE, RDATE and single-date RECURRENCE-ID
  overrides (moved, retitled, STATUS:CANCELLED) become the model's excluded, extra and changed
  dates (klynge.ical.exceptions), so the series keeps the id of its UID.
* what the model cannot carry (a second RRULE, RANGE=THISANDFUTURE, overrides without their
  series, more exceptions than the model's cap, a rule the model refuses such as a sparse
  YEARLY;INTERVAL=4 whose five years hold one date …) is expanded by `recurring_ical_events`
  into single events, one per occurrence from 90 days ago to 18 months ahead, each with the id
  `<series id>/<original start>` (`_expanded`).
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, date, datetime
from functools import partial
from typing import Any
from urllib.parse import quote

import icalendar
from icalendar import Calendar

from klynge.errors import FeedError, InvalidValue, ValidationError, problem_of
from klynge.ical import exceptions
from klynge.ical.expansion import occurrences
from klynge.ical.fields import (
    CANCELLED_MARK,
    POSTPONED_MARK,
    UNTITLED,
    category_term,
    http_url,
    one,
    optional,
    read_category,
    read_organizer,
    read_place,
    read_status,
    read_times,
    text_to_html,
    utc,
)
from klynge.ical.series import HORIZON, PAST, bound_rule
from klynge.messages import Message, define
from klynge.model import DEFAULT_TIMEZONE, TEXT_MAX, TITLE_MAX, Event, utcnow
from klynge.repeat_rule import RepeatRule, parse_rrule

__all__ = [
    "CANCELLED_MARK",
    "POSTPONED_MARK",
    "TOO_MANY_EVENTS",
    "UNTITLED",
    "category_term",
    "read_calendar",
]

EXPANDED_LIMIT = 500  # occurrences of one expanded series, as the model's COUNT
DATES_LIMIT = 10_000  # events from expanded series in one calendar, without `max_events`
_SAFE_ID = "@:/._-~+=!$&'()*,;"
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
NO_UID = define("ical.no_uid", "it has no UID; its id was made from its start, title and place.")
NO_START = define("ical.no_start", "it has no start (DTSTART).")
NO_DATES = define("ical.no_dates", "it has no date from %(start)s to %(end)s.")
TOO_MANY_DATES = define(
    "ical.too_many_dates",
    "The calendar's repeating events have more than %(limit)s dates in all; "
    "only the first %(limit)s were read.",
)
UNEXPANDABLE = define(
    "ical.unexpandable", "its dates (RRULE, RDATE, EXDATE, RECURRENCE-ID) cannot be worked out."
)


def read_calendar(
    data: bytes,
    *,
    default_timezone: str = DEFAULT_TIMEZONE,
    now: datetime | None = None,
    max_events: int | None = None,
    url: str = "",
) -> tuple[list[Event], list[Message]]:
    """Return the events of an .ics source and the problems met.

    Raises FeedError when the bytes are not an iCalendar file at all. `url` (the source's)
    goes into the ids made for events without UID. `max_events` reads only the first events
    of a longer file, saying so in the first problem.
    """
    # icalendar warns about guessed time zone ids (GloballyUniqueTZIDGuessed) on input that
    # is the publisher's, not ours: a warning would only reach the service's stderr.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cal = _parse(data)
        budget = max_events if max_events is not None else DATES_LIMIT
        reader = _Reader(cal, default_timezone, now or utcnow(), url, budget)
        components = cal.walk("VEVENT")
        if max_events is not None and len(components) > max_events:
            limit = {"total": len(components), "limit": max_events}
            reader.problems.append(Message(TOO_MANY_EVENTS, limit))
            components = components[:max_events]
        for group in reader.groups(components):
            reader.read_group(group)
    return list(reader.events.values()), reader.problems


def _parse(data: bytes) -> Calendar:
    try:
        cal = Calendar.from_ical(data)
    except Exception as e:
        # icalendar raises many kinds on hostile input (found by tests/fuzz/: a TypeError for
        # CATEGORIES;VALUE=DATE), besides ValueError, IndexError, KeyError, UnicodeDecodeError.
        raise FeedError(Message(NOT_ICAL, {"detail": str(e)[:200]})) from e
    if not isinstance(cal, Calendar) or cal.name != "VCALENDAR":
        raise FeedError(Message(NO_VCALENDAR))
    return cal


class _Reader:
    """One calendar's reading: its events by id and the problems met."""

    def __init__(
        self, cal: Calendar, default_tz: str, now: datetime, url: str, budget: int
    ) -> None:
        self.cal, self.default_tz, self.now, self.url = cal, default_tz, now, url
        self.limit = self.budget = budget  # events expanded series may add (bounded memory)
        self.cut = False
        self.events: dict[str, Event] = {}
        self.problems: list[Message] = []

    def groups(self, components: Iterable[icalendar.Component]) -> list[list[Any]]:
        """Return the components grouped by UID (made from their fields where missing)."""
        by_uid: dict[str, list[Any]] = {}
        for component in components:
            uid = str(one(component, "UID", "")).strip()
            if not uid:
                uid = self._made_uid(component)
                self.problems.append(Message(EVENT, _label(component, uid), Message(NO_UID)))
                component["UID"] = uid
            _drop_empty_rules(component)
            by_uid.setdefault(uid, []).append(component)
        return list(by_uid.values())

    def _made_uid(self, component: icalendar.Component) -> str:
        # Stable across fetches: the same source and the same event give the same id.
        digest = hashlib.sha256(self.url.encode())
        for name in (
            "DTSTART",
            "DTEND",
            "DURATION",
            "SUMMARY",
            "LOCATION",
            "RRULE",
            "RECURRENCE-ID",
        ):
            digest.update(b"\0" + _raw(component.get(name)))
        return f"made-{digest.hexdigest()[:32]}"

    def read_group(self, group: list[Any]) -> None:
        """Read the components of one UID as one series (with its exceptions) or its dates."""
        for component in [c for c in group if "DTSTART" not in c]:
            uid = str(one(component, "UID")).strip()
            self.problems.append(Message(SKIPPED, _label(component, uid), Message(NO_START)))
            group.remove(component)
        if not group:
            return
        if not _has_exceptions(group):
            refused = [c for c in group if not self._read_plain(c)]
            if not refused:
                return
            group = refused[:1]  # a rule the model refuses: its dates, one by one
        elif exceptions.native(group) and self._read_series(group):
            return
        self._expanded(group)

    def _read_series(self, group: list[Any]) -> bool:
        """Read a series and its exceptions as one Event (two when split); False if not."""
        master = next(c for c in group if "RECURRENCE-ID" not in c)
        uid = str(one(master, "UID")).strip()
        notes: list[Message] = []
        split = exceptions.future(group)
        try:
            event = self._event(master, _event_id(uid), notes, rule=True)
            tail = None
            if split is not None:  # the rest of the series from RANGE=THISANDFUTURE on
                tail = self._event(split, f"{_event_id(uid)}/{_stamp(split)}", notes, rule=False)
        except (ValidationError, ValueError, TypeError, KeyError, AttributeError, OverflowError):
            return False  # expanded instead, which says in words what is wrong
        found = exceptions.fit(event, group, self.default_tz, self.now, notes, tail)
        if found is None:
            return False
        for part in found:
            self._keep(part)
        label = _label(master, uid)
        self.problems.extend(Message(EVENT, label, note) for note in dict.fromkeys(notes))
        return True

    def _read_plain(self, component: Any) -> bool:
        """Read one component as one Event; False when the model refuses only its rule."""
        uid = str(one(component, "UID")).strip()
        label = _label(component, uid)
        notes: list[Message] = []
        try:
            self._keep(self._event(component, _event_id(uid), notes, rule=True))
        except ValidationError as e:
            if "rrule" in e.fields and "RRULE" in component:
                return False
            self.problems.append(Message(SKIPPED, label, e.detail))
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as e:
            self.problems.append(Message(SKIPPED, label, problem_of(e)))
        self.problems.extend(Message(EVENT, label, note) for note in notes)
        return True

    def _expanded(self, group: list[Any]) -> None:
        uid = str(one(group[0], "UID")).strip()
        label = _label(group[0], uid)
        notes: list[Message] = []
        try:
            found = occurrences(self.cal, group, self.default_tz, self.now)
        except (ValidationError, InvalidValue) as e:  # a rule Klynge refuses, in its words
            self.problems.append(Message(SKIPPED, label, e.detail))
            return
        except Exception as e:  # recurring_ical_events on a publisher's broken dates
            cause = problem_of(e)
            self.problems.append(Message(SKIPPED, label, Message(UNEXPANDABLE, cause=cause)))
            return
        if not found:
            window = {
                "start": f"{self.now - PAST:%Y-%m-%d}",
                "end": f"{self.now + HORIZON:%Y-%m-%d}",
            }
            self.problems.append(Message(EVENT, label, Message(NO_DATES, window)))
        # RANGE=THISANDFUTURE gives many occurrences one RECURRENCE-ID: their start tells apart.
        stamps = Counter(_stamp(o) for o in found)
        taken = found[: min(EXPANDED_LIMIT, self.budget)]
        if len(taken) < min(len(found), EXPANDED_LIMIT) and not self.cut:
            self.cut = True  # said once, when the budget runs out
            self.problems.append(Message(TOO_MANY_DATES, {"limit": self.limit}))
        self.budget -= len(taken)
        for occurrence in taken:
            stamp = _stamp(occurrence)
            if stamps[stamp] > 1:
                stamp += "/" + _stamp(occurrence, "DTSTART")
            event_id = f"{_event_id(uid)}/{stamp}"
            try:
                self._keep(self._event(occurrence, event_id, notes, rule=False))
            except ValidationError as e:
                self.problems.append(Message(SKIPPED, _label(occurrence, uid), e.detail))
            except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as e:
                self.problems.append(Message(SKIPPED, _label(occurrence, uid), problem_of(e)))
        self.problems.extend(Message(EVENT, label, note) for note in dict.fromkeys(notes))

    def _event(self, component: Any, event_id: str, notes: list[Message], *, rule: bool) -> Event:
        if "DTSTART" not in component:
            raise InvalidValue(Message(NO_START))
        tzid, start, end = read_times(component, self.default_tz)
        status, title = read_status(component)
        repeat = _read_rule(component) if rule else None
        if repeat is not None:
            repeat, start, end, note = bound_rule(repeat, start, end, tzid, self.now)
            if note:
                notes.append(note)
        return Event(
            id=event_id,
            title=(title or UNTITLED)[:TITLE_MAX],
            updated=self._updated(component, notes),
            created=optional(
                "CREATED", lambda: utc(one(component, "CREATED"), self.default_tz), None, notes
            ),
            category=optional("CATEGORIES", lambda: read_category(component), "", notes),
            organizer=optional("ORGANIZER", lambda: read_organizer(component), ("", ""), notes)[0],
            organizer_url=optional("CONTACT", lambda: read_organizer(component), ("", ""), [])[1],
            url=optional("URL", lambda: http_url(one(component, "URL")), "", notes),
            sequence=optional(
                "SEQUENCE", lambda: max(0, int(one(component, "SEQUENCE", 0))), 0, notes
            ),
            start=start,
            end=end,
            all_day=not isinstance(start, datetime),
            timezone=tzid,
            description=text_to_html(str(one(component, "DESCRIPTION", "")))[:TEXT_MAX],
            status=status,
            rrule=repeat,
            place=optional("LOCATION/GEO", lambda: read_place(component), None, notes),
        )

    def _updated(self, component: Any, notes: list[Message]) -> datetime:
        for name in ("LAST-MODIFIED", "DTSTAMP"):
            read = partial(utc, one(component, name), self.default_tz)
            value = optional(name, read, None, notes)
            if value is not None:
                return value
        return self.now

    def _keep(self, event: Event) -> None:
        other = self.events.get(event.id)
        if other is None or (event.updated, event.sequence) > (other.updated, other.sequence):
            self.events[event.id] = event


def _drop_empty_rules(component: icalendar.Component) -> None:
    # "RRULE:" with nothing after it (calendarlabs.com writes it): no rule, one event.
    prop = component.get("RRULE")
    props = prop if isinstance(prop, list) else [prop] if prop is not None else []
    kept = [p for p in props if _raw(p).strip()]
    if len(kept) != len(props):
        del component["RRULE"]
        for p in kept:
            component.add("RRULE", p)


def _has_exceptions(group: list[Any]) -> bool:
    if any("RECURRENCE-ID" in c for c in group):
        return True
    return any("EXDATE" in c or "RDATE" in c or isinstance(c.get("RRULE"), list) for c in group)


def _read_rule(component: icalendar.Component) -> RepeatRule | None:
    prop = component.get("RRULE")
    if prop is None:
        return None
    # icalendar re-serialises what it read: the text is ASCII or the rule is refused.
    rule = parse_rrule(prop.to_ical().decode("ascii", "replace"))
    start = getattr(one(component, "DTSTART"), "dt", None)
    if isinstance(rule.until, datetime) and not isinstance(start, datetime):
        # An all-day series with a UTC UNTIL (Outlook writes 23:00Z): RFC 5545 compares the
        # date occurrences as midnight with UNTIL, so the last date is UNTIL's own UTC date;
        # its date in the source's zone could be the next day, one occurrence too many.
        until = rule.until.astimezone(UTC) if rule.until.tzinfo else rule.until
        rule = replace(rule, until=until.date())
    return rule


def _event_id(uid: str) -> str:
    return uid if _URI_RE.match(uid) else "urn:x-ics:" + quote(uid, safe=_SAFE_ID)


def _stamp(occurrence: Any, name: str = "RECURRENCE-ID") -> str:
    value = getattr(occurrence.get(name), "dt", None) or occurrence["DTSTART"].dt
    if isinstance(value, datetime):
        moment = value if value.tzinfo is None else value.astimezone(UTC)
        return moment.strftime("%Y%m%dT%H%M%S") + ("Z" if value.tzinfo else "")
    return value.strftime("%Y%m%d") if isinstance(value, date) else str(value)


def _raw(prop: Any) -> bytes:
    if prop is None:
        return b""
    try:
        return bytes(prop.to_ical())
    except Exception:  # a broken property: its text as given
        return str(prop).encode("utf-8", "replace")


def _label(component: Any, uid: str) -> dict[str, str]:
    return {"uid": uid or "(no UID)", "summary": str(one(component, "SUMMARY", "")).strip()[:60]}
