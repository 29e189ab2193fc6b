"""Volunteer form adapters: form fields <-> the API's input values and the model."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from klynge.i18n import N_
from klynge.messages import Message
from klynge.model import Event, Notice, Place, localize, zone
from node.carpool.defaults import form_choice

NEW_PLACE = "__new__"
PLACE_FIELDS = ("street", "postcode", "locality", "lat", "lon")
_SIMPLE_HTML_RE = re.compile(r"^<p>.*</p>$", re.S)
_OTHER_TAG_RE = re.compile(r"<(?!/?p>|br>)")
# Something that starts a tag or comment; a bare "<" ("børn < 12 år") is text.
_TAG_RE = re.compile(r"<(?:/?[a-zA-Z]|!--)")
EVENT_FIELDS = (
    "title", "date", "start_time", "end_date", "end_time", "all_day", "place", "place_name",
    "place_street", "place_postcode", "place_locality", "place_lat", "place_lon", "category",
    "description", "url", "repeat_until", "rrule", "status", "carpooling",
)  # fmt: skip
STATUSES = ("confirmed", "cancelled", "postponed")
NOTICE_FIELDS = ("title", "body", "category", "expires", "url", "related")


def form_values(form: Mapping[str, Any], names: Iterable[str]) -> dict[str, str]:
    """Return the named form fields as stripped strings (missing ones empty)."""
    return {name: str(form.get(name, "")).strip() for name in names}


def text_to_html(text: str) -> str:
    """Turn typed text into paragraphs (a blank line) and line breaks; HTML is kept as HTML."""
    if _TAG_RE.search(text) or not text.strip():
        return text  # the model sanitises HTML, and the API accepts it too
    paragraphs = re.split(r"\n\s*\n", text.replace("\r\n", "\n").strip())
    return "".join(
        "<p>"
        + "<br>".join(html.escape(line.strip(), quote=False) for line in p.splitlines())
        + "</p>"
        for p in paragraphs
    )


def html_to_text(value: str) -> str:
    """Return text made by `text_to_html` as typed text again; other HTML stays HTML."""
    if not _SIMPLE_HTML_RE.match(value) or _OTHER_TAG_RE.search(value):
        return value
    text = value.removeprefix("<p>").removesuffix("</p>").replace("</p><p>", "\n\n")
    return html.unescape(text.replace("<br>", "\n"))


def event_input(form: Mapping[str, str], tz: str) -> dict[str, Any]:
    """Turn the event form's fields into API input values."""
    day = form.get("date", "")
    # No time at all means a whole day, as the form's hint says.
    no_times = not form.get("start_time") and not form.get("end_time")
    all_day = form.get("all_day") in ("1", "on", "true") or bool(day and no_times)
    values: dict[str, Any] = {
        "title": form.get("title", ""),
        "all_day": all_day,
        "timezone": tz,
        "category": form.get("category", ""),
        "description": text_to_html(form.get("description", "")),
        "url": form.get("url", ""),
        "location": _location(form),
        "rrule": _rrule(form, tz, all_day),
    }
    if form.get("status"):
        values["status"] = form["status"]
    values["carpooling"] = form_choice(form.get("carpooling", ""))
    if all_day:
        values["start"] = day
        values["end"] = _day_after(form.get("end_date", ""))
    else:
        values["start"] = f"{day}T{form.get('start_time', '')}" if day else ""
        end_time = form.get("end_time", "")
        values["end"] = f"{form.get('end_date') or day}T{end_time}" if end_time and day else ""
    return values


def _day_after(text: str) -> str:
    # The form asks for the last day; iCalendar and the feed want the exclusive end.
    try:
        return (date.fromisoformat(text) + timedelta(days=1)).isoformat() if text else ""
    except (ValueError, OverflowError):  # 9999-12-31 has no day after (found by tests/fuzz/)
        return text  # the model reports it


def _location(form: Mapping[str, str]) -> dict[str, Any] | str | None:
    choice = form.get("place", "")
    # Without JavaScript the new-place fields are always shown: filling them in is enough.
    typed = any(form.get(f"place_{key}") for key in ("name", "street", "locality"))
    if choice != NEW_PLACE and not (not choice and typed):
        return choice or None
    place: dict[str, Any] = {"name": form.get("place_name", "")}
    for key in PLACE_FIELDS:
        place[key] = form.get(f"place_{key}", "")
    for key in ("lat", "lon"):
        place[key] = _number(place[key])
    return place


def _number(text: str) -> float | str | None:
    if not text:
        return None
    try:
        return float(text.replace(",", "."))
    except ValueError:
        return text  # a string where a number belongs: reported as a location error


def _rrule(form: Mapping[str, str], tz: str, all_day: bool) -> str:
    until = form.get("repeat_until", "")
    if not until:
        return form.get("rrule", "")
    try:
        last = date.fromisoformat(until)
        if all_day:
            return f"FREQ=WEEKLY;UNTIL={last:%Y%m%d}"
        # RFC 5545 §3.3.10: with a zoned DTSTART, UNTIL is given in UTC; take the day's local end.
        end = localize(datetime(last.year, last.month, last.day, 23, 59, 59), zone(tz))
        return f"FREQ=WEEKLY;UNTIL={end.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    except (ValueError, OverflowError):  # west of UTC, 9999-12-31 ends in year 10000
        return "FREQ=WEEKLY;UNTIL=invalid"  # the model names the rrule as unreadable


def event_form(event: Event, saved: Iterable[Place]) -> dict[str, str]:
    """Return the event form's fields filled from a stored event."""
    form = dict.fromkeys(EVENT_FIELDS, "")
    form.update(title=event.title, category=event.category)
    form["description"] = html_to_text(event.description)
    form["url"] = event.url
    form["all_day"] = "1" if event.all_day else ""
    form["status"] = event.status
    form["carpooling"] = "on" if event.carpooling else "off"
    _fill_times(form, event)
    _fill_place(form, event.place, saved)
    _fill_repeat(form, event)
    return form


def _fill_times(form: dict[str, str], event: Event) -> None:
    if isinstance(event.start, datetime):
        form["date"] = event.start.date().isoformat()
        form["start_time"] = event.start.strftime("%H:%M")
        if isinstance(event.end, datetime):
            form["end_date"] = event.end.date().isoformat()
            form["end_time"] = event.end.strftime("%H:%M")
        return
    form["date"] = event.start.isoformat()
    if event.end is not None:
        form["end_date"] = (event.end - timedelta(days=1)).isoformat()


def _fill_place(form: dict[str, str], place: Place | None, saved: Iterable[Place]) -> None:
    if place is None:
        return
    if any(p == place for p in saved):
        form["place"] = place.name
        return
    form["place"] = NEW_PLACE
    for key, value in asdict(place).items():
        form[f"place_{key}"] = "" if value is None else str(value)


def _fill_repeat(form: dict[str, str], event: Event) -> None:
    if event.rrule is None:
        return
    until = event.rrule.weekly_until()
    if until is None:
        form["rrule"] = event.rrule.text  # kept as is; the form shows it read-only
        return
    last = until.date() if isinstance(until, datetime) else until
    if isinstance(until, datetime) and until.tzinfo is not None:
        last = until.astimezone(zone(event.timezone)).date()
    form["repeat_until"] = last.isoformat()


def notice_input(form: Mapping[str, str]) -> dict[str, Any]:
    """Turn the notice form's fields into API input values."""
    values = {name: form.get(name, "") for name in NOTICE_FIELDS}
    values["body"] = text_to_html(values["body"])
    return values


def notice_form(notice: Notice, tz: str) -> dict[str, str]:
    """Return the notice form's fields filled from a stored notice."""
    return {
        "title": notice.title,
        "body": html_to_text(notice.body),
        "category": notice.category,
        "expires": "" if notice.expires is None else last_day_shown(notice.expires, tz).isoformat(),
        "url": notice.url,
        "related": notice.related,
    }


def last_day_shown(expires: datetime, tz: str) -> date:
    """Return the last day a notice is shown (one leaving at midnight ends the day before)."""
    local = expires.astimezone(zone(tz))
    if local.time() == time(0):
        return local.date() - timedelta(days=1)
    return local.date()


def explain_errors(
    errors: Mapping[str, Message | str], form: Mapping[str, str]
) -> dict[str, Message | str]:
    """Replace model messages the form's own fields can say better (before translation)."""
    explained: dict[str, Message | str] = dict(errors)
    if "rrule" in explained and _repeats_before_start(form):
        # The model can only say the rule yields no dates; the volunteer picked a day.
        explained["rrule"] = N_(
            "The last time cannot be before the first date; choose a later day."
        )
    return explained


def _repeats_before_start(form: Mapping[str, str]) -> bool:
    try:
        return date.fromisoformat(form.get("repeat_until", "")) < date.fromisoformat(
            form.get("date", "")
        )
    except ValueError:
        return False


def form_errors(errors: Mapping[str, str], form: Mapping[str, str]) -> dict[str, str]:
    """Move model errors (start, end, location, …) onto the form inputs that caused them."""
    moved: dict[str, str] = {}
    for name, message in errors.items():
        target = _input_of(name, form)
        moved[target] = f"{moved[target]} {message}" if target in moved else message
    return moved


def _input_of(name: str, form: Mapping[str, str]) -> str:
    all_day = form.get("all_day") in ("1", "on", "true")
    if name == "start":
        timed = form.get("date") and not all_day and not form.get("start_time")
        return "start_time" if timed else "date"
    if name == "end":
        return "end_date" if all_day or not form.get("end_time") else "end_time"
    if name == "location":
        return "place" if form.get("place") not in ("", NEW_PLACE) else "place_name"
    return {"rrule": "repeat_until", "timezone": "date", "related": "title"}.get(name, name)
