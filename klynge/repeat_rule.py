"""The repeat rule of an event: an RFC 5545 RRULE parsed once, at the edge, into a frozen value.

Every way in (the node's API and forms, feeds, .ics sources, stored records) goes through
`parse_rrule`, and everything downstream sees only a `RepeatRule`, written back by `str()` in
one canonical form. What is accepted (docs/feed-format.md, "rrule"):

* FREQ DAILY, WEEKLY, MONTHLY or YEARLY: at most one occurrence a day. Times of day
  (BYHOUR, BYMINUTE, BYSECOND) are refused: the event's start gives the time, and they are
  the only parts that could make more than one occurrence a day.
* INTERVAL 1-1000, COUNT 1-500, UNTIL a date or date-time (floating or UTC) from 1900 to 2200,
  never both COUNT and UNTIL (RFC 5545 §3.3.10).
* BYDAY, BYMONTHDAY, BYMONTH, BYYEARDAY, BYWEEKNO, BYSETPOS and WKST within their RFC 5545
  ranges and only with the frequencies the RFC's table allows.
* Each part once, only ASCII letters, digits and `=;,+-`, at most 500 characters.

No dateutil here: a rule is checked by its parts, so a rule that would make dateutil loop
(INTERVAL=0) never reaches it. Evaluation is klynge.rrules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Literal

from klynge.errors import ValidationError
from klynge.messages import Message, define

Freq = Literal["DAILY", "WEEKLY", "MONTHLY", "YEARLY"]
Until = date | datetime  # a date, a naive (floating) date-time, or an aware UTC date-time
FREQS: tuple[Freq, ...] = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
MAX_COUNT = 500
MAX_INTERVAL = 1000
MAX_LENGTH = 500
UNTIL_YEARS = range(1900, 2201)  # as the model's years: date arithmetic overflows far out

# The canonical order of the parts (str() writes them so; any order is read).
ORDER = (
    "FREQ", "INTERVAL", "BYMONTH", "BYWEEKNO", "BYYEARDAY", "BYMONTHDAY", "BYDAY",
    "BYSETPOS", "WKST", "COUNT", "UNTIL",
)  # fmt: skip
_TIME_PARTS = ("BYHOUR", "BYMINUTE", "BYSECOND")
_CHARS_RE = re.compile(r"^[A-Za-z0-9=;,+-]*$")
_NUMBER_RE = re.compile(r"^[+-]?\d{1,4}$")
_DAY_RE = re.compile(r"^([+-]?\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)$")
_UNTIL_RE = re.compile(r"^(\d{8})(?:T(\d{6})(Z?))?$")

# Each constant is a message code (Danish in klynge/locale).
UNREADABLE = define(
    "rrule.unreadable", "The repeat rule cannot be read; write it like FREQ=WEEKLY;COUNT=10."
)
CHARACTERS = define(
    "rrule.characters", "A repeat rule may only contain letters, digits and = ; , + -."
)
TOO_LONG = define("rrule.too_long", "The repeat rule is too long; at most 500 characters.")
NO_FREQ = define(
    "rrule.no_freq", "Say how often it repeats: FREQ=DAILY, WEEKLY, MONTHLY or YEARLY."
)
TOO_OFTEN = define("rrule.too_often", "Repeat at most daily.")
TWICE = define("rrule.twice", "Each part of the repeat rule may be given only once.")
UNKNOWN = define(
    "rrule.unknown",
    "The repeat rule has a part Klynge does not know; use FREQ, INTERVAL, COUNT, UNTIL, "
    "BYDAY, BYMONTHDAY, BYMONTH, BYYEARDAY, BYWEEKNO, BYSETPOS or WKST.",
)
TIME_OF_DAY = define(
    "rrule.time_of_day",
    "A repeat rule cannot set times of day (BYHOUR, BYMINUTE, BYSECOND); "
    "the event's start gives the time.",
)
BAD_INTERVAL = define("rrule.bad_interval", "INTERVAL must be a whole number from 1 to 1000.")
BAD_COUNT = define("rrule.bad_count", "COUNT must be a whole number from 1 to 500.")
TOO_MANY = define("rrule.too_many", "At most 500 repetitions.")
BOTH_ENDS = define(
    "rrule.both_ends", "Give either a number of times (COUNT) or an end date (UNTIL), not both."
)
BAD_UNTIL = define(
    "rrule.bad_until", "UNTIL must be a date like 20271231 or a time like 20271231T235959Z."
)
BAD_YEAR = define("rrule.bad_year", "Give a year from 1900 to 2200.")
BAD_WKST = define("rrule.bad_wkst", "WKST must be a weekday: MO, TU, WE, TH, FR, SA or SU.")
BAD_BYDAY = define(
    "rrule.bad_byday", "BYDAY must list weekdays like MO,WE, or with a number like 1SU or -1FR."
)
NUMBERED_DAY = define(
    "rrule.numbered_day", "A BYDAY with a number (like 1SU) needs FREQ=MONTHLY or FREQ=YEARLY."
)
NUMBERED_WEEKNO = define(
    "rrule.numbered_weekno", "A BYDAY with a number cannot be combined with BYWEEKNO."
)
WEEKLY_MONTHDAY = define("rrule.weekly_monthday", "BYMONTHDAY cannot be used with FREQ=WEEKLY.")
YEARLY_ONLY = define("rrule.yearly_only", "BYYEARDAY and BYWEEKNO need FREQ=YEARLY.")
LONE_SETPOS = define(
    "rrule.lone_setpos", "BYSETPOS needs another BY part (such as BYDAY) to choose from."
)
# (lowest, highest) of each numbered list; 0 is never allowed (RFC 5545 §3.3.10).
RANGES: dict[str, tuple[int, int, str]] = {
    "BYMONTH": (1, 12, define("rrule.range_bymonth", "BYMONTH must list months from 1 to 12.")),
    "BYWEEKNO": (
        -53,
        53,
        define("rrule.range_byweekno", "BYWEEKNO must list weeks from 1 to 53 or -53 to -1."),
    ),
    "BYYEARDAY": (
        -366,
        366,
        define("rrule.range_byyearday", "BYYEARDAY must list days from 1 to 366 or -366 to -1."),
    ),
    "BYMONTHDAY": (
        -31,
        31,
        define("rrule.range_bymonthday", "BYMONTHDAY must list days from 1 to 31 or -31 to -1."),
    ),
    "BYSETPOS": (
        -366,
        366,
        define("rrule.range_bysetpos", "BYSETPOS must list positions from 1 to 366 or -366 to -1."),
    ),
}
DayPart = tuple[int, str]  # (ordinal or 0, weekday code), e.g. (1, "SU") for 1SU


@dataclass(frozen=True, slots=True)
class RepeatRule:
    """A validated RRULE: at most daily, bounded parts, written back in one canonical form.

    Constructing one checks it (ValidationError on the `rrule` field); lists are sorted and
    without repeats, so two rules that mean the same are equal.
    """

    freq: Freq
    interval: int = 1
    count: int | None = None
    until: Until | None = None
    by_month: tuple[int, ...] = ()
    by_week_no: tuple[int, ...] = ()
    by_year_day: tuple[int, ...] = ()
    by_month_day: tuple[int, ...] = ()
    by_day: tuple[DayPart, ...] = ()
    by_set_pos: tuple[int, ...] = ()
    wkst: str = "MO"
    _text: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        message = _list_problem(self) or _normalise(self) or _problem(self)
        if message:
            raise ValidationError({"rrule": Message(message)})
        object.__setattr__(self, "_text", _canonical(self))

    def __str__(self) -> str:
        """Return the rule as an RFC 5545 RRULE value in Klynge's canonical part order."""
        return self._text

    @property
    def text(self) -> str:
        """Return the canonical RRULE value (as `str()`)."""
        return self._text

    def weekly_until(self) -> Until | None:
        """Return UNTIL when the rule is a plain "every week until" (the node form's kind)."""
        plain = self == RepeatRule("WEEKLY", until=self.until)
        return self.until if plain and self.count is None else None


def parse_rrule(text: str) -> RepeatRule:
    """Return the RepeatRule of an RRULE value (an `RRULE:` prefix is allowed).

    Raises ValidationError with one message on the `rrule` field that says what is wrong.
    """
    body = text.strip()
    if body[:6].upper() == "RRULE:":
        body = body[6:]
    return RepeatRule(**_fields(_parts(body)))


def optional_rule(text: str | None) -> RepeatRule | None:
    """Return the RepeatRule of `text`, or None for an empty text."""
    return parse_rrule(text) if text and text.strip() else None


def rule_text(rule: RepeatRule | None) -> str:
    """Return a rule's canonical text, or "" for none (the feed, JSON and store form)."""
    return "" if rule is None else rule.text


def _refuse(code: str) -> ValidationError:
    return ValidationError({"rrule": Message(code)})


def _parts(body: str) -> dict[str, str]:
    if len(body) > MAX_LENGTH:
        raise _refuse(TOO_LONG)
    if not _CHARS_RE.match(body):
        raise _refuse(CHARACTERS)
    pieces = body.upper().split(";")
    if len(pieces) > 1 and pieces[-1] == "":
        pieces.pop()  # a trailing ";" is common and harmless
    parts: dict[str, str] = {}
    for piece in pieces:
        name, equals, value = piece.partition("=")
        if not equals or not name or not value:
            raise _refuse(UNREADABLE)
        if name in parts:
            raise _refuse(TWICE)
        parts[name] = value
    return parts


def _fields(parts: dict[str, str]) -> dict[str, Any]:
    if any(name in parts for name in _TIME_PARTS):
        raise _refuse(TIME_OF_DAY)
    unknown = set(parts) - set(ORDER)
    if unknown:
        raise _refuse(UNKNOWN)
    values: dict[str, Any] = {"freq": _freq(parts.get("FREQ", ""))}
    if "INTERVAL" in parts:
        values["interval"] = _whole(parts["INTERVAL"], BAD_INTERVAL)
    if "COUNT" in parts:
        values["count"] = _whole(parts["COUNT"], BAD_COUNT)
    if "UNTIL" in parts:
        values["until"] = _until(parts["UNTIL"])
    for name, (_, _, message) in RANGES.items():
        if name in parts:
            values[_attr(name)] = tuple(_whole(v, message) for v in parts[name].split(","))
    if "BYDAY" in parts:
        values["by_day"] = tuple(_day(v) for v in parts["BYDAY"].split(","))
    if "WKST" in parts:
        values["wkst"] = parts["WKST"]
    return values


_ATTRS = {
    "BYMONTH": "by_month",
    "BYWEEKNO": "by_week_no",
    "BYYEARDAY": "by_year_day",
    "BYMONTHDAY": "by_month_day",
    "BYSETPOS": "by_set_pos",
}


def _attr(part: str) -> str:
    return _ATTRS[part]


def _freq(value: str) -> Freq:
    for freq in FREQS:
        if value == freq:
            return freq
    if value in ("SECONDLY", "MINUTELY", "HOURLY"):
        raise _refuse(TOO_OFTEN)
    raise _refuse(NO_FREQ)


def _whole(value: str, message: str) -> int:
    if not _NUMBER_RE.match(value):
        raise _refuse(message)
    return int(value)


def _day(value: str) -> DayPart:
    match = _DAY_RE.match(value)
    if match is None or (match.group(1) is not None and int(match.group(1)) == 0):
        raise _refuse(BAD_BYDAY)
    return int(match.group(1) or 0), match.group(2)


def _until(value: str) -> Until:
    match = _UNTIL_RE.match(value)
    if match is None:
        raise _refuse(BAD_UNTIL)
    day, clock, utc = match.groups()
    try:
        if clock is None:
            return datetime.strptime(day, "%Y%m%d").date()
        moment = datetime.strptime(day + clock, "%Y%m%d%H%M%S")
    except ValueError as e:
        raise _refuse(BAD_UNTIL) from e
    return moment.replace(tzinfo=UTC) if utc else moment


# --- checks of a built rule ------------------------------------------------------------


def _normalise(rule: RepeatRule) -> str:
    """Sort the lists and drop repeats (after `_list_problem` has checked their values)."""
    for name in RANGES:
        object.__setattr__(rule, _attr(name), tuple(sorted(set(getattr(rule, _attr(name))))))
    days = sorted(set(rule.by_day), key=lambda d: (WEEKDAYS.index(d[1]), d[0]))
    object.__setattr__(rule, "by_day", tuple(days))
    return ""


def _problem(rule: RepeatRule) -> str:
    """Return what is wrong with the rule in words, or ""."""
    for check in (_freq_problem, _end_problem, _combination_problem):
        message = check(rule)
        if message:
            return message
    return ""


def _freq_problem(rule: RepeatRule) -> str:
    if rule.freq not in FREQS:
        return NO_FREQ
    if _not_int(rule.interval) or not 1 <= rule.interval <= MAX_INTERVAL:
        return BAD_INTERVAL
    if rule.wkst not in WEEKDAYS:
        return BAD_WKST
    return ""


def _not_int(value: object) -> bool:
    return isinstance(value, bool) or not isinstance(value, int)


def _end_problem(rule: RepeatRule) -> str:
    if rule.count is not None:
        if _not_int(rule.count) or rule.count < 1:
            return BAD_COUNT
        if rule.count > MAX_COUNT:
            return TOO_MANY
        if rule.until is not None:
            return BOTH_ENDS
    until = rule.until
    if until is None:
        return ""
    if not isinstance(until, date):
        return BAD_UNTIL
    if isinstance(until, datetime) and until.tzinfo not in (None, UTC):
        return BAD_UNTIL
    return "" if until.year in UNTIL_YEARS else BAD_YEAR


def _list_problem(rule: RepeatRule) -> str:
    for name, (low, high, message) in RANGES.items():
        values = getattr(rule, _attr(name))
        if not isinstance(values, tuple):
            return message
        if any(_not_int(v) or not low <= v <= high or v == 0 for v in values):
            return message
    if not isinstance(rule.by_day, tuple) or not all(_is_day(d) for d in rule.by_day):
        return BAD_BYDAY
    return ""


def _is_day(value: object) -> bool:
    if not isinstance(value, tuple) or len(value) != 2:
        return False
    ordinal, code = value
    return not _not_int(ordinal) and code in WEEKDAYS and -53 <= ordinal <= 53


def _combination_problem(rule: RepeatRule) -> str:
    """Return a refusal for a part the frequency cannot use (RFC 5545 §3.3.10's table)."""
    numbered = any(ordinal for ordinal, _ in rule.by_day)
    if numbered and rule.freq not in ("MONTHLY", "YEARLY"):
        return NUMBERED_DAY
    if numbered and rule.by_week_no:
        return NUMBERED_WEEKNO
    if numbered and rule.freq == "MONTHLY" and any(abs(o) > 5 for o, _ in rule.by_day):
        return BAD_BYDAY  # a month has at most five of each weekday
    if rule.by_month_day and rule.freq == "WEEKLY":
        return WEEKLY_MONTHDAY
    if (rule.by_year_day or rule.by_week_no) and rule.freq != "YEARLY":
        return YEARLY_ONLY
    others = rule.by_month or rule.by_week_no or rule.by_year_day or rule.by_month_day
    if rule.by_set_pos and not (others or rule.by_day):
        return LONE_SETPOS
    return ""


def _canonical(rule: RepeatRule) -> str:
    values = {
        "FREQ": rule.freq,
        "INTERVAL": str(rule.interval) if rule.interval != 1 else "",
        "BYMONTH": _numbers(rule.by_month),
        "BYWEEKNO": _numbers(rule.by_week_no),
        "BYYEARDAY": _numbers(rule.by_year_day),
        "BYMONTHDAY": _numbers(rule.by_month_day),
        "BYDAY": ",".join(f"{o}{code}" if o else code for o, code in rule.by_day),
        "BYSETPOS": _numbers(rule.by_set_pos),
        "WKST": rule.wkst if rule.wkst != "MO" else "",
        "COUNT": str(rule.count) if rule.count is not None else "",
        "UNTIL": _until_text(rule.until) if rule.until is not None else "",
    }
    return ";".join(f"{name}={values[name]}" for name in ORDER if values[name])


def _numbers(values: tuple[int, ...]) -> str:
    return ",".join(str(v) for v in values)


def _until_text(until: Until) -> str:
    if not isinstance(until, datetime):
        return f"{until:%Y%m%d}"
    return f"{until:%Y%m%dT%H%M%S}" + ("Z" if until.tzinfo is not None else "")
