"""The JSON API: create, read, update and delete events and notices with a bearer token."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from typing import Any

from aiohttp import web

from klynge.errors import BadRequest, Conflict, Forbidden, NotFound, TooLarge
from klynge.i18n import N_
from klynge.model import Event, Item, new_id
from klynge.series import sift
from klynge.web import request_lang
from node.auth import user_for_token
from node.carpool.posts import is_carpool
from node.cluster.web import clash_rows, copy_words, has_cluster
from node.keys import CONFIG, STORE, now
from node.publish import entry_link
from node.serialize import (
    EVENT_INPUT,
    NOTICE_INPUT,
    SERIES_KEYS,
    Stamp,
    build_event,
    build_notice,
    check_payload,
    item_to_api,
    item_to_input,
    short_id,
    time_changed,
)
from node.store import User
from node.warnings import warnings_for

MAX_BODY = 64 * 1024
KINDS = {"events": "event", "notices": "notice"}
UUID = r"{uuid:[0-9a-fA-F-]{36}}"
# Event input nests two levels (body, location); ten leaves room and bounds json's recursion.
MAX_DEPTH = 10
NOT_JSON_TYPE = N_("Send JSON with Content-Type: application/json (UTF-8).")
TOO_DEEP = N_("The body nests arrays or objects too deeply.")
CARPOOL_BY_LINK = N_(
    "Only its private link changes a carpool post; the event's association may remove it."
)
# A string (skipped whole, so brackets in a title do not count) or one bracket.
_BRACKETS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')
_SURROGATE = re.compile("[\ud800-\udfff]")


def add_routes(app: web.Application) -> None:
    """Register the /api/ routes."""
    for section in KINDS:
        app.router.add_get(f"/api/{section}", list_entries)
        app.router.add_post(f"/api/{section}", create_entry)
        app.router.add_get(f"/api/{section}/{UUID}", get_entry)
        app.router.add_patch(f"/api/{section}/{UUID}", update_entry)
        app.router.add_delete(f"/api/{section}/{UUID}", delete_entry)


def _kind(request: web.Request) -> str:
    return KINDS[request.path.split("/")[2]]


def api_user(request: web.Request) -> User:
    """Return the user whose API token the request carries (or refuse it)."""
    return user_for_token(request.app[STORE], request.headers.get("Authorization", ""))


def item_response(
    request: web.Request, item: Item, status: int = 200, *, warn: bool = False
) -> web.Response:
    """Return an entry as the API's JSON answer (with `warnings` after a change, if any)."""
    body = item_to_api(item, entry_link(request.app[CONFIG], item))
    found = warnings_for(item, now(request)) if warn else []
    if found:
        lang = request_lang(request)
        body["warnings"] = [{"code": w.code, "message": w.render(lang)} for w in found]
    if warn and isinstance(item, Event) and has_cluster(request):  # issue 13
        body["clashes"] = clash_rows(request, item)
        body["cluster_copy"] = copy_words(request)
    return web.json_response(body, status=status, dumps=_dumps)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


async def read_json(request: web.Request) -> Any:
    """Read a JSON body of at most 64 KB; anything but plain, strict UTF-8 JSON is a 400.

    Python's json accepts more than RFC 8259 allows (NaN, lone surrogates such as "\\ud800",
    numbers that overflow to infinity) and recurses once per nesting level; each of those
    reached the store or the encoder and answered 500 before.
    """
    raw = await _read_body(request)
    if not _is_json_type(request):
        raise BadRequest(NOT_JSON_TYPE)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadRequest(N_("The body is not valid UTF-8.")) from e
    if _depth(text) > MAX_DEPTH:
        raise BadRequest(TOO_DEEP)
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except ValueError as e:
        raise BadRequest(f"The body is not valid JSON: {e}") from e
    if not _text_ok(value):
        raise BadRequest(N_("The body holds text that is not valid Unicode (a lone surrogate)."))
    return value


async def _read_body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise TooLarge(f"The body is over {MAX_BODY // 1024} KB.")
    raw = bytearray()
    while chunk := await request.content.read(MAX_BODY + 1 - len(raw)):
        raw += chunk
        if len(raw) > MAX_BODY:
            raise TooLarge(f"The body is over {MAX_BODY // 1024} KB.")
    return bytes(raw)


def _is_json_type(request: web.Request) -> bool:
    # application/json or a +json type (RFC 6839), in UTF-8: RFC 8259 §8.1 allows no other.
    kind = request.content_type
    json_type = kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )
    return json_type and (request.charset or "utf-8").lower() in ("utf-8", "utf8")


def _depth(text: str) -> int:
    """Return the deepest nesting of arrays and objects in JSON text (one regex pass)."""
    level = deepest = 0
    for match in _BRACKETS.finditer(text):
        token = match.group()
        if token in "[{":
            level += 1
            deepest = max(deepest, level)
        elif token in "]}":
            level -= 1
    return deepest


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise BadRequest(N_("The body holds a number too large to store."))
    return number


def _text_ok(value: Any) -> bool:
    """Tell whether every string (keys too) is valid Unicode, i.e. encodable as UTF-8."""
    if isinstance(value, str):
        return not _SURROGATE.search(value)
    if isinstance(value, dict):
        return all(_text_ok(k) and _text_ok(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_text_ok(v) for v in value)
    return True


def _build(request: web.Request, kind: str, values: dict[str, Any], stamp: Stamp) -> Item:
    config = request.app[CONFIG]
    if kind == "notice":
        return build_notice(values, stamp, default_tz=config.timezone)
    places = [*config.places, *request.app[STORE].places()]
    return build_event(values, stamp, default_tz=config.timezone, places=places)


def find_item(request: web.Request, kind: str) -> Item:
    """Return the entry of this kind that the route's uuid names, or answer 404."""
    item = request.app[STORE].get(request.match_info["uuid"].lower(), kind)
    if item is None:
        raise NotFound(f"No {kind} with id {request.match_info['uuid']}.")
    return item


def may_edit(user: User, item: Item) -> bool:
    """Tell whether `user` may change `item`: their own association's, or any for admins."""
    return user.admin or item.organizer == user.association


def check_may_edit(user: User, item: Item) -> None:
    """Refuse (403) a user who may not change this entry."""
    if not may_edit(user, item):
        raise Forbidden(f"This entry belongs to {item.organizer}; you can change only your own.")


async def list_entries(request: web.Request) -> web.Response:
    """GET /api/events or /api/notices: every entry of that kind."""
    api_user(request)
    kind = _kind(request)
    items = sorted(request.app[STORE].items(kind), key=lambda i: (i.created or i.updated, i.id))
    config = request.app[CONFIG]
    body = {kind + "s": [item_to_api(i, entry_link(config, i)) for i in items]}
    return web.json_response(body, dumps=_dumps)


async def get_entry(request: web.Request) -> web.Response:
    """GET /api/{kind}s/{uuid}: one entry."""
    api_user(request)
    return item_response(request, find_item(request, _kind(request)))


async def create_entry(request: web.Request) -> web.Response:
    """POST /api/events or /api/notices: store a new entry (201 with Location)."""
    user = api_user(request)
    kind = _kind(request)
    payload = check_payload(
        await read_json(request), EVENT_INPUT if kind == "event" else NOTICE_INPUT
    )
    moment = now(request)
    stamp = Stamp(id=new_id(), organizer=user.association, created=moment, updated=moment)
    item = _build(request, kind, payload, stamp)
    await request.app[STORE].save_item(item)
    response = item_response(request, item, status=201, warn=True)
    response.headers["Location"] = f"/api/{kind}s/{short_id(item.id)}"
    return response


async def update_entry(request: web.Request) -> web.Response:
    """PATCH /api/{kind}s/{uuid}: change some fields; sequence rises on time/place/status."""
    user = api_user(request)
    kind = _kind(request)
    old = find_item(request, kind)
    check_may_edit(user, old)
    if is_carpool(old):
        # A resident's post: a PATCH would rebuild it without its seats and contact, and the
        # expiry would then leave it as a plain notice. Its own private link changes it.
        raise Conflict(CARPOOL_BY_LINK)
    spec = EVENT_INPUT if kind == "event" else NOTICE_INPUT
    payload = check_payload(await read_json(request), spec)
    item = await save_edit(request, old, {**item_to_input(old), **payload})
    return item_response(request, item, warn=True)


def edited(request: web.Request, old: Item, values: dict[str, Any]) -> Item:
    """Build the new version of `old` from input values, raising its sequence if due."""
    stamp = Stamp(
        id=old.id,
        organizer=old.organizer,
        created=old.created or old.updated,
        updated=max(now(request), old.updated),
        sequence=old.sequence,
    )
    item = _build(request, old.kind, values, stamp)
    if isinstance(item, Event) and isinstance(old, Event) and not SERIES_KEYS & values.keys():
        # A form edit does not carry the series' exceptions: keep those that still fit.
        item, _dropped = sift(item, old.exdates, old.rdates, old.changes)
    if isinstance(item, Event) and isinstance(old, Event) and time_changed(old, item):
        item = replace(item, sequence=old.sequence + 1)
    return item


async def save_edit(request: web.Request, old: Item, values: dict[str, Any]) -> Item:
    """Build the new version of `old` (see `edited`) and store it."""
    item = edited(request, old, values)
    await request.app[STORE].save_item(item)
    return item


async def delete_entry(request: web.Request) -> web.Response:
    """DELETE /api/{kind}s/{uuid}: remove the entry, leaving a tombstone in the feed."""
    user = api_user(request)
    item = find_item(request, _kind(request))
    check_may_edit(user, item)
    await request.app[STORE].delete_item(item)
    return web.Response(status=204)
