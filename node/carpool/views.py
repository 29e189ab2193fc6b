"""The carpool pages: the public form of an event, the private link, the association's list.

Residents have no account: a post is made on `/events/{uuid}/carpool` and changed or
withdrawn through `/carpool/{uuid}/{secret}`, the link shown once after posting. The
association that owns the event removes posts from `/admin/carpools`.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from aiohttp import web

from klynge.errors import Forbidden, NotFound, ValidationError
from klynge.messages import Message, define
from klynge.model import Event, Notice, zone
from klynge.web import read_form, render, request_lang
from node import accounts
from node.carpool import posts
from node.carpool.decode import HONEYPOT, decode_post, field_text, is_bot
from node.carpool.limits import OPEN_PER_EVENT, PostLimiter
from node.keys import CONFIG, STORE, now
from node.serialize import short_id
from node.sessions import redirect

UUID = r"{uuid:[0-9a-fA-F-]{36}}"
SECRET = r"{secret:[A-Za-z0-9_-]{1,100}}"
SHOWN_FIELDS = ("direction", "seats", "from", "departure", "name", "phone", "email")
LIMITER = web.AppKey("carpool_limiter", PostLimiter)

CLOSED = define("carpool.closed", "This event takes no carpool posts (any more).")
NO_POST = define("carpool.no_post", "That carpool post does not exist (any more).")
TOO_MANY = define(
    "carpool.too_many",
    "Too many carpool posts from your address or for this event just now; try again in an hour.",
)
FULL = define("carpool.full", "This event has %(max)s open carpool posts; no more can be added.")
NOT_PUBLISHED = define(
    "carpool.not_published", "Your post was not published: a field for robots was filled in."
)
NOT_YOURS = define(
    "carpool.not_yours", "Only the association that arranges the event may remove its posts."
)


def add_routes(app: web.Application, limiter: PostLimiter | None = None) -> None:
    """Register the carpool routes and the post limiter."""
    app[LIMITER] = limiter or PostLimiter()
    app.router.add_route("*", f"/events/{UUID}/carpool", public_form)
    app.router.add_route("*", f"/carpool/{UUID}/{SECRET}", private_link)
    app.router.add_get("/admin/carpools", association_list)
    app.router.add_post(f"/admin/carpools/{UUID}/remove", remove)


def _open_event(request: web.Request) -> Event:
    item = request.app[STORE].get(request.match_info["uuid"].lower(), "event")
    if not isinstance(item, Event) or not item.carpooling or posts.ends_at(item) <= now(request):
        raise NotFound(Message(CLOSED))
    return item


def _event_day(event: Event) -> date:
    start = event.start
    return start.astimezone(zone(event.timezone)).date() if isinstance(start, datetime) else start


def _lang(request: web.Request) -> str:
    return request_lang(request)


def _form_context(
    request: web.Request, event: Event, form: dict[str, str], **extra: Any
) -> dict[str, Any]:
    return {
        "event": event,
        "form": form,
        "errors": {},
        "honeypot": HONEYPOT,
        "action": request.path,
        **extra,
    }


def _words(request: web.Request, errors: dict[str, Message]) -> dict[str, str]:
    return {name: message.render(_lang(request)) for name, message in errors.items()}


async def public_form(request: web.Request) -> web.Response:
    """GET/POST /events/{uuid}/carpool: offer or ask for seats, no account needed."""
    event = _open_event(request)
    if request.method != "POST":
        return render(
            request,
            "carpool_form.html",
            _form_context(request, event, {"direction": "offer", "seats": "1"}),
        )
    form = await read_form(request)
    values = _values(form)
    problem, status = _refusal(request, event, form)
    if problem is not None:
        context = _form_context(request, event, values, problem=problem.render(_lang(request)))
        return render(request, "carpool_form.html", context, status=status)
    tz = zone(event.timezone)
    try:
        carpool = decode_post(form, _event_day(event), tz)
    except ValidationError as e:
        context = _form_context(request, event, values, errors=_words(request, dict(e.fields)))
        return render(request, "carpool_form.html", context, status=422)
    request.app[LIMITER].record(accounts.client_address(request), event.id)
    notice, secret = await posts.create(
        request.app[STORE], event, carpool, now(request), request.app[CONFIG].language
    )
    link = f"{request.app[CONFIG].public_url}/carpool/{short_id(notice.id)}/{secret}"
    response = render(
        request, "carpool_posted.html", {"event": event, "notice": notice, "link": link}, status=201
    )
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


def _words_of(request: web.Request, code: str) -> str:
    return Message(code).render(_lang(request))


def _values(form: Any) -> dict[str, str]:
    return {name: field_text(form, name) for name in SHOWN_FIELDS}


def _refusal(request: web.Request, event: Event, form: Any) -> tuple[Message | None, int]:
    """Return why a post is refused before its fields are read (honeypot, limits, cap)."""
    if is_bot(form):
        return Message(NOT_PUBLISHED), 400
    if not request.app[LIMITER].allowed(accounts.client_address(request), event.id):
        return Message(TOO_MANY), 429
    if len(posts.open_posts(request.app[STORE], event.id)) >= OPEN_PER_EVENT:
        return Message(FULL, {"max": OPEN_PER_EVENT}), 409
    return None, 200


def _owned_post(request: web.Request) -> tuple[Notice, Event]:
    store = request.app[STORE]
    notice = store.get(request.match_info["uuid"].lower(), "notice")
    if not isinstance(notice, Notice) or notice.carpool is None:
        raise NotFound(Message(NO_POST))
    if not posts.owns(store, notice, request.match_info["secret"]):
        raise NotFound(Message(NO_POST))  # a wrong secret looks like no post at all
    event = store.get(notice.related, "event")
    if not isinstance(event, Event):
        raise NotFound(Message(NO_POST))
    return notice, event


def _filled(notice: Notice, tz: str) -> dict[str, str]:
    c = notice.carpool
    assert c is not None
    when = c.departure.astimezone(zone(tz)).strftime("%H:%M") if c.departure else ""
    return {
        "direction": c.direction,
        "seats": str(c.seats),
        "from": c.origin,
        "departure": when,
        "name": c.contact,
        "phone": c.phone,
        "email": c.email,
    }


async def private_link(request: web.Request) -> web.Response:
    """GET/POST /carpool/{uuid}/{secret}: change or withdraw one's own post."""
    notice, event = _owned_post(request)
    extra = {"editing": True, "notice": notice}
    if request.method != "POST":
        response = render(
            request,
            "carpool_form.html",
            _form_context(request, event, _filled(notice, event.timezone), **extra),
        )
        response.headers["Referrer-Policy"] = "no-referrer"
        return response
    form = await read_form(request)
    store = request.app[STORE]
    if field_text(form, "action") == "withdraw":
        await posts.withdraw(store, notice, now(request))
        return render(request, "carpool_gone.html", {"event": event})
    address = accounts.client_address(request)
    if not request.app[LIMITER].allowed(address, event.id):
        context = _form_context(
            request, event, _values(form), problem=_words_of(request, TOO_MANY), **extra
        )
        return render(request, "carpool_form.html", context, status=429)
    tz = zone(event.timezone)
    values = _values(form)
    try:
        carpool = decode_post(form, _event_day(event), tz)
    except ValidationError as e:
        context = _form_context(
            request, event, values, errors=_words(request, dict(e.fields)), **extra
        )
        return render(request, "carpool_form.html", context, status=422)
    request.app[LIMITER].record(address, event.id)
    changed = await posts.change(store, notice, carpool, now(request), request.app[CONFIG].language)
    context = _form_context(
        request, event, _filled(changed, event.timezone), editing=True, notice=changed, saved=True
    )
    return render(request, "carpool_form.html", context)


async def association_list(request: web.Request) -> web.Response:
    """GET /admin/carpools: the posts on our association's events, each with a remove button."""
    user = accounts.login_required(request)
    store = request.app[STORE]
    events = [
        e
        for e in store.events()
        if e.carpooling and (user.admin or e.organizer == user.association)
    ]
    rows = [
        (e, posts.open_posts(store, e.id)) for e in sorted(events, key=lambda e: e.series_end())
    ]
    return render(request, "carpool_list.html", {"user": user, "rows": rows, "short_id": short_id})


async def remove(request: web.Request) -> web.Response:
    """POST /admin/carpools/{uuid}/remove: the event's association removes a post."""
    user = accounts.login_required(request)
    store = request.app[STORE]
    notice = store.get(request.match_info["uuid"].lower(), "notice")
    if not isinstance(notice, Notice) or notice.carpool is None:
        raise NotFound(Message(NO_POST))
    event = store.get(notice.related, "event")
    owner = event.organizer if isinstance(event, Event) else notice.organizer
    if not (user.admin or owner == user.association):
        raise Forbidden(Message(NOT_YOURS))
    await posts.withdraw(store, notice, now(request))
    return redirect("/admin/carpools")


def section_context(request: web.Request, event: Event) -> dict[str, Any]:
    """Return what the event page's carpool section needs (posts, the form's address)."""
    if not event.carpooling:
        return {"carpools": [], "carpool_url": ""}
    moment = now(request)
    shown = [
        n
        for n in posts.open_posts(request.app[STORE], event.id)
        if not n.expires or n.expires > moment
    ]
    url = f"/events/{short_id(event.id)}/carpool" if posts.ends_at(event) > moment else ""
    return {"carpools": shown, "carpool_url": url}
