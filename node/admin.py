"""Volunteer pages for entries: list, create, edit, cancel, postpone and delete.

Every change goes through the same builders and store calls as the JSON API, so a form and
a script get the same validation and the same feed. Each handler builds the new version
first (`_build` / `save_edit`) and stores it last, so a preview or confirmation step can
render the built item instead of storing it, and undo can store the previous version.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from klynge.errors import Forbidden, NotFound, ValidationError
from klynge.i18n import N_
from klynge.model import CATEGORIES, Event, Item, Notice, Place, new_id, utcnow
from klynge.web import gettext, render, request_lang
from node import accounts
from node.api import may_edit, save_edit
from node.forms import (
    EVENT_FIELDS,
    NEW_PLACE,
    NOTICE_FIELDS,
    event_form,
    event_input,
    form_values,
    notice_form,
    notice_input,
)
from node.keys import CONFIG, STORE
from node.serialize import Stamp, build_event, build_notice, item_to_input, short_id
from node.sessions import redirect
from node.store import User

UUID = r"{uuid:[0-9a-fA-F-]{36}}"
STATUS_ACTIONS = {"cancel": "cancelled", "postpone": "postponed", "confirm": "confirmed"}
DONE_MESSAGES = {
    "created": N_("Saved. It is now on the village page and in the feed."),
    "saved": N_("Your changes are saved."),
    "cancelled": N_("The event is marked as cancelled."),
    "postponed": N_("The event is marked as postponed."),
    "confirmed": N_("The event is back on as planned."),
    "deleted": N_("Deleted."),
}


def add_routes(app: web.Application) -> None:
    """Register the volunteer routes (entries, then accounts and places)."""
    app.router.add_get("/admin", entry_list)
    for kind in ("events", "notices"):
        app.router.add_route("*", f"/admin/{kind}/new", new_entry)
        app.router.add_route("*", f"/admin/{kind}/{UUID}/edit", edit_entry)
        app.router.add_post(f"/admin/{kind}/{UUID}/delete", delete_entry)
    app.router.add_post(f"/admin/events/{UUID}/{{action:cancel|postpone|confirm}}", set_status)
    accounts.add_routes(app)


def _kind(request: web.Request) -> str:
    return "event" if request.path.startswith("/admin/events") else "notice"


def _places(request: web.Request) -> list[Place]:
    return [*request.app[CONFIG].places, *request.app[STORE].places()]


def _own_item(request: web.Request, user: User) -> Item:
    kind = _kind(request)
    item = request.app[STORE].get(request.match_info["uuid"].lower(), kind)
    if item is None:
        raise NotFound(N_("That entry does not exist (any more)."))
    if not may_edit(user, item):
        raise Forbidden(N_("This entry belongs to another association."))
    return item


async def entry_list(request: web.Request) -> web.Response:
    """GET /admin: our association's entries (all entries for admins)."""
    user = accounts.login_required(request)
    items = [i for i in request.app[STORE].items() if may_edit(user, i)]
    events = sorted((i for i in items if isinstance(i, Event)), key=lambda e: e.series_end())
    notices = sorted((i for i in items if isinstance(i, Notice)), key=lambda n: n.updated)
    done = DONE_MESSAGES.get(request.query.get("done", ""))
    context = {"user": user, "events": events, "notices": notices[::-1], "short_id": short_id}
    if done:
        context["flash"] = [_t(request, done)]
    return render(request, "admin.html", context)


def _t(request: web.Request, msgid: str) -> str:
    return gettext(request, msgid)


async def new_entry(request: web.Request) -> web.Response:
    """GET/POST /admin/{events,notices}/new: the empty form, then the new entry."""
    user = accounts.login_required(request)
    kind = _kind(request)
    if request.method != "POST":
        return _form(request, kind, None, {}, {})
    now = utcnow()
    stamp = Stamp(id=new_id(), organizer=user.association, created=now, updated=now)
    form, values = await _posted(request, kind)
    try:
        item = _build(request, kind, values, stamp)
    except ValidationError as e:
        return _form(request, kind, None, form, e.fields, status=422)
    await request.app[STORE].save_item(item)
    return redirect("/admin?done=created")


async def edit_entry(request: web.Request) -> web.Response:
    """GET/POST /admin/{kind}/{uuid}/edit: the filled form, then the changed entry."""
    user = accounts.login_required(request)
    old = _own_item(request, user)
    if request.method != "POST":
        return _form(request, old.kind, old, _filled(request, old), {})
    form, values = await _posted(request, old.kind)
    try:
        await save_edit(request, old, values)
    except ValidationError as e:
        return _form(request, old.kind, old, form, e.fields, status=422)
    return redirect("/admin?done=saved")


async def set_status(request: web.Request) -> web.Response:
    """POST /admin/events/{uuid}/{cancel,postpone,confirm}: change the event's status."""
    user = accounts.login_required(request)
    old = _own_item(request, user)
    status = STATUS_ACTIONS[request.match_info["action"]]
    await save_edit(request, old, {**item_to_input(old), "status": status})
    return redirect(f"/admin?done={status}")


async def delete_entry(request: web.Request) -> web.Response:
    """POST /admin/{kind}/{uuid}/delete: remove the entry, leaving a tombstone in the feed."""
    user = accounts.login_required(request)
    item = _own_item(request, user)
    await request.app[STORE].delete_item(item)
    return redirect("/admin?done=deleted")


async def _posted(request: web.Request, kind: str) -> tuple[dict[str, str], dict[str, Any]]:
    post = await request.post()
    tz = request.app[CONFIG].timezone
    if kind == "event":
        form = form_values(post, EVENT_FIELDS)
        return form, event_input(form, tz)
    form = form_values(post, NOTICE_FIELDS)
    return form, notice_input(form)


def _build(request: web.Request, kind: str, values: dict[str, Any], stamp: Stamp) -> Item:
    tz = request.app[CONFIG].timezone
    if kind == "notice":
        return build_notice(values, stamp, default_tz=tz)
    return build_event(values, stamp, default_tz=tz, places=_places(request))


def _filled(request: web.Request, item: Item) -> dict[str, str]:
    if isinstance(item, Event):
        return event_form(item, _places(request))
    return notice_form(item, request.app[CONFIG].timezone)


def _form(
    request: web.Request,
    kind: str,
    item: Item | None,
    form: dict[str, str],
    errors: dict[str, str],
    *,
    status: int = 200,
) -> web.Response:
    lang = request_lang(request)
    categories = [("", "—")] + [(k, v[1] if lang == "en" else v[0]) for k, v in CATEGORIES.items()]
    context = {
        "item": item,
        "form": form,
        "errors": errors,
        "categories": categories,
        "place_options": [(p.name, p.full) for p in _places(request)],
        "new_place": NEW_PLACE,
        "action": request.path,
        "short_id": short_id,
    }
    return render(request, f"{kind}_form.html", context, status=status)
