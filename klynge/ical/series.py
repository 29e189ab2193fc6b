"""Repeat rules of an .ics source fitted to the model: bounded ahead, old series moved forward."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from klynge.messages import Message, define
from klynge.model import When, as_utc, localize, zone
from klynge.repeat_rule import RepeatRule, Until
from klynge.rrules import naive_start, series, wall_starts

HORIZON = timedelta(days=548)  # unbounded rules from .ics sources end 18 months from now
PAST = timedelta(days=90)  # an old series keeps its occurrences of the last 90 days
REBASE_AFTER = timedelta(days=365)  # older open-ended series start again at a recent occurrence
REBASE_LIMIT = 100_000  # a daily series over the longest span that has twin years (klynge.rrules)
BOUNDED = define("ical.bounded", "the open-ended repeat rule was bounded at %(date)s (18 months).")


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
        start, end = _rebase(rule, start, end, tzid, now - PAST)
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
