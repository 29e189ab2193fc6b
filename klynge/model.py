"""The domain model: frozen, validated Events, Notices and Tombstones, with no I/O.

Adapters (feed, iCalendar, JSON, forms) convert to and from these types. Every constructor
validates and raises `ValidationError` with one clear message per bad field; messages are
English msgids that the web layer translates to Danish.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import nh3

from klynge.carpool import Carpool
from klynge.clock import system_now
from klynge.errors import InvalidValue, ValidationError
from klynge.messages import Message, define
from klynge.repeat_rule import RepeatRule, optional_rule
from klynge.rrules import naive_start, wall_starts, wall_until

if TYPE_CHECKING:
    from klynge.series import Change

DEFAULT_TIMEZONE = "Europe/Copenhagen"
TITLE_MAX = 200
TEXT_MAX = 20_000
SHORT_MAX = 200
URL_MAX = 2_000
MAX_OCCURRENCES = 500
MAX_RRULE_SPAN = timedelta(days=5 * 366)

# Every field problem the model names (Danish in klynge/locale).
UNKNOWN_ZONE = define(
    "model.unknown_zone", "Unknown time zone '%(zone)s'; use an IANA name like Europe/Copenhagen."
)
BAD_DATE = define("model.bad_date", "This is not a valid date (YYYY-MM-DD).")
NO_TIME = define(
    "model.no_time", "Give a time as well (YYYY-MM-DDTHH:MM), or mark the event all-day."
)
BAD_DATETIME = define("model.bad_datetime", "This is not a valid date and time (YYYY-MM-DDTHH:MM).")
MAX_200 = define("model.max_200", "At most 200 characters.")
HALF_POINT = define("model.half_point", "Give both latitude and longitude, or neither.")
BAD_LAT = define("model.bad_lat", "Latitude must be a number from -90 to 90.")
BAD_LON = define("model.bad_lon", "Longitude must be a number from -180 to 180.")
DELETED_OFFSET = define("model.deleted_offset", "The deletion time needs a time zone offset.")
BAD_ID = define("model.bad_id", "The id must be a URI without spaces, e.g. urn:uuid:…")
NO_TITLE = define("model.no_title", "Give a title.")
LONG_TITLE = define("model.long_title", "The title is too long; at most 200 characters.")
BAD_CATEGORY = define(
    "model.bad_category", "A category is a short word of a-z, 0-9 and '-' (e.g. sport)."
)
NOT_HTTP = define("model.not_http", "Only http:// and https:// links are allowed.")
MAX_20000 = define("model.max_20000", "At most 20000 characters.")
UPDATED_OFFSET = define("model.updated_offset", "The update time needs a time zone offset.")
BAD_SEQUENCE = define("model.bad_sequence", "The sequence must be a whole number.")
NEGATIVE_SEQUENCE = define("model.negative_sequence", "The sequence cannot be negative.")
BAD_STATUS = define(
    "model.bad_status", "Status must be confirmed, cancelled, postponed or tentative."
)
BAD_ZONE = define("model.bad_zone", "Unknown time zone; use an IANA name like Europe/Copenhagen.")
ALLDAY_START = define(
    "model.allday_start", "An all-day event starts on a date (YYYY-MM-DD) without a time."
)
ALLDAY_END = define(
    "model.allday_end", "An all-day event ends on a date (YYYY-MM-DD) without a time."
)
NO_START = define("model.no_start", "Give a start date and time.")
BAD_END = define("model.bad_end", "Give an end date and time, or leave the end empty.")
LAST_BEFORE_FIRST = define("model.last_before_first", "The last day is before the first day.")
END_BEFORE_START = define("model.end_before_start", "The end is before the start.")
BAD_EXPIRES = define("model.bad_expires", "Give the expiry as a date and time.")
BAD_RELATED = define("model.bad_related", "The related entry must be an id such as urn:uuid:…")
BAD_YEAR = define("model.bad_year", "Give a year from 1900 to 2200.")
ENDLESS = define(
    "model.endless", "A repeating event needs an end: a number of times or an end date."
)
RULE_BEFORE_START = define("model.rule_before_start", "The repeat rule ends before the first date.")
BAD_CARPOOL = define("model.bad_carpool", "A carpool post needs its direction, seats and origin.")
RULE_TOO_LONG = define("model.rule_too_long", "A repeating event may run for at most five years.")

# `tentative`: a reserved date, details to follow (issue 13; docs/feed-format.md).
STATUSES = ("confirmed", "cancelled", "postponed", "tentative")
Status = Literal["confirmed", "cancelled", "postponed", "tentative"]
When = datetime | date

# The shared category vocabulary: term -> (Danish label, English label). Unknown terms are
# kept and shown as given (design.md, "Categories").
CATEGORIES: dict[str, tuple[str, str]] = {
    "community": ("Fællesskab", "Community"),
    "culture": ("Kultur", "Culture"),
    "sport": ("Sport", "Sport"),
    "children": ("Børn og unge", "Children and youth"),
    "food": ("Spisning", "Food and dining"),
    "market": ("Marked", "Market"),
    "church": ("Kirke", "Church"),
    "meeting": ("Møde", "Meeting"),
    "nature": ("Natur", "Nature"),
    "carpool": ("Samkørsel", "Carpool"),
    "volunteers": ("Frivillige søges", "Volunteers wanted"),
    "lost-found": ("Tabt og fundet", "Lost and found"),
    "roadworks": ("Vejarbejde", "Roadworks"),
    "other": ("Andet", "Other"),
}

_CATEGORY_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
# Also what XML 1.0 cannot carry (surrogates, U+FFFE, U+FFFF): the feed writer drops those, and
# a title of only U+FFFE became empty there, failing the whole village feed (tests/fuzz/).
_CONTROL_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
# Line and paragraph breaks of any kind: one-line fields (titles, places) get a space instead.
_BREAK_RE = re.compile(r"\s*[\t\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]+\s*")
_ALLOWED_TAGS = {"p", "br", "strong", "em", "b", "i", "u", "ul", "ol", "li", "a", "blockquote"}
_ALLOWED_ATTRS = {"a": {"href", "title"}}


def category_label(term: str, lang: str = "da") -> str:
    """Return the label of a category term in Danish or English; unknown terms as given."""
    labels = CATEGORIES.get(term)
    if labels is None:
        return term
    return labels[1] if lang == "en" else labels[0]


def new_id() -> str:
    """Return a fresh, never-changing entry id (`urn:uuid:…`)."""
    return f"urn:uuid:{uuid.uuid4()}"


def utcnow() -> datetime:
    """Return the system's current time, aware, in UTC, to the second (services: klynge.clock)."""
    return system_now()


def sanitise_html(text: str) -> str:
    """Return `text` with HTML reduced to a small allowlist (links http(s)/mailto only)."""
    return nh3.clean(
        text,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRS,
        url_schemes={"http", "https", "mailto"},
        link_rel="nofollow noopener",
    )


def clean_text(text: str) -> str:
    """Return one line of plain text: breaks made spaces, control characters removed, stripped.

    A CR or LF in a title or place would otherwise end a line of iCalendar or HTTP output.
    """
    return _CONTROL_RE.sub("", _BREAK_RE.sub(" ", text)).strip()


def zone(name: str) -> ZoneInfo:
    """Return the IANA zone `name` or raise ValueError with a clear message."""
    if not name or len(name) > 64 or ".." in name or name.startswith("/"):
        raise InvalidValue(Message(UNKNOWN_ZONE, {"zone": name[:64]}))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as e:
        raise InvalidValue(Message(UNKNOWN_ZONE, {"zone": name})) from e


def is_http_url(value: str) -> bool:
    """Tell whether `value` is an absolute http(s) URL with a host."""
    if not value or len(value) > URL_MAX or any(c.isspace() for c in value):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def parse_when(value: str, *, tz: str, all_day: bool) -> When:
    """Parse an API/form/feed time: a date for all-day, else an aware datetime in `tz`.

    Accepts `YYYY-MM-DD` (all-day), `YYYY-MM-DDTHH:MM[:SS]` local to `tz`, or RFC 3339 with an
    offset (converted to `tz`). Raises ValueError with a message a volunteer can act on.
    """
    text = value.strip()
    if all_day:
        try:
            return date.fromisoformat(text[:10]) if len(text) >= 10 else date.fromisoformat(text)
        except ValueError as e:
            raise InvalidValue(Message(BAD_DATE)) from e
    if len(text) == 10:
        raise InvalidValue(Message(NO_TIME))
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError as e:
        raise InvalidValue(Message(BAD_DATETIME)) from e
    if parsed.year not in YEARS:  # 9999-12-31T23:59+00:00 overflows on the way into `tz`
        raise InvalidValue(Message(BAD_YEAR))
    tzinfo = zone(tz)
    if parsed.tzinfo is None:
        return localize(parsed, tzinfo)
    return parsed.astimezone(tzinfo)


def localize(naive: datetime, tzinfo: ZoneInfo) -> datetime:
    """Attach `tzinfo` to a wall-clock time, moving a time in a DST gap forward by the gap."""
    aware = naive.replace(tzinfo=tzinfo)
    roundtrip = aware.astimezone(UTC).astimezone(tzinfo)
    if roundtrip.replace(tzinfo=None) != naive:  # nonexistent local time (spring forward)
        return roundtrip
    return aware


def format_when(value: When) -> str:
    """Format a date as `YYYY-MM-DD` and a datetime as RFC 3339 with its offset."""
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    return value.isoformat()


@dataclass(frozen=True, slots=True)
class Place:
    """A venue: name and address, with optional coordinates."""

    name: str = ""
    street: str = ""
    postcode: str = ""
    locality: str = ""
    lat: float | None = None
    lon: float | None = None

    def __post_init__(self) -> None:
        errors: dict[str, Message] = {}
        for name in ("name", "street", "postcode", "locality"):
            value = clean_text(getattr(self, name))
            object.__setattr__(self, name, value)
            if len(value) > SHORT_MAX:
                errors[name] = Message(MAX_200)  # a fixed msgid: SHORT_MAX
        errors.update(_check_coordinates(self.lat, self.lon))
        if errors:
            raise ValidationError(errors)

    @property
    def address(self) -> str:
        """Return the address on one line (street, postcode locality)."""
        town = " ".join(p for p in (self.postcode, self.locality) if p)
        return ", ".join(p for p in (self.street, town) if p)

    @property
    def full(self) -> str:
        """Return name and address on one line."""
        return ", ".join(p for p in (self.name, self.address) if p)

    def is_empty(self) -> bool:
        """Tell whether nothing at all is known of the place."""
        return not (self.full or self.lat is not None)


def _check_coordinates(lat: float | None, lon: float | None) -> dict[str, Message]:
    if (lat is None) != (lon is None):
        return {"lat": Message(HALF_POINT)}
    if lat is None or lon is None:
        return {}
    if isinstance(lat, bool) or not isinstance(lat, int | float) or not -90 <= lat <= 90:
        return {"lat": Message(BAD_LAT)}
    if isinstance(lon, bool) or not isinstance(lon, int | float) or not -180 <= lon <= 180:
        return {"lon": Message(BAD_LON)}
    return {}


@dataclass(frozen=True, slots=True)
class FeedSource:
    """Provenance of an entry in a merged feed: the original feed (atom:source)."""

    id: str
    title: str = ""
    updated: datetime | None = None
    self_url: str = ""
    author: str = ""


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A deleted entry (RFC 6721 at:deleted-entry)."""

    id: str
    deleted: datetime
    source: FeedSource | None = None

    def __post_init__(self) -> None:
        errors = _check_id(self.id)
        if self.deleted.tzinfo is None:
            errors["deleted"] = Message(DELETED_OFFSET)
        if errors:
            raise ValidationError(errors)


def _check_id(value: str) -> dict[str, Message]:
    if not value or len(value) > 500 or any(c.isspace() for c in value):
        return {"id": Message(BAD_ID)}
    return {}


def _check_title(title: str) -> dict[str, Message]:
    if not title:
        return {"title": Message(NO_TITLE)}
    if len(title) > TITLE_MAX:
        return {"title": Message(LONG_TITLE)}  # TITLE_MAX
    return {}


def _check_category(term: str) -> dict[str, Message]:
    if term and not _CATEGORY_RE.match(term):
        return {"category": Message(BAD_CATEGORY)}
    return {}


def _check_url(name: str, value: str) -> dict[str, Message]:
    if value and not is_http_url(value):
        return {name: Message(NOT_HTTP)}
    return {}


def _check_text(name: str, value: str) -> dict[str, Message]:
    if len(value) > TEXT_MAX:
        return {name: Message(MAX_20000)}  # TEXT_MAX
    return {}


@dataclass(frozen=True, slots=True)
class Entry:
    """Fields shared by events and notices."""

    id: str
    title: str
    updated: datetime
    created: datetime | None = None
    category: str = ""
    organizer: str = ""
    organizer_url: str = ""
    link: str = ""  # the entry's own page (atom:link rel=alternate type=text/html)
    url: str = ""  # a further-information link given by the organiser (rel=related)
    sequence: int = 0
    source: FeedSource | None = None

    def _normalise(self) -> None:
        object.__setattr__(self, "title", clean_text(self.title))
        object.__setattr__(self, "organizer", clean_text(self.organizer))
        object.__setattr__(self, "category", clean_text(self.category).lower())

    def _common_errors(self) -> dict[str, Message]:
        errors = _check_id(self.id)
        errors.update(_check_title(self.title))
        errors.update(_check_category(self.category))
        errors.update(_check_url("organizer_url", self.organizer_url))
        errors.update(_check_url("link", self.link))
        errors.update(_check_url("url", self.url))
        if len(self.organizer) > SHORT_MAX:
            errors["organizer"] = Message(MAX_200)
        if self.updated.tzinfo is None:
            errors["updated"] = Message(UPDATED_OFFSET)
        if isinstance(self.sequence, bool) or not isinstance(self.sequence, int):
            errors["sequence"] = Message(BAD_SEQUENCE)
        elif self.sequence < 0:
            errors["sequence"] = Message(NEGATIVE_SEQUENCE)
        return errors


@dataclass(frozen=True, slots=True)
class Event(Entry):
    """Something that happens at a time and place."""

    start: When = field(default_factory=lambda: date(1970, 1, 1))
    end: When | None = None
    all_day: bool = False
    timezone: str = DEFAULT_TIMEZONE
    description: str = ""
    status: Status = "confirmed"
    # The RFC 5545 text is accepted too (edges building from JSON or feed values) and parsed
    # here, so an Event never holds an unvalidated rule.
    rrule: RepeatRule | None = None
    place: Place | None = None
    # A series' exceptions (klynge.series): normalised into `timezone`, sorted, once each.
    exdates: tuple[When, ...] = ()
    rdates: tuple[When, ...] = ()
    changes: tuple[Change, ...] = ()
    kind: Literal["event"] = "event"
    carpooling: bool = False  # residents may post carpools for it (issue 14)

    def __post_init__(self) -> None:
        self._normalise()
        object.__setattr__(self, "description", sanitise_html(self.description))
        errors = self._common_errors()
        errors.update(self._rule_errors())
        errors.update(_check_text("description", self.description))
        if self.status not in STATUSES:
            errors["status"] = Message(BAD_STATUS)
        errors.update(self._time_errors())
        if errors:
            raise ValidationError(errors)

    def _rule_errors(self) -> dict[str, Message]:
        rule: object = self.rrule
        if rule is None or isinstance(rule, RepeatRule):
            return {}
        try:
            object.__setattr__(self, "rrule", optional_rule(str(rule)))
        except ValidationError as e:
            object.__setattr__(self, "rrule", None)
            return dict(e.fields)
        return {}

    def _time_errors(self) -> dict[str, Message]:
        try:
            zone(self.timezone)
        except ValueError:
            # A fixed msgid (translatable); zone()'s own message names the zone for the CLI.
            return {"timezone": Message(BAD_ZONE)}
        errors = self._start_end_errors() or _year_errors(start=self.start, end=self.end)
        if not errors and self.rrule is not None:
            errors.update(_check_rrule(self.rrule, self.start))
        if not errors and (self.exdates or self.rdates or self.changes):
            # Imported here: klynge.series builds on this module's Place and time helpers.
            from klynge.series import series_errors

            errors.update(series_errors(self))
        return errors

    def _start_end_errors(self) -> dict[str, Message]:
        if self.all_day:
            if isinstance(self.start, datetime) or not isinstance(self.start, date):
                return {"start": Message(ALLDAY_START)}
            if self.end is not None and (
                isinstance(self.end, datetime) or not isinstance(self.end, date)
            ):
                return {"end": Message(ALLDAY_END)}
        else:
            if not isinstance(self.start, datetime) or self.start.tzinfo is None:
                return {"start": Message(NO_START)}
            if self.end is not None and (
                not isinstance(self.end, datetime) or self.end.tzinfo is None
            ):
                return {"end": Message(BAD_END)}
            # Via UTC: converting to the same zone is a no-op in Python, which would keep a
            # nonexistent wall time (a DST gap) and compare ambiguous ones by wall clock.
            object.__setattr__(self, "start", _in_zone(self.start, self.timezone))
            if self.end is not None:
                object.__setattr__(self, "end", _in_zone(self.end, self.timezone))
        if self.end is not None and not _later(self.end, self.start):
            if self.all_day:
                return {"end": Message(LAST_BEFORE_FIRST)}
            return {"end": Message(END_BEFORE_START)}
        return {}

    @property
    def effective_end(self) -> When:
        """Return the end, or the start's day end for all-day, or start for timed events."""
        if self.end is not None:
            return self.end
        if self.all_day:
            return self.start + timedelta(days=1)
        return self.start

    def series_end(self) -> datetime:
        """Return when the last occurrence ends, in UTC (for window rules)."""
        last = self.effective_end
        if self.exdates or self.rdates or self.changes:
            from klynge.series import last_end

            return as_utc(last_end(self), self.timezone)
        if self.rrule is not None:
            until = _rrule_last(self.rrule, self.start)
            last = until + (self.effective_end - self.start)
        return as_utc(last, self.timezone)


@dataclass(frozen=True, slots=True)
class Notice(Entry):
    """A message on the noticeboard: volunteers wanted, a carpool offer, roadworks."""

    body: str = ""
    expires: datetime | None = None
    related: str = ""
    kind: Literal["notice"] = "notice"
    carpool: Carpool | None = None  # a carpool post tied to `related` (klynge.carpool)

    def __post_init__(self) -> None:
        self._normalise()
        object.__setattr__(self, "body", sanitise_html(self.body))
        object.__setattr__(self, "related", self.related.strip())
        errors = self._common_errors()
        errors.update(_check_text("body", self.body))
        if self.expires is not None and (
            not isinstance(self.expires, datetime) or self.expires.tzinfo is None
        ):
            errors["expires"] = Message(BAD_EXPIRES)
        else:
            errors.update(_year_errors(expires=self.expires))
        if self.related and _check_id(self.related):
            errors["related"] = Message(BAD_RELATED)
        if self.carpool is not None and not isinstance(self.carpool, Carpool):
            errors["carpool"] = Message(BAD_CARPOOL)
        if errors:
            raise ValidationError(errors)


Item = Event | Notice
YEARS = range(1900, 2201)  # dates far outside overflow date arithmetic in every output


def _year_errors(**values: When | None) -> dict[str, Message]:
    return {
        name: Message(BAD_YEAR)
        for name, value in values.items()
        if value is not None and value.year not in YEARS
    }


def _in_zone(value: datetime, tz: str) -> datetime:
    return value.astimezone(UTC).astimezone(zone(tz))


def _later(end: When, start: When) -> bool:
    if isinstance(end, datetime) and isinstance(start, datetime):
        return end.astimezone(UTC) > start.astimezone(UTC)
    return end > start


# Fields whose values repeat over a village's entries (the zone, the status, the organiser,
# the venue): `share_repeated` makes them one object per value. A region's 50,000 entries held
# a copy each, about 30 MB of equal strings and places (tracemalloc, issue 15).
REPEATED = ("timezone", "status", "category", "organizer", "organizer_url", "kind", "place")


def share_repeated(items: Iterable[Item]) -> None:
    """Make the equal values of the REPEATED fields of `items` one object each, in place.

    The values are equal (a place also in its repr: -0.0 is not 0.0), so each entry means
    what it meant; it holds, and pickles, a reference where it held a copy.
    """
    kept: dict[object, object] = {}
    for item in items:
        for name in REPEATED:
            value = getattr(item, name, None)
            if not value:
                continue
            key = (name, value if isinstance(value, str) else repr(value))
            first = kept.setdefault(key, value)
            if first is not value:
                object.__setattr__(item, name, first)  # frozen, but equal: see above


def as_utc(value: When, tz: str = DEFAULT_TIMEZONE) -> datetime:
    """Return a date (midnight in `tz`) or an aware datetime as an aware UTC datetime."""
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return localize(datetime(value.year, value.month, value.day), zone(tz)).astimezone(UTC)


def _check_rrule(rule: RepeatRule, start: When) -> dict[str, Message]:
    """Check the series a (well-formed) rule makes from `start`: bounded, at most five years."""
    if rule.count is None and rule.until is None:
        return {"rrule": Message(ENDLESS)}
    starts = _series_starts(rule, start)
    until = wall_until(rule, _tz_of(start))
    if until is not None and until < naive_start(start):
        return {"rrule": Message(RULE_BEFORE_START)}
    too_few = rule.count is not None and len(starts) < rule.count  # also rules that never match
    if too_few or (until is not None and until - naive_start(start) > MAX_RRULE_SPAN):
        return {"rrule": Message(RULE_TOO_LONG)}
    return {}


def _tz_of(start: When) -> ZoneInfo | None:
    return (
        start.tzinfo if isinstance(start, datetime) and isinstance(start.tzinfo, ZoneInfo) else None
    )


def _series_starts(rule: RepeatRule, start: When) -> list[datetime]:
    """Return the series' wall-clock starts within five years (bounded time; klynge.rrules)."""
    span = MAX_RRULE_SPAN + timedelta(days=1)
    return wall_starts(rule, start, _tz_of(start), span, MAX_OCCURRENCES * 4)


def _rrule_last(rule: RepeatRule, start: When) -> When:
    """Return the start of the last occurrence of a bounded rule (expanded on wall-clock time)."""
    last = _series_starts(rule, start)[-1]
    tz = _tz_of(start)
    if isinstance(start, datetime):
        return localize(last, tz) if tz is not None else last
    return last.date()
