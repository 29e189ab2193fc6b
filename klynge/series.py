"""The exceptions of a series: excluded dates, extra dates and changed single occurrences.

A series is an Event with a repeat rule. As in RFC 5545 (§3.8.5.1 EXDATE, §3.8.5.2 RDATE,
§3.8.4.4 RECURRENCE-ID), its dates are the rule's starts plus the extra dates, minus the
excluded dates; a `Change` then replaces one of those dates, named by its original start: another
start or end, place, title or description, or cancelled (shown as cancelled, not hidden).

Every date is held in the series' own zone (an aware datetime, or a date for all-day series)
and compared as an instant in UTC, so a date named across a DST change is the same date
whichever offset it was written with. Bounded: at most `MAX_EXCEPTIONS` of them per series.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING

from klynge.messages import Message, define
from klynge.model import (
    MAX_RRULE_SPAN,
    TEXT_MAX,
    TITLE_MAX,
    YEARS,
    Place,
    When,
    clean_text,
    format_when,
    localize,
    sanitise_html,
    zone,
)
from klynge.repeat_rule import RepeatRule
from klynge.rrules import series

if TYPE_CHECKING:
    from klynge.model import Event

MAX_EXCEPTIONS = 500  # excluded, extra and changed dates together, per series
RULE_LIMIT = 2_000  # starts of one rule considered (COUNT is at most 500; UNTIL five years)
SERIES_SPAN = MAX_RRULE_SPAN + timedelta(days=1)  # the model refuses longer series

# Each constant is a message code (Danish in klynge/locale).
NOT_A_SERIES = define(
    "series.not_a_series", "Only a repeating event can have excluded, extra or changed dates."
)
TOO_MANY = define(
    "series.too_many",
    "A series may have at most %(limit)s excluded, extra and changed dates together.",
)
BAD_DATE = define(
    "series.bad_date",
    "%(when)s is not a date like the series' start: a date (YYYY-MM-DD) for an all-day "
    "series, else a date and time with an offset.",
)
BAD_YEAR = define("series.bad_year", "%(when)s is outside the years 1900 to 2200.")
NOT_A_DATE = define("series.not_a_date", "%(when)s is not a date of this series.")
TWICE = define("series.twice", "The date %(when)s is changed twice; change each date once.")
END_BEFORE_START = define(
    "series.end_before_start", "The changed date %(when)s ends before it starts."
)
LONG_TITLE = define(
    "series.long_title", "The title of the changed date %(when)s is too long; at most 200."
)
LONG_TEXT = define(
    "series.long_text", "The description of the changed date %(when)s is too long; at most 20000."
)
BAD_SEQUENCE = define(
    "series.bad_sequence", "The sequence of the changed date %(when)s must be a whole number ≥ 0."
)


@dataclass(frozen=True, slots=True)
class Change:
    """One date of a series changed: named by its original start (RECURRENCE-ID).

    `start` None keeps the original start; `end` None keeps the series' duration from the
    (new) start; an empty `title` or `description` and a None `place` keep the series' own.
    `sequence` is the change's own revision (iCalendar SEQUENCE of its override).
    """

    original: When
    start: When | None = None
    end: When | None = None
    title: str = ""
    description: str = ""
    place: Place | None = None
    cancelled: bool = False
    sequence: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "title", clean_text(self.title))
        object.__setattr__(self, "description", sanitise_html(self.description))

    def with_times(self, **values: When | None) -> Change:
        """Return the change with `original`, `start` or `end` replaced (normalising)."""
        return replace(self, **values)  # type: ignore[arg-type]


def key(value: When) -> When:
    """Return the identity of a date of a series: the UTC instant, or the date itself."""
    return value.astimezone(UTC) if isinstance(value, datetime) else value


def has_exceptions(event: Event) -> bool:
    """Tell whether the event has any excluded, extra or changed dates."""
    return bool(event.exdates or event.rdates or event.changes)


def rule_starts(event: Event) -> tuple[When, ...]:
    """Return the starts its rule gives an event, in its zone (aware datetimes, or dates)."""
    if event.rrule is None:
        return (event.start,)
    return _rule_starts(event.rrule, event.start, event.timezone, event.all_day)


@lru_cache(maxsize=512)
def _rule_starts(rule: RepeatRule, start: When, tz: str, all_day: bool) -> tuple[When, ...]:
    tzinfo = zone(tz)
    starts = series(rule, start, tzinfo, span=SERIES_SPAN, limit=RULE_LIMIT)
    if all_day:
        return tuple(naive.date() for naive in starts)
    return tuple(localize(naive, tzinfo) for naive in starts)


def dates(event: Event) -> list[When]:
    """Return the series' dates before changes: rule starts and extra dates, minus excluded."""
    excluded = {key(value) for value in event.exdates}
    merged: dict[When, When] = {}
    for value in (*rule_starts(event), *event.rdates):
        merged.setdefault(key(value), value)
    return [merged[k] for k in sorted(merged) if k not in excluded]


def changed(event: Event) -> dict[When, Change]:
    """Return the event's changes by the key of their original start."""
    return {key(change.original): change for change in event.changes}


def duration(event: Event) -> timedelta:
    """Return the length of one occurrence (elapsed time; days for all-day series)."""
    end, start = event.effective_end, event.start
    if isinstance(end, datetime) and isinstance(start, datetime):
        return end.astimezone(UTC) - start.astimezone(UTC)
    return end - start


def changed_span(event: Event, change: Change) -> tuple[When, When]:
    """Return the start and end of a changed date (its own, or the series' duration)."""
    start = change.start if change.start is not None else change.original
    end = change.end if change.end is not None else _after(start, duration(event))
    return start, end


def end_of(event: Event, start: When) -> When:
    """Return the end of an unchanged date of the series that starts at `start`."""
    return _after(start, duration(event))


def _after(start: When, length: timedelta) -> When:
    if isinstance(start, datetime):
        return (start.astimezone(UTC) + length).astimezone(start.tzinfo)
    return start + length


def last_end(event: Event) -> When:
    """Return the latest end of any date of the series (changed ones at their new time)."""
    ends: list[When] = [end_of(event, start) for start in dates(event)[-1:]]
    ends.extend(changed_span(event, change)[1] for change in event.changes)
    if not ends:  # every date excluded: the series ends where it began
        return event.effective_end
    return max(ends, key=key)


Problems = list[tuple[str, Message]]  # (field, what is wrong), one per exception left out


def series_errors(event: Event) -> dict[str, Message]:
    """Normalise the event's exceptions into its zone and return what is wrong with them."""
    if not has_exceptions(event):
        return {}
    if event.rrule is None:
        name = "changes" if event.changes else "rdates" if event.rdates else "exdates"
        return {name: Message(NOT_A_SERIES)}
    total = len(event.exdates) + len(event.rdates) + len(event.changes)
    if total > MAX_EXCEPTIONS:
        return {"exceptions": Message(TOO_MANY, {"limit": str(MAX_EXCEPTIONS)})}
    exdates, rdates, changes, problems = _sifted(event, event.exdates, event.rdates, event.changes)
    if problems:
        return dict(reversed(problems))  # the first problem of each field
    object.__setattr__(event, "exdates", exdates)
    object.__setattr__(event, "rdates", rdates)
    object.__setattr__(event, "changes", changes)
    return {}


def sift(
    event: Event,
    exdates: Iterable[When] = (),
    rdates: Iterable[When] = (),
    changes: Iterable[Change] = (),
) -> tuple[Event, Problems]:
    """Return the event with each good exception added, and a problem per one left out.

    For readers of untrusted data (feeds, calendars): a bad exception costs only itself, never
    the series. Exceptions past `MAX_EXCEPTIONS` are left out with one problem.
    """
    wanted = (tuple(exdates), tuple(rdates), tuple(changes))
    if not any(wanted):
        return event, []
    if event.rrule is None:
        return event, [("exceptions", Message(NOT_A_SERIES))]
    problems: Problems = []
    kept = _capped(wanted, problems)
    new_exdates, new_rdates, new_changes, found = _sifted(event, *kept)
    problems.extend(found)
    fixed = replace(event, exdates=new_exdates, rdates=new_rdates, changes=new_changes)
    return fixed, problems


def _capped(
    wanted: tuple[tuple[When, ...], tuple[When, ...], tuple[Change, ...]], problems: Problems
) -> tuple[tuple[When, ...], tuple[When, ...], tuple[Change, ...]]:
    exdates, rdates, changes = wanted
    if len(exdates) + len(rdates) + len(changes) <= MAX_EXCEPTIONS:
        return wanted
    problems.append(("exceptions", Message(TOO_MANY, {"limit": str(MAX_EXCEPTIONS)})))
    rdates = rdates[:MAX_EXCEPTIONS]
    exdates = exdates[: MAX_EXCEPTIONS - len(rdates)]
    return exdates, rdates, changes[: MAX_EXCEPTIONS - len(rdates) - len(exdates)]


def _sifted(
    event: Event, exdates: Iterable[When], rdates: Iterable[When], changes: Iterable[Change]
) -> tuple[tuple[When, ...], tuple[When, ...], tuple[Change, ...], Problems]:
    """Return the good exceptions normalised (in the zone, sorted, once each) and the bad."""
    problems: Problems = []
    extra = _good_dates(event, rdates, "rdates", problems, None)
    known = {key(value) for value in (*rule_starts(event), *extra)}
    excluded = _good_dates(event, exdates, "exdates", problems, known)
    left = known - {key(value) for value in excluded}
    return excluded, extra, _good_changes(event, changes, left, problems), problems


def _good_dates(
    event: Event,
    values: Iterable[When],
    name: str,
    problems: Problems,
    known: set[When] | None,
) -> tuple[When, ...]:
    found: dict[When, When] = {}
    for value in values:
        normal, problem = _in_series(event, value)
        if problem is None and known is not None and key(normal) not in known:
            problem = Message(NOT_A_DATE, {"when": format_when(normal)})
        if problem is not None:
            problems.append((name, problem))
        else:
            found.setdefault(key(normal), normal)
    return tuple(found[k] for k in sorted(found))


def _good_changes(
    event: Event, changes: Iterable[Change], known: set[When], problems: Problems
) -> tuple[Change, ...]:
    normal: dict[When, Change] = {}
    for change in changes:
        fixed, problem = _change(event, change)
        if problem is None:
            shown = {"when": format_when(fixed.original)}
            if key(fixed.original) in normal:
                problem = Message(TWICE, shown)
            elif key(fixed.original) not in known:
                problem = Message(NOT_A_DATE, shown)
        if problem is not None:
            problems.append(("changes", problem))
        else:
            normal[key(fixed.original)] = fixed
    return tuple(normal[k] for k in sorted(normal))


def _in_series(event: Event, value: object) -> tuple[When, Message | None]:
    """Return `value` as a date of the series' kind in its zone, or a problem."""
    shown = format_when(value) if isinstance(value, date) else str(value)[:40]
    if event.all_day:
        good = isinstance(value, date) and not isinstance(value, datetime)
    else:
        good = isinstance(value, datetime) and value.tzinfo is not None
    if not good or not isinstance(value, date):
        return event.start, Message(BAD_DATE, {"when": shown})
    if value.year not in YEARS:
        return value, Message(BAD_YEAR, {"when": shown})
    if isinstance(value, datetime):
        return value.astimezone(UTC).astimezone(zone(event.timezone)), None
    return value, None


def _change(event: Event, change: Change) -> tuple[Change, Message | None]:
    times: dict[str, When | None] = {}
    for name in ("original", "start", "end"):
        value = getattr(change, name)
        if value is None:
            times[name] = None
            continue
        times[name], problem = _in_series(event, value)
        if problem is not None:
            return change, problem
    fixed = change.with_times(**times)
    return fixed, _change_problem(event, fixed)


def _change_problem(event: Event, change: Change) -> Message | None:
    shown = {"when": format_when(change.original)}
    start, end = changed_span(event, change)
    if key(end) < key(start) or (event.all_day and end == start):
        return Message(END_BEFORE_START, shown)
    if len(change.title) > TITLE_MAX:
        return Message(LONG_TITLE, shown)
    if len(change.description) > TEXT_MAX:
        return Message(LONG_TEXT, shown)
    sequence = change.sequence
    if isinstance(sequence, bool) or not isinstance(sequence, int) or sequence < 0:
        return Message(BAD_SEQUENCE, shown)
    return None
