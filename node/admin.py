"""Volunteer pages for entries: list; form, preview and publish; status; delete and undo.

Every change goes through the same builders and store calls as the JSON API, so a form and
a script get the same validation and the same feed. A filled-in form first shows a preview
(the entry as residents will see it) carrying the typed values as hidden fields; only its
"Publish" button stores, and "Change" goes back to the form with the values kept.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from aiohttp import web
from multidict import MultiDictProxy

from klynge.errors import Forbidden, NotFound, ValidationError
from klynge.i18n import N_, translate_fields
from klynge.messages import Message
from klynge.model import CATEGORIES, Event, Item, Notice, Place, new_id
from klynge.web import gettext, read_form, render, request_lang
from node import accounts
from node.api import edited, may_edit, save_edit
from node.carpool.picker import event_choices
from node.carpool.posts import is_carpool
from node.cluster.web import COPY, clash_context, copy_words
from node.forms import (
    EVENT_FIELDS,
    NEW_PLACE,
    NOTICE_FIELDS,
    event_form,
    event_input,
    explain_errors,
    form_errors,
    form_values,
    notice_form,
    notice_input,
)
from node.keys import CONFIG, STORE, now
from node.serialize import (
    Stamp,
    build_event,
    build_notice,
    full_id,
    item_to_input,
    short_id,
)
from node.sessions import redirect
from node.store import User
from node.undo import UNDO, UNDO_MINUTES, UndoShelf, restored
from node.views import event_context, notice_context
from node.warnings import warnings_for

UUID = r"{uuid:[0-9a-fA-F-]{36}}"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
STATUS_ACTIONS = {"cancel": "cancelled", "postpone": "postponed", "confirm": "confirmed"}
DONE_MESSAGES = {
    "created": N_("Saved. It is now on the village page and in the cluster's calendar."),
    "saved": N_("Your changes are saved. The village page and the cluster's calendar show them."),
    "cancelled": N_("The event is marked as cancelled."),
    "postponed": N_("The event is marked as postponed."),
    "confirmed": N_("The event is back on as planned."),
    "restored": N_("Undone: %(title)s is back on the village page."),
}
STATUS_LABELS = (
    ("confirmed", N_("As planned")),
    ("cancelled", N_("Cancelled")),
    ("postponed", N_("Postponed")),
    ("tentative", N_("Tentative")),
)


def add_routes(app: web.Application) -> None:
    """Register the volunteer routes (entries, then accounts and places)."""
    app[UNDO] = UndoShelf(app[CONFIG].clock.now)
    app.router.add_get("/admin", entry_list)
    for kind in ("events", "notices"):
        app.router.add_route("*", f"/admin/{kind}/new", new_entry)
        app.router.add_route("*", f"/admin/{kind}/{UUID}/edit", edit_entry)
        app.router.add_post(f"/admin/{kind}/{UUID}/delete", delete_entry)
        app.router.add_post(f"/admin/{kind}/{UUID}/restore", restore_entry)
    app.router.add_post(f"/admin/events/{UUID}/{{action:cancel|postpone|confirm}}", set_status)
    accounts.add_routes(app)


def _kind(request: web.Request) -> str:
    return "event" if request.path.startswith("/admin/events") else "notice"


def _places(request: web.Request) -> list[Place]:
    return [*request.app[CONFIG].places, *request.app[STORE].places()]


def _own_item(request: web.Request, user: User) -> Item:
    kind = _kind(request)
    item = request.app[STORE].get(request.match_info["uuid"].lower(), kind)
    if item is None or is_carpool(item):
        raise NotFound(N_("That entry does not exist (any more)."))
    if not may_edit(user, item):
        raise Forbidden(N_("This entry belongs to another association."))
    return item


def _t(request: web.Request, msgid: str, **params: Any) -> str:
    return gettext(request, msgid, **params)


def _page_link(item: Item) -> str:
    return f"/{item.kind}s/{short_id(item.id)}"


# --- the list, with the confirmation or undo of the last action ----------------------------


async def entry_list(request: web.Request) -> web.Response:
    """GET /admin: our association's entries (all entries for admins)."""
    user = accounts.login_required(request)
    # Carpool posts are residents' own, changed by their link or removed at /admin/carpools.
    items = [i for i in request.app[STORE].items() if may_edit(user, i) and not is_carpool(i)]
    events = sorted((i for i in items if isinstance(i, Event)), key=lambda e: e.series_end())
    notices = sorted((i for i in items if isinstance(i, Notice)), key=lambda n: n.updated)
    context = {
        "user": user,
        "events": events,
        "notices": [
            notice_context(n, request.app[CONFIG].timezone, now(request)) for n in notices[::-1]
        ],
        "short_id": short_id,
        "done": _done(request, user),
    }
    return render(request, "admin.html", context)


def _done(request: web.Request, user: User) -> dict[str, str] | None:
    """Return the confirmation of what was just done (message, link, undo form), if any."""
    done = request.query.get("done", "")
    uuid = request.query.get("entry", "").lower()
    if done == "deleted":
        return _deleted_notice(request, user, uuid)
    if done not in DONE_MESSAGES:
        return None
    item = request.app[STORE].get(uuid) if UUID_RE.match(uuid) else None
    link = _page_link(item) if item is not None and may_edit(user, item) else ""
    title = item.title if item is not None else ""
    return {"message": _t(request, DONE_MESSAGES[done], title=title), "link": link}


def _deleted_notice(request: web.Request, user: User, uuid: str) -> dict[str, str]:
    found = request.app[UNDO].get(uuid)
    if found is None or not may_edit(user, found.item):
        return {"message": gettext(request, "Deleted.")}
    title = found.item.title
    return {
        "message": gettext(request, "Deleted: %(title)s.", title=title),
        "undo": f"/admin/{found.item.kind}s/{uuid}/restore",
        "undo_hint": gettext(request, "You can undo it for %(n)s minutes.", n=UNDO_MINUTES),
    }


# --- new and edited entries: form -> preview -> publish ------------------------------------


async def new_entry(request: web.Request) -> web.Response:
    """GET/POST /admin/{events,notices}/new: the form, the preview, then the stored entry."""
    user = accounts.login_required(request)
    kind = _kind(request)
    if request.method != "POST":
        return _form(request, kind, None, {}, {})
    post = await read_form(request)
    form, draft = _form_of(post, kind), _draft(post)
    if post.get("action") == "edit":
        return _form(request, kind, None, form, {}, draft=draft)
    moment = now(request)
    stamp = Stamp(id=draft, organizer=user.association, created=moment, updated=moment)
    try:
        item = _build(request, kind, _input(request, kind, form), stamp)
    except ValidationError as e:
        return _form(request, kind, None, form, e.fields, status=422, draft=draft)
    if post.get("action") != "publish":
        return _preview(request, item, form, draft=draft)
    return await _publish_new(request, user, item)


async def _publish_new(request: web.Request, user: User, item: Item) -> web.Response:
    store = request.app[STORE]
    existing = store.get(item.id)
    if existing is not None and existing.kind == item.kind:
        # "Publish" pressed twice, or the preview sent again: it is stored once already.
        if not may_edit(user, existing):
            raise Forbidden(N_("This entry belongs to another association."))
        return redirect(f"/admin?done=created&entry={short_id(existing.id)}")
    if existing is not None or any(t.id == item.id for t in store.tombstones()):
        item = replace(item, id=new_id())  # that draft's id is taken: a new entry after all
    await store.save_item(item)
    await _remember_place(request, item)
    return redirect(f"/admin?done=created&entry={short_id(item.id)}")


async def _remember_place(request: web.Request, item: Item) -> None:
    """Save a place typed in the form, so the next event can pick it from the list."""
    place = item.place if isinstance(item, Event) else None
    if place is None or not place.name:
        return
    if all(p.name.casefold() != place.name.casefold() for p in _places(request)):
        await request.app[STORE].save_place(place)


async def edit_entry(request: web.Request) -> web.Response:
    """GET/POST /admin/{kind}/{uuid}/edit: the filled form, the preview, then the change."""
    user = accounts.login_required(request)
    old = _own_item(request, user)
    if request.method != "POST":
        return _form(request, old.kind, old, _filled(request, old), {})
    post = await read_form(request)
    form = _form_of(post, old.kind)
    if post.get("action") == "edit":
        return _form(request, old.kind, old, form, {})
    values = _input(request, old.kind, form)
    try:
        item = _edited(request, old, values)
    except ValidationError as e:
        return _form(request, old.kind, old, form, e.fields, status=422)
    if post.get("action") != "publish":
        return _preview(request, item, form, old=old)
    await _remember_place(request, await save_edit(request, old, values))
    return redirect(f"/admin?done=saved&entry={short_id(old.id)}")


def _edited(request: web.Request, old: Item, values: dict[str, Any]) -> Item:
    """Build the new version of `old` as node.api.save_edit will store it (for the preview)."""
    return edited(request, old, values)


def _form_of(post: MultiDictProxy[Any], kind: str) -> dict[str, str]:
    return form_values(post, EVENT_FIELDS if kind == "event" else NOTICE_FIELDS)


def _draft(post: MultiDictProxy[Any]) -> str:
    """Return the new entry's id chosen at preview, so publishing twice stores it once."""
    given = str(post.get("draft", "")).strip().lower()
    return full_id(given) if UUID_RE.match(given) else new_id()


def _input(request: web.Request, kind: str, form: dict[str, str]) -> dict[str, Any]:
    if kind == "event":
        return event_input(form, request.app[CONFIG].timezone)
    return notice_input(form)


def _build(request: web.Request, kind: str, values: dict[str, Any], stamp: Stamp) -> Item:
    tz = request.app[CONFIG].timezone
    if kind == "notice":
        return build_notice(values, stamp, default_tz=tz)
    return build_event(values, stamp, default_tz=tz, places=_places(request))


def _filled(request: web.Request, item: Item) -> dict[str, str]:
    if isinstance(item, Event):
        return event_form(item, _places(request))
    return notice_form(item, request.app[CONFIG].timezone)


def _preview(
    request: web.Request,
    item: Item,
    form: dict[str, str],
    *,
    draft: str = "",
    old: Item | None = None,
) -> web.Response:
    tz = request.app[CONFIG].timezone
    shown = (
        event_context(item) if isinstance(item, Event) else notice_context(item, tz, now(request))
    )
    context = shown | {
        "item": item,
        "old": old,
        "form": form,
        "draft": short_id(draft),
        "action": request.path,
        "hx": "h2",
        "warnings": [w.render(request_lang(request)) for w in warnings_for(item, now(request))],
    }
    context |= clash_context(request, item if isinstance(item, Event) else None)
    return render(request, "preview.html", context)


def _form(
    request: web.Request,
    kind: str,
    item: Item | None,
    form: dict[str, str],
    errors: Mapping[str, Message | str],
    *,
    status: int = 200,
    draft: str = "",
) -> web.Response:
    lang = request_lang(request)
    categories = [(k, v[1] if lang == "en" else v[0]) for k, v in CATEGORIES.items()]
    if errors and not form.get("title"):
        # The model checks the title only once the times parse: name every gap at once.
        errors = {"title": N_("Give a title."), **errors}
    # Translated before moving: two messages may land on one input and are joined.
    explained = explain_errors(errors, form)
    translated = translate_fields(request_lang(request), explained)
    context = {
        "item": item,
        "form": form,
        "errors": form_errors(translated, form),
        "categories": [("", gettext(request, "Choose (optional)")), *categories],
        "statuses": [(value, _t(request, label)) for value, label in STATUS_LABELS],
        "place_options": [(p.name, p.full) for p in _places(request)],
        "new_place": NEW_PLACE,
        "action": request.path,
        "draft": short_id(draft),
    }
    if kind == "notice":
        user = accounts.login_required(request)
        context["event_choices"] = [("", gettext(request, "No event")), *event_choices(
            request.app[STORE], user.association, form.get("related", ""), now(request),
            request.app[CONFIG].timezone, lang, request.app[COPY].events())]  # fmt: skip
    if kind == "event":  # the clash box: filled by the form's script, or by the preview
        request.app[COPY].refresh_if_old()
        context |= {"cluster_copy": copy_words(request), "clashes": []}
    return render(request, f"{kind}_form.html", context, status=status)


# --- status, delete and undo ----------------------------------------------------------------


async def set_status(request: web.Request) -> web.Response:
    """POST /admin/events/{uuid}/{cancel,postpone,confirm}: change the event's status."""
    user = accounts.login_required(request)
    old = _own_item(request, user)
    status = STATUS_ACTIONS[request.match_info["action"]]
    await save_edit(request, old, {**item_to_input(old), "status": status})
    return redirect(f"/admin?done={status}&entry={short_id(old.id)}")


async def delete_entry(request: web.Request) -> web.Response:
    """POST /admin/{kind}/{uuid}/delete: remove the entry (tombstone in the feed); undo offered."""
    user = accounts.login_required(request)
    item = _own_item(request, user)
    tombstone = await request.app[STORE].delete_item(item)
    request.app[UNDO].put(item, tombstone, user.username)
    return redirect(f"/admin?done=deleted&entry={short_id(item.id)}")


async def restore_entry(request: web.Request) -> web.Response:
    """POST /admin/{kind}/{uuid}/restore: undo a delete of the last 10 minutes."""
    user = accounts.login_required(request)
    uuid = request.match_info["uuid"].lower()
    store, shelf = request.app[STORE], request.app[UNDO]
    back = store.get(uuid, _kind(request))
    if back is not None and may_edit(user, back):  # "Undo" pressed twice: it is back already
        return redirect(f"/admin?done=restored&entry={uuid}")
    found = shelf.get(uuid)
    if found is None or found.item.kind != _kind(request):
        raise NotFound(N_("It is too late to undo that; make the entry again."))
    if not may_edit(user, found.item):
        raise Forbidden(N_("This entry belongs to another association."))
    await store.restore_item(restored(found, now(request)))
    shelf.forget(uuid)
    return redirect(f"/admin?done=restored&entry={uuid}")
