"""Plain-JSON records of model values for the store (and the JSON API), and back again."""

from __future__ import annotations

import sys
from dataclasses import MISSING, fields
from datetime import date, datetime
from typing import Any, TypeVar

from klynge.carpool import carpool_doc, doc_carpool
from klynge.model import DEFAULT_TIMEZONE, Event, FeedSource, Item, Notice, Place, Tombstone, zone
from klynge.repeat_rule import optional_rule, rule_text
from klynge.series_text import exceptions_from, exceptions_json

_T = TypeVar("_T")

Record = dict[str, Any]

_TIMES = {"updated", "created", "expires"}
_WHENS = {"start", "end"}
_EXCEPTIONS = {"exdates", "rdates", "changes"}  # a series' exceptions (klynge.series_text)


def _when_out(value: date | datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _when_in(value: str | None, all_day: bool) -> date | datetime | None:
    if value is None:
        return None
    return date.fromisoformat(value) if all_day else datetime.fromisoformat(value)


def source_record(source: FeedSource | None) -> Record | None:
    """Return a FeedSource as a JSON-ready dict."""
    if source is None:
        return None
    return {
        "id": source.id,
        "title": source.title,
        "updated": _when_out(source.updated),
        "self_url": source.self_url,
        "author": source.author,
    }


def source_from(record: Record | None) -> FeedSource | None:
    """Return the FeedSource of a dict made by `source_record`."""
    if record is None:
        return None
    updated = record.get("updated")
    return FeedSource(
        id=record["id"],
        title=record.get("title", ""),
        updated=datetime.fromisoformat(updated) if updated else None,
        self_url=record.get("self_url", ""),
        author=record.get("author", ""),
    )


def item_record(item: Item) -> Record:
    """Return an Event or Notice as a JSON-ready dict, leaving out empty values."""
    out: Record = {}
    series = exceptions_json(item) if isinstance(item, Event) else {}
    for f in fields(item):
        value = getattr(item, f.name)
        if f.name in _TIMES or f.name in _WHENS:
            value = _when_out(value)
        elif f.name == "source":
            value = source_record(value)
        elif f.name == "rrule":
            value = rule_text(value)
        elif f.name in _EXCEPTIONS:
            value = series.get(f.name)
        elif f.name == "carpool":
            value = None if value is None else carpool_doc(value)
        elif f.name == "place":
            value = (
                None if value is None else {k.name: getattr(value, k.name) for k in fields(value)}
            )
        if value not in (None, "", False) or f.name in ("kind", "sequence"):
            out[f.name] = value
    return out


def _place_record(place: Place) -> Record:
    values = {f.name: getattr(place, f.name) for f in fields(place)}
    return {k: v for k, v in values.items() if v not in (None, "")}


def item_from(record: Record) -> Item:
    """Return the Event or Notice of a dict made by `item_record`.

    The record was written from a validated item, so it is not validated again: validation
    (nh3, the RRULE) costs about 1 ms an entry, 20 s at start-up with 20,000 entries.
    """
    data = dict(record)
    kind = data.pop("kind", "event")
    for key in _TIMES & data.keys():
        data[key] = datetime.fromisoformat(data[key])
    if "source" in data:
        data["source"] = source_from(data["source"])
    if kind == "notice":
        if "carpool" in data:
            data["carpool"] = doc_carpool(data["carpool"])
        return _trusted(Notice, data)
    all_day = bool(data.get("all_day"))
    tz = zone(data.get("timezone", DEFAULT_TIMEZONE))
    for key in _WHENS & data.keys():
        value = _when_in(data[key], all_day)
        # Back in the event's own zone (ZoneInfo, not a fixed offset), as validation leaves it.
        data[key] = value.astimezone(tz) if isinstance(value, datetime) else value
    if "place" in data:
        data["place"] = _trusted(Place, data["place"])
    # The rule is parsed again (klynge.repeat_rule, microseconds): a record written by an
    # older, looser version raises ValidationError here rather than reach the outputs.
    data["rrule"] = optional_rule(data.get("rrule"))
    if _EXCEPTIONS & data.keys():  # records written before series had exceptions have none
        data.update(exceptions_from(data, tz=str(tz), all_day=all_day))
    return _trusted(Event, data)


def _trusted(cls: type[_T], values: Record) -> _T:
    """Build a frozen dataclass from stored, once-validated values without validating again."""
    obj = object.__new__(cls)
    for name, default, factory in _plan(cls):
        if name in values:
            value = values[name]
            if name in _SHARED and isinstance(value, str):
                # Few distinct values over thousands of entries (zone, status, the village's
                # organiser and venue): one string each, not one per entry.
                value = sys.intern(value)
        elif default is not MISSING:
            value = default
        elif factory is not MISSING:
            value = factory()
        else:
            raise KeyError(f"stored entry lacks {name!r}")
        object.__setattr__(obj, name, value)
    return obj


_SHARED = frozenset(
    {"timezone", "status", "category", "organizer", "organizer_url", "kind"}
    | {"name", "street", "postcode", "locality"}
)


_PLANS: dict[type, tuple[tuple[str, Any, Any], ...]] = {}


def _plan(cls: type) -> tuple[tuple[str, Any, Any], ...]:
    """Return each field's name, default and default factory (fields() is slow per call)."""
    plan = _PLANS.get(cls)
    if plan is None:
        plan = _PLANS[cls] = tuple((f.name, f.default, f.default_factory) for f in fields(cls))
    return plan


def tombstone_record(tomb: Tombstone) -> Record:
    """Return a Tombstone as a JSON-ready dict."""
    return {
        "id": tomb.id,
        "deleted": tomb.deleted.isoformat(),
        "source": source_record(tomb.source),
    }


def tombstone_from(record: Record) -> Tombstone:
    """Return the Tombstone of a dict made by `tombstone_record`."""
    return Tombstone(
        id=record["id"],
        deleted=datetime.fromisoformat(record["deleted"]),
        source=source_from(record.get("source")),
    )
