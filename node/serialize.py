"""Conversions between the model and JSON: store documents, API output and API/form input."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from klynge.carpool import carpool_doc, doc_carpool
from klynge.errors import FieldErrors, ValidationError, problem_of
from klynge.i18n import N_
from klynge.messages import Message
from klynge.model import (
    Event,
    Item,
    Notice,
    Place,
    Tombstone,
    format_when,
    localize,
    parse_when,
    zone,
)
from klynge.repeat_rule import RepeatRule, optional_rule, rule_text
from klynge.series_text import changes_from, exceptions_from, exceptions_json, read_dates
from node.carpool.defaults import carpooling_of

UUID_PREFIX = "urn:uuid:"
PLACE_KEYS = ("name", "street", "postcode", "locality", "lat", "lon")

# Input fields and the JSON types each accepts (None means JSON null is allowed).
EVENT_INPUT: dict[str, tuple[type | None, ...]] = {
    "title": (str,),
    "start": (str,),
    "end": (str, None),
    "all_day": (bool,),
    "timezone": (str,),
    "location": (dict, str, None),
    "description": (str,),
    "category": (str,),
    "status": (str,),
    "rrule": (str, None),
    "url": (str, None),
    # A series' exceptions (docs/api.md, "Series"): lists as klynge.series_text writes them.
    "exdates": (list, None),
    "rdates": (list, None),
    "changes": (list, None),
    "carpooling": (bool, None),  # default: on for sport and away matches (node.carpool)
}
SERIES_KEYS = ("exdates", "rdates", "changes")
NOTICE_INPUT: dict[str, tuple[type | None, ...]] = {
    "title": (str,),
    "body": (str,),
    "category": (str,),
    "expires": (str, None),
    "related": (str, None),
    "url": (str, None),
}
_TYPE_NAMES: dict[type | None, str] = {
    str: "a string",
    bool: "true or false",
    dict: "an object",
    list: "an array",
    None: "null",
}
_DANGEROUS = ("<script", "javascript:", "vbscript:")
BAD_DATE = "This is not a valid date (YYYY-MM-DD)."
# Date arithmetic (an all-day end, the feed's 30 days) overflows near year 1 and 9999, and one
# such entry would break the feed and pages for everyone; no village plans that far.
FIRST_YEAR, LAST_YEAR = 1900, 2200
BAD_YEAR = N_("Give a year from 1900 to 2200.")


def short_id(entry_id: str) -> str:
    """Return the uuid part of an entry id (used in URLs)."""
    return entry_id.removeprefix(UUID_PREFIX)


def full_id(uuid: str) -> str:
    """Return the entry id for a uuid given in a URL or payload."""
    return uuid if uuid.startswith(UUID_PREFIX) else UUID_PREFIX + uuid


# --- store documents ------------------------------------------------------------------------


def item_to_doc(item: Item) -> dict[str, Any]:
    """Return a JSON-ready store document for an event or notice."""
    doc: dict[str, Any] = {
        "id": item.id,
        "kind": item.kind,
        "title": item.title,
        "updated": _iso(item.updated),
        "created": _iso(item.created),
        "category": item.category,
        "organizer": item.organizer,
        "organizer_url": item.organizer_url,
        "url": item.url,
        "sequence": item.sequence,
    }
    if isinstance(item, Event):
        doc.update(_event_doc(item))
    else:
        doc.update(body=item.body, expires=_iso(item.expires), related=item.related)
        if item.carpool is not None:
            doc["carpool"] = carpool_doc(item.carpool)
    return doc


def _event_doc(event: Event) -> dict[str, Any]:
    return {
        "start": format_when(event.start),
        "end": None if event.end is None else format_when(event.end),
        "all_day": event.all_day,
        "timezone": event.timezone,
        "description": event.description,
        "status": event.status,
        "rrule": rule_text(event.rrule),
        "place": None if event.place is None else asdict(event.place),
        **exceptions_json(event),
        **({"carpooling": True} if event.carpooling else {}),
    }


def doc_to_item(doc: Mapping[str, Any]) -> Item:
    """Rebuild an event or notice from its store document."""
    common: dict[str, Any] = {
        "id": doc["id"],
        "title": doc["title"],
        "updated": datetime.fromisoformat(doc["updated"]),
        "created": _dt(doc.get("created")),
        "category": doc.get("category", ""),
        "organizer": doc.get("organizer", ""),
        "organizer_url": doc.get("organizer_url", ""),
        "url": doc.get("url", ""),
        "sequence": doc.get("sequence", 0),
    }
    if doc.get("kind") == "notice":
        expires = _dt(doc.get("expires"))
        carpool = doc_carpool(doc["carpool"]) if doc.get("carpool") is not None else None
        return Notice(
            **common,
            body=doc.get("body", ""),
            expires=expires,
            related=doc["related"],
            carpool=carpool,
        )
    all_day = bool(doc.get("all_day"))
    place = doc.get("place")
    return Event(
        **common,
        start=_when(doc["start"], all_day),
        end=None if doc.get("end") is None else _when(doc["end"], all_day),
        all_day=all_day,
        timezone=doc["timezone"],
        description=doc.get("description", ""),
        status=doc.get("status", "confirmed"),
        rrule=doc.get("rrule", ""),
        place=None if place is None else Place(**place),
        # Documents stored before series had exceptions have none of these keys.
        **exceptions_from(doc, tz=doc["timezone"], all_day=all_day),
        carpooling=doc.get("carpooling") is True,
    )


def tombstone_to_doc(tombstone: Tombstone) -> dict[str, Any]:
    """Return the store document of a tombstone."""
    return {"id": tombstone.id, "deleted": _iso(tombstone.deleted)}


def doc_to_tombstone(doc: Mapping[str, Any]) -> Tombstone:
    """Rebuild a tombstone from its store document."""
    return Tombstone(id=doc["id"], deleted=datetime.fromisoformat(doc["deleted"]))


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds")


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _when(value: str, all_day: bool) -> date | datetime:
    return date.fromisoformat(value) if all_day else datetime.fromisoformat(value)


# --- API output -----------------------------------------------------------------------------


def item_to_api(item: Item, link: str) -> dict[str, Any]:
    """Return the JSON the API gives for an event or notice."""
    out: dict[str, Any] = {"id": short_id(item.id), "kind": item.kind, **item_to_input(item)}
    out.update(
        organizer=item.organizer,
        sequence=item.sequence,
        created=_iso(item.created),
        updated=_iso(item.updated),
        link=link,
    )
    return out


def item_to_input(item: Item) -> dict[str, Any]:
    """Return an item's editable fields in input form (the base that a PATCH overlays)."""
    if isinstance(item, Notice):
        return {
            "title": item.title,
            "body": item.body,
            "category": item.category,
            "expires": _iso(item.expires),
            "related": item.related or None,
            "url": item.url or None,
        }
    return {
        "title": item.title,
        "start": format_when(item.start),
        "end": None if item.end is None else format_when(item.end),
        "all_day": item.all_day,
        "timezone": item.timezone,
        "location": None if item.place is None else asdict(item.place),
        "description": item.description,
        "category": item.category,
        "status": item.status,
        "rrule": rule_text(item.rrule) or None,
        "url": item.url or None,
        **{name: [] for name in SERIES_KEYS},
        **exceptions_json(item),
        "carpooling": item.carpooling,
    }


# --- input ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stamp:
    """What the node, not the client, decides about an entry being saved."""

    id: str
    organizer: str
    created: datetime
    updated: datetime
    sequence: int = 0


def check_payload(payload: Any, spec: Mapping[str, tuple[type | None, ...]]) -> dict[str, Any]:
    """Check a decoded JSON body: an object with known fields of the right types."""
    if not isinstance(payload, dict):
        raise ValidationError({}, "The body must be a JSON object.")
    unknown = sorted(set(payload) - set(spec))
    errors = {name: f"Unknown field; allowed: {', '.join(spec)}." for name in unknown}
    for name, value in payload.items():
        if name in spec and not _type_ok(value, spec[name]):
            names = " or ".join(_TYPE_NAMES[t] for t in spec[name])
            errors[name] = f"Must be {names}."
    if errors:
        message = f"Unknown fields: {', '.join(unknown)}." if unknown else ""
        raise ValidationError(errors, message)
    return payload


def _type_ok(value: Any, allowed: tuple[type | None, ...]) -> bool:
    if value is None:
        return None in allowed
    return any(t is not None and type(value) is t for t in allowed)


def build_event(
    values: Mapping[str, Any], stamp: Stamp, *, default_tz: str, places: Iterable[Place]
) -> Event:
    """Build a validated Event from input values (API JSON or a form), or raise per field."""
    errors: FieldErrors = {}
    tz = values.get("timezone") or default_tz
    all_day = bool(values.get("all_day", False))
    try:
        zone(tz)
    except ValueError as e:
        errors["timezone"] = problem_of(e)
        tz = default_tz
    start = _parse_time(values, "start", tz, all_day, errors, required=True)
    end = _parse_time(values, "end", tz, all_day, errors, required=False)
    place = _parse_location(values.get("location"), places, errors)
    rule = _parse_rule(values.get("rrule"), errors)
    exceptions = _parse_exceptions(values, tz, all_day, errors)
    _check_scripts(values, "description", errors)
    if errors:
        # Every field's problem at once: the model's own checks (title, url, category…) are
        # run on the fields that did parse, so `{"title": ""}` names the title and the start.
        raise ValidationError(_untimed_errors(values, stamp, tz) | errors)
    return Event(
        **exceptions,
        **_entry_fields(values, stamp),
        start=start or date(1970, 1, 1),
        end=end,
        all_day=all_day,
        timezone=tz,
        description=values.get("description") or "",
        status=values.get("status") or "confirmed",
        rrule=rule,
        place=place,
        carpooling=carpooling_of(values),
    )


def _untimed_errors(values: Mapping[str, Any], stamp: Stamp, tz: str) -> FieldErrors:
    """Return the model's problems with an event's fields other than its times and place."""
    try:
        Event(
            **_entry_fields(values, stamp),
            start=stamp.updated,  # a valid stand-in: the times' own problems are known already
            timezone=tz,
            description=values.get("description") or "",
            status=values.get("status") or "confirmed",
        )
    except ValidationError as e:
        return dict(e.fields)
    return {}


def _parse_exceptions(
    values: Mapping[str, Any], tz: str, all_day: bool, errors: FieldErrors
) -> dict[str, Any]:
    """Parse a series' exceptions from input lists; each field's first problem in `errors`."""
    out: dict[str, Any] = {}
    for name in ("exdates", "rdates"):
        given = values.get(name) or []
        if not all(isinstance(v, str) for v in given):
            errors[name] = "Must be an array of dates as strings."
            continue
        found, problems = read_dates(",".join(given), tz=tz, all_day=all_day, name=name)
        if problems:
            errors[name] = problems[0][1]
        out[name] = tuple(found)
    changes, problems = changes_from(list(values.get("changes") or []), tz=tz, all_day=all_day)
    if problems:
        errors["changes"] = problems[0][1]
    out["changes"] = tuple(changes)
    return out


def _parse_rule(text: Any, errors: FieldErrors) -> RepeatRule | None:
    """Parse the repeat rule at the edge (klynge.repeat_rule); its message goes in `errors`."""
    try:
        return optional_rule(text) if isinstance(text, str) else None
    except ValidationError as e:
        errors.update(e.fields)
        return None


def build_notice(values: Mapping[str, Any], stamp: Stamp, *, default_tz: str) -> Notice:
    """Build a validated Notice from input values (API JSON or a form), or raise per field."""
    errors: FieldErrors = {}
    expires = _parse_expiry(values.get("expires"), default_tz, errors)
    _check_scripts(values, "body", errors)
    related = values.get("related") or ""
    if errors:
        raise ValidationError(_notice_errors(values, stamp) | errors)
    return Notice(
        **_entry_fields(values, stamp),
        body=values.get("body") or "",
        expires=expires,
        related=full_id(related.strip()) if related.strip() else "",
    )


# "www.example.dk" or "example.dk/side": a host name with a dot and no scheme or spaces.
_BARE_HOST_RE = re.compile(r"[\w-]+(\.[\w-]+)*\.[a-z]{2,}(:\d+)?([/?#]\S*)?", re.IGNORECASE)


def complete_url(value: str) -> str:
    """Return a typed web address with `https://` added when it was left out."""
    value = value.strip()
    if value and "://" not in value and _BARE_HOST_RE.fullmatch(value):
        return f"https://{value}"
    return value


def _notice_errors(values: Mapping[str, Any], stamp: Stamp) -> FieldErrors:
    """Return the model's problems with a notice's fields other than its expiry."""
    try:
        Notice(**_entry_fields(values, stamp), body=values.get("body") or "")
    except ValidationError as e:
        return dict(e.fields)
    return {}


def _entry_fields(values: Mapping[str, Any], stamp: Stamp) -> dict[str, Any]:
    """Return the fields events and notices share, from the stamp and the input values."""
    return {
        "id": stamp.id,
        "title": values.get("title") or "",
        "updated": stamp.updated,
        "created": stamp.created,
        "organizer": stamp.organizer,
        "sequence": stamp.sequence,
        "category": values.get("category") or "",
        "url": complete_url(values.get("url") or ""),
    }


def _parse_time(
    values: Mapping[str, Any],
    name: str,
    tz: str,
    all_day: bool,
    errors: FieldErrors,
    *,
    required: bool,
) -> date | datetime | None:
    text = (values.get(name) or "").strip()
    if not text:
        if required:
            errors[name] = "Give a start date and time." if not all_day else "Give a date."
        return None
    if not _year_ok(text):
        errors[name] = BAD_YEAR
        return None
    try:
        return parse_when(text, tz=tz, all_day=all_day)
    except ValueError as e:
        errors[name] = problem_of(e)
        return None


def _year_ok(text: str) -> bool:
    """Tell whether a date's year (its first four digits) is one the node can work with."""
    year = text[:4]
    return not year.isdigit() or FIRST_YEAR <= int(year) <= LAST_YEAR


def _parse_expiry(value: str | None, tz: str, errors: FieldErrors) -> datetime | None:
    text = (value or "").strip()
    if not text:
        return None
    if not _year_ok(text):
        errors["expires"] = BAD_YEAR
        return None
    try:
        if len(text) == 10:
            # A date alone means "through that day": the notice leaves at the next midnight.
            day = date.fromisoformat(text) + timedelta(days=1)
            return localize(datetime.combine(day, time()), zone(tz))
        parsed = parse_when(text, tz=tz, all_day=False)
    except ValueError as e:
        # The form asks for a date: a fixed msgid, so it shows in Danish, and no talk of times
        # for "1.12.2026"; a longer text was meant as a date and time (the API allows both).
        errors["expires"] = (
            problem_of(e) if len(text) > 10 and "not a valid" in str(e) else BAD_DATE
        )
        return None
    assert isinstance(parsed, datetime)
    return parsed


def parse_location(value: Any, places: Iterable[Place], errors: FieldErrors) -> Place | None:
    """Return the place of a location input (an object or a saved place's name), or None."""
    return _parse_location(value, places, errors)


def _parse_location(value: Any, places: Iterable[Place], errors: FieldErrors) -> Place | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return _saved_place(value, places, errors)
    unknown = sorted(set(value) - set(PLACE_KEYS))
    if unknown:
        errors["location"] = f"Unknown location fields: {', '.join(unknown)}."
        return None
    try:
        place = Place(**{k: _place_value(k, value[k]) for k in PLACE_KEYS if k in value})
    except (ValidationError, TypeError, ValueError) as e:
        errors["location"] = _place_message(e)
        return None
    return None if place.is_empty() else place


def _place_value(key: str, value: Any) -> Any:
    if key in ("lat", "lon"):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ValueError(f"{key} must be a number.")
        return None if value is None else float(value)
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string.")
    return value


def _place_message(error: Exception) -> Message:
    if isinstance(error, ValidationError):
        return error.detail  # "lat: …; lon: …", said in the reader's language
    return problem_of(error)


def _saved_place(name: str, places: Iterable[Place], errors: FieldErrors) -> Place | None:
    wanted = name.strip().casefold()
    places = tuple(places)
    for place in places:
        if place.name.casefold() == wanted:
            return place
    known = ", ".join(p.name for p in places) or "none yet"
    errors["location"] = f"No saved place is called {name!r}; saved places: {known}."
    return None


def _check_scripts(values: Mapping[str, Any], name: str, errors: FieldErrors) -> None:
    # The model sanitises HTML anyway; refusing scripts outright tells the sender plainly.
    text = str(values.get(name) or "").lower()
    if any(marker in text for marker in _DANGEROUS):
        errors[name] = "Scripts are not allowed; write plain text or simple HTML (bold, lists)."


def time_changed(old: Event, new: Event) -> bool:
    """Tell whether time, place or status changed between two versions (raise sequence)."""
    keys = ("start", "end", "all_day", "timezone", "rrule", "place", "status", *SERIES_KEYS)
    return any(getattr(old, k) != getattr(new, k) for k in keys)
