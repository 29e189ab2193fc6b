"""Rule-based VTIMEZONE components built from the IANA zone's current rules.

Outlook mishandles date-list (RDATE) zones for recurring events (design.md), and icalendar's
Timezone.from_tzinfo writes such lists, so the yearly rules are derived here from zoneinfo's
offset changes and written as RRULE:FREQ=YEARLY;BYMONTH=…;BYDAY=….
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
from icalendar import vRecur

from klynge.model import zone

_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


@lru_cache(maxsize=64)
def _offset_changes(tzid: str, year: int) -> tuple[tuple[datetime, timedelta, timedelta], ...]:
    """Return (UTC instant, offset before, offset after) of each offset change in `year`."""
    tz = zone(tzid)
    changes = []
    day = datetime(year, 1, 1, tzinfo=UTC)
    before = _offset(tz, day)
    for _ in range(366 if calendar.isleap(year) else 365):
        after = _offset(tz, day + timedelta(days=1))
        if after != before:
            changes.append((_bisect_change(tz, day, before), before, after))
        day, before = day + timedelta(days=1), after
    return tuple(changes)


def _offset(tz: ZoneInfo, instant: datetime) -> timedelta:
    offset = instant.astimezone(tz).utcoffset()
    assert offset is not None
    return offset


def _bisect_change(tz: ZoneInfo, day: datetime, before: timedelta) -> datetime:
    lo, hi = 0, 24 * 60  # minutes after `day`; the offset changes in (lo, hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _offset(tz, day + timedelta(minutes=mid)) == before:
            lo = mid
        else:
            hi = mid
    return day + timedelta(minutes=hi)


def _yearly_rule(onset: datetime) -> tuple[int, int, int, str]:
    """Return (month, nth weekday, weekday, wall time) of a local onset; nth -1 means last."""
    last = calendar.monthrange(onset.year, onset.month)[1]
    nth = -1 if onset.day + 7 > last else (onset.day - 1) // 7 + 1
    return onset.month, nth, onset.weekday(), onset.strftime("%H%M%S")


def _rule_date(year: int, month: int, nth: int, weekday: int) -> date:
    days = [
        d
        for d in calendar.Calendar().itermonthdates(year, month)
        if d.month == month and d.weekday() == weekday
    ]
    return days[nth - 1] if nth > 0 else days[nth]


@lru_cache(maxsize=64)
def vtimezone(tzid: str, year: int) -> icalendar.Timezone:
    """Return a rule-based VTIMEZONE (yearly RRULEs) for the zone's rules in force in `year`.

    Outlook mishandles date-list (RDATE) zones for recurring events (design.md), so the
    current rules are written as RRULEs; a zone whose changes follow no yearly weekday rule
    falls back to icalendar's date-list form.
    """
    years = [_offset_changes(tzid, y) for y in range(year, year + 4)]
    vtz = icalendar.Timezone()
    vtz.add("tzid", tzid)
    vtz.add("x-lic-location", tzid)
    if not any(years):
        vtz.add_component(_fixed_observance(zone(tzid), year))
        return vtz
    rules = [[_change_rule(change) for change in changes] for changes in years]
    if len(rules[0]) != 2 or any(r != rules[0] for r in rules):
        return icalendar.Timezone.from_tzinfo(zone(tzid), tzid, first_date=date(year - 1, 1, 1))
    for change in years[0]:
        vtz.add_component(_ruled_observance(zone(tzid), change))
    return vtz


def _change_rule(change: tuple[datetime, timedelta, timedelta]) -> tuple[Any, ...]:
    instant, before, after = change
    return (*_yearly_rule((instant + before).replace(tzinfo=None)), before, after)


def _fixed_observance(tz: ZoneInfo, year: int) -> icalendar.cal.Component:
    moment = datetime(year, 1, 1, tzinfo=UTC).astimezone(tz)
    observance = icalendar.TimezoneStandard()
    observance.add("dtstart", datetime(1970, 1, 1))
    observance.add("tzoffsetfrom", moment.utcoffset())
    observance.add("tzoffsetto", moment.utcoffset())
    observance.add("tzname", moment.tzname() or "")
    return observance


def _ruled_observance(
    tz: ZoneInfo, change: tuple[datetime, timedelta, timedelta]
) -> icalendar.cal.Component:
    instant, before, after = change
    month, nth, weekday, wall = _yearly_rule((instant + before).replace(tzinfo=None))
    moment = instant.astimezone(tz)
    daylight = bool(moment.dst())
    observance = icalendar.TimezoneDaylight() if daylight else icalendar.TimezoneStandard()
    # DTSTART in 1970, as Mozilla's and Google's zones do: the rule then covers every event.
    first = _rule_date(1970, month, nth, weekday)
    observance.add("dtstart", datetime.strptime(f"{first:%Y%m%d}{wall}", "%Y%m%d%H%M%S"))
    observance.add(
        "rrule", vRecur(freq="YEARLY", bymonth=month, byday=f"{nth}{_WEEKDAYS[weekday]}")
    )
    observance.add("tzoffsetfrom", before)
    observance.add("tzoffsetto", after)
    observance.add("tzname", moment.tzname() or "")
    return observance
