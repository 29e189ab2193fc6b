"""A series' exceptions as text and JSON: the feed's elements, the API's and the stores' values.

One syntax everywhere (docs/feed-format.md, "Series exceptions"):

* a list of dates (`exdate`, `rdate`): values like `start` (RFC 3339 with offset, or
  `YYYY-MM-DD` for an all-day series), separated by commas, ascending;
* a changed date: a JSON object `{"original": …, "start": …, "end": …, "title": …,
  "description": …, "location": {…}, "cancelled": true, "sequence": 1}` (only `original`
  required); `changes` is a JSON array of them, in order of `original`.

Readers get one problem per value they cannot read and keep the rest (klynge.series.sift).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from klynge.errors import ValidationError, problem_of
from klynge.messages import Message, define
from klynge.model import Event, Place, When, format_when, parse_when
from klynge.series import MAX_EXCEPTIONS, Change, Problems

MAX_TEXT = 2_000_000  # characters of one element: 500 changes with long descriptions
PLACE_KEYS = ("name", "street", "postcode", "locality", "lat", "lon")
CHANGE_KEYS = (
    "original", "start", "end", "title", "description", "location", "cancelled", "sequence",
)  # fmt: skip

# Each constant is a message code (Danish in klynge/locale).
BAD_VALUE = define("series.bad_value", "'%(value)s' is not a date of the series: %(problem)s")
BAD_CHANGES = define(
    "series.bad_changes", "The changed dates cannot be read: give a JSON array of objects."
)
BAD_CHANGE = define(
    "series.bad_change",
    "A changed date must be an object with 'original' and only the keys %(keys)s.",
)
BAD_FIELD = define("series.bad_field", "The '%(field)s' of a changed date is not valid.")
TOO_LONG = define("series.too_long", "The list of dates is too long.")


def dates_text(values: tuple[When, ...]) -> str:
    """Return a list of dates as the feed writes it: comma-separated, ascending."""
    return ",".join(format_when(value) for value in values)


def read_dates(text: str, *, tz: str, all_day: bool, name: str) -> tuple[list[When], Problems]:
    """Return the dates of a comma-separated list and a problem for each unreadable one."""
    if len(text) > MAX_TEXT:
        return [], [(name, Message(TOO_LONG))]
    found: list[When] = []
    problems: Problems = []
    shown: dict[str, str | Message]
    for part in text.split(",")[: MAX_EXCEPTIONS + 1]:
        value = part.strip()
        if not value:
            continue
        try:
            found.append(parse_when(value, tz=tz, all_day=all_day))
        except ValueError as e:
            shown = {"value": value[:40], "problem": problem_of(e)}
            problems.append((name, Message(BAD_VALUE, shown)))
    return found, problems


def change_json(change: Change) -> dict[str, Any]:
    """Return a changed date as its JSON object (unchanged fields left out)."""
    out: dict[str, Any] = {"original": format_when(change.original)}
    if change.start is not None:
        out["start"] = format_when(change.start)
    if change.end is not None:
        out["end"] = format_when(change.end)
    if change.title:
        out["title"] = change.title
    if change.description:
        out["description"] = change.description
    if change.place is not None:
        out["location"] = {k: v for k, v in asdict(change.place).items() if v not in (None, "")}
    if change.cancelled:
        out["cancelled"] = True
    if change.sequence:
        out["sequence"] = change.sequence
    return out


def changes_text(changes: tuple[Change, ...]) -> str:
    """Return the changed dates as the feed's JSON array (compact, keys in a fixed order)."""
    return json.dumps([change_json(c) for c in changes], ensure_ascii=False, separators=(",", ":"))


def read_changes(text: str, *, tz: str, all_day: bool) -> tuple[list[Change], Problems]:
    """Return the changed dates of the feed's JSON array and a problem for each bad one."""
    if len(text) > MAX_TEXT:
        return [], [("changes", Message(TOO_LONG))]
    try:
        values = json.loads(text)
    except (ValueError, RecursionError):
        return [], [("changes", Message(BAD_CHANGES))]
    if not isinstance(values, list):
        return [], [("changes", Message(BAD_CHANGES))]
    return changes_from(values[: MAX_EXCEPTIONS + 1], tz=tz, all_day=all_day)


def changes_from(values: list[Any], *, tz: str, all_day: bool) -> tuple[list[Change], Problems]:
    """Return the Changes of decoded JSON objects and a problem for each bad one."""
    found: list[Change] = []
    problems: Problems = []
    for value in values:
        try:
            found.append(change_from(value, tz=tz, all_day=all_day))
        except ValidationError as e:
            problems.extend(("changes", m) for m in e.fields.values())
    return found, problems


def change_from(value: Any, *, tz: str, all_day: bool) -> Change:
    """Return the Change of one decoded JSON object, or raise ValidationError naming the field."""
    if not isinstance(value, Mapping) or set(value) - set(CHANGE_KEYS) or "original" not in value:
        raise ValidationError({"changes": Message(BAD_CHANGE, {"keys": ", ".join(CHANGE_KEYS)})})
    original = _time(value.get("original"), "original", tz=tz, all_day=all_day)
    if original is None:
        raise _bad("original")
    return Change(
        original=original,
        start=_time(value.get("start"), "start", tz=tz, all_day=all_day),
        end=_time(value.get("end"), "end", tz=tz, all_day=all_day),
        title=_string(value, "title"),
        description=_string(value, "description"),
        place=_place(value.get("location")),
        cancelled=_flag(value.get("cancelled", False)),
        sequence=_sequence(value.get("sequence", 0)),
    )


def _bad(name: str) -> ValidationError:
    return ValidationError({"changes": Message(BAD_FIELD, {"field": name})})


def _time(value: Any, name: str, *, tz: str, all_day: bool) -> When | None:
    if value is None and name != "original":
        return None
    if not isinstance(value, str):
        raise _bad(name)
    try:
        return parse_when(value, tz=tz, all_day=all_day)
    except ValueError as e:
        raise _bad(name) from e


def _string(value: Mapping[str, Any], name: str) -> str:
    text = value.get(name, "")
    if not isinstance(text, str):
        raise _bad(name)
    return text


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _bad("cancelled")
    return value


def _sequence(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
        raise _bad("sequence")
    return value


def _place(value: Any) -> Place | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) - set(PLACE_KEYS):
        raise _bad("location")
    texts = {k: value.get(k, "") for k in PLACE_KEYS[:4]}
    if not all(isinstance(v, str) for v in texts.values()):
        raise _bad("location")
    try:
        return Place(**texts, lat=value.get("lat"), lon=value.get("lon"))
    except (ValidationError, TypeError) as e:
        raise _bad("location") from e


def exceptions_json(event: Event) -> dict[str, Any]:
    """Return an event's exceptions as JSON values (lists), leaving out empty ones."""
    out: dict[str, Any] = {}
    if event.exdates:
        out["exdates"] = [format_when(v) for v in event.exdates]
    if event.rdates:
        out["rdates"] = [format_when(v) for v in event.rdates]
    if event.changes:
        out["changes"] = [change_json(c) for c in event.changes]
    return out


def exceptions_from(data: Mapping[str, Any], *, tz: str, all_day: bool) -> dict[str, Any]:
    """Return the Event fields of exceptions stored by `exceptions_json` (trusted records)."""
    out: dict[str, Any] = {}
    for name in ("exdates", "rdates"):
        if data.get(name):
            out[name] = tuple(parse_when(v, tz=tz, all_day=all_day) for v in data[name])
    if data.get("changes"):
        out["changes"] = tuple(change_from(c, tz=tz, all_day=all_day) for c in data["changes"])
    return out
