"""Single dates of a series: cancel, move or retitle one date, or cancel the rest of the series.

One set of operations (`date_change`) serves the volunteer's page (/admin/events/{uuid}/dates,
plain forms that work without JavaScript) and the JSON API (POST /api/events/{uuid}/dates,
docs/api.md). Each returns the input overlay that `node.api.save_edit` stores, so a date
changed here goes through the same validation, sequence rule and feed as any edit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiohttp import web

from klynge.errors import FieldErrors, ValidationError, problem_of
from klynge.i18n import N_, translate_fields
from klynge.model import Event, Place, When, format_when, parse_when
from klynge.recurrence import Occurrence, occurrences
from klynge.repeat_rule import rule_text
from klynge.series import Change, changed, dates, key
from klynge.series_text import change_json
from klynge.web import read_form, render, request_lang
from node import accounts
from node.api import api_user, check_may_edit, find_item, item_response, read_json, save_edit
from node.keys import CONFIG, STORE, now
from node.serialize import check_payload, item_to_input, parse_location, short_id
from node.sessions import redirect

UUID = r"{uuid:[0-9a-fA-F-]{36}}"
ACTIONS = ("cancel", "move", "edit", "restore", "end")
DATES_SHOWN = 12  # upcoming dates with their forms on the page
DATE_INPUT: dict[str, tuple[type | None, ...]] = {
    "action": (str,),
    "original": (str,),
    "start": (str, None),
    "end": (str, None),
    "location": (dict, str, None),
    "title": (str, None),
    "description": (str, None),
}
NOT_A_SERIES = N_("Only a repeating event has single dates to change.")
NO_SUCH_DATE = N_("That is not a date of this series.")
UNKNOWN_ACTION = N_("Choose cancel, move, edit, restore or end.")
FIRST_DATE = N_("That is the first date: cancel the whole event instead.")
NOTHING_TO_MOVE = N_("Give a new date and time.")
NOTHING_TO_EDIT = N_("Give a title or a description for this date.")


def add_routes(app: web.Application) -> None:
    """Register the series date routes (volunteer page and API)."""
    app.router.add_get(f"/admin/events/{UUID}/dates", dates_page)
    app.router.add_post(f"/admin/events/{UUID}/dates/{{action:{'|'.join(ACTIONS)}}}", date_form)
    app.router.add_post(f"/api/events/{UUID}/dates", date_api)


# --- the operations -------------------------------------------------------------------------


def date_change(
    event: Event, action: str, values: Mapping[str, Any], places: list[Place]
) -> dict[str, Any]:
    """Return the input overlay that applies `action` to one date, or raise per field."""
    if event.rrule is None:
        raise ValidationError({"original": NOT_A_SERIES})
    if action not in ACTIONS:
        raise ValidationError({"action": UNKNOWN_ACTION})
    original = _original(event, str(values.get("original") or ""))
    if action == "end":
        return _end_series(event, original)
    old = changed(event).get(key(original)) or Change(original=original)
    if action == "restore":
        return _changes(event, original, None)
    if action == "cancel":
        new = replace(old, cancelled=True)
    elif action == "move":
        new = _moved(event, old, values, places)
    else:
        new = _edited(old, values)
    return _changes(event, original, replace(new, sequence=event.sequence + 1))


def _original(event: Event, text: str) -> When:
    try:
        value = parse_when(text, tz=event.timezone, all_day=event.all_day)
    except ValueError as e:
        raise ValidationError({"original": problem_of(e)}) from e
    if key(value) not in {key(d) for d in dates(event)}:
        raise ValidationError({"original": NO_SUCH_DATE})
    return value


def _moved(event: Event, old: Change, values: Mapping[str, Any], places: list[Place]) -> Change:
    errors: FieldErrors = {}
    start = _time(event, values, "start", errors)
    end = _time(event, values, "end", errors)
    place = parse_location(_location(values.get("location"), places), places, errors)
    if start is None and "start" not in errors:
        errors["start"] = NOTHING_TO_MOVE
    if errors:
        raise ValidationError(errors)
    return replace(old, start=start, end=end, place=place or old.place, cancelled=False)


def _location(value: Any, places: list[Place]) -> Any:
    """Return a typed place name as a saved place's name, or as a new place of that name."""
    if not isinstance(value, str) or not value.strip():
        return value or None
    known = {p.name.casefold() for p in places}
    return value if value.strip().casefold() in known else {"name": value.strip()}


def _time(event: Event, values: Mapping[str, Any], name: str, errors: FieldErrors) -> When | None:
    text = str(values.get(name) or "").strip()
    if not text:
        return None
    try:
        return parse_when(text, tz=event.timezone, all_day=event.all_day)
    except ValueError as e:
        errors[name] = problem_of(e)
        return None


def _edited(old: Change, values: Mapping[str, Any]) -> Change:
    title = str(values.get("title") or "").strip()
    description = str(values.get("description") or "").strip()
    if not title and not description:
        raise ValidationError({"title": NOTHING_TO_EDIT})
    return replace(old, title=title or old.title, description=description or old.description)


def _changes(event: Event, original: When, new: Change | None) -> dict[str, Any]:
    kept = [c for c in event.changes if key(c.original) != key(original)]
    if new is not None:
        kept.append(new)
    return {"changes": [change_json(c) for c in kept]}


def _end_series(event: Event, original: When) -> dict[str, Any]:
    """Return the overlay that ends the series before `original` (RRULE UNTIL, RFC 5545)."""
    assert event.rrule is not None
    if key(original) == key(dates(event)[0]):
        raise ValidationError({"original": FIRST_DATE})
    until: date | datetime
    if isinstance(original, datetime):
        until = original.astimezone(UTC) - timedelta(seconds=1)
    else:
        until = original - timedelta(days=1)
    rule = replace(event.rrule, count=None, until=until)
    keep = key(original)
    return {
        "rrule": rule_text(rule),
        "exdates": [format_when(d) for d in event.exdates if key(d) < keep],
        "rdates": [format_when(d) for d in event.rdates if key(d) < keep],
        "changes": [change_json(c) for c in event.changes if key(c.original) < keep],
    }


async def apply(request: web.Request, event: Event, action: str, values: Mapping[str, Any]) -> Any:
    """Apply `action` to one date of `event` and store the new version (see save_edit)."""
    places = [*request.app[CONFIG].places, *request.app[STORE].places()]
    overlay = date_change(event, action, values, places)
    return await save_edit(request, event, {**item_to_input(event), **overlay})


# --- the volunteer's page -------------------------------------------------------------------


def _own_event(request: web.Request) -> Event:
    user = accounts.login_required(request)
    event = request.app[STORE].get(request.match_info["uuid"].lower(), "event")
    if not isinstance(event, Event):
        raise web.HTTPNotFound()
    check_may_edit(user, event)
    return event


def upcoming(event: Event, moment: datetime) -> list[Occurrence]:
    """Return the series' coming dates (changed ones as changed), at most DATES_SHOWN."""
    far = datetime(2201, 1, 1, tzinfo=UTC)
    return occurrences(event, moment, far, limit=DATES_SHOWN)


async def dates_page(request: web.Request) -> web.Response:
    """GET /admin/events/{uuid}/dates: each coming date with cancel, move and edit forms."""
    return _page(request, _own_event(request))


def _page(
    request: web.Request,
    event: Event,
    *,
    failed: tuple[str, str] = ("", ""),
    form: Mapping[str, str] | None = None,
    errors: Mapping[str, Any] | None = None,
    status: int = 200,
) -> web.Response:
    translated = translate_fields(request_lang(request), dict(errors or {}))
    context = {
        "event": event,
        "uid": short_id(event.id),
        "rows": [(o, format_when(o.original or o.start)) for o in upcoming(event, now(request))],
        "failed": failed,  # (action, original) of the form that has errors
        "form": dict(form or {}),
        "errors": translated,
        "done": request.query.get("done", ""),
    }
    return render(request, "dates.html", context, status=status)


async def date_form(request: web.Request) -> web.Response:
    """POST /admin/events/{uuid}/dates/{action}: change one date, or end the series there."""
    event = _own_event(request)
    action = request.match_info["action"]
    post = await read_form(request)
    form = {k: str(post.get(k, "")) for k in ("original", "start", "end", "location", "title")}
    form["description"] = str(post.get("description", ""))
    values: dict[str, Any] = {**form, "location": form["location"].strip() or None}
    try:
        await apply(request, event, action, values)
    except ValidationError as e:
        failed = (action, form["original"])
        return _page(request, event, failed=failed, form=form, errors=e.fields, status=422)
    return redirect(f"/admin/events/{short_id(event.id)}/dates?done={action}")


async def date_api(request: web.Request) -> web.Response:
    """POST /api/events/{uuid}/dates: {"action", "original", ...}; the changed event."""
    user = api_user(request)
    event = find_item(request, "event")
    assert isinstance(event, Event)
    check_may_edit(user, event)
    payload = check_payload(await read_json(request), DATE_INPUT)
    item = await apply(request, event, str(payload.get("action", "")), payload)
    return item_response(request, item)
