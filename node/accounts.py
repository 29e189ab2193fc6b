"""Volunteer pages for accounts: log in and out; admins manage users, places and see pings."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime
from functools import partial
from urllib.parse import quote

from aiohttp import web

from klynge.errors import Forbidden, ValidationError
from klynge.i18n import N_, translate_fields
from klynge.model import Place, zone
from klynge.web import gettext, read_form, render, request_lang, safe_next
from node import auth
from node.auth import hash_password, new_token, verify_password
from node.keys import CLUSTER, CONFIG, LIMITER, PINGER, STORE, now
from node.sessions import current_user, end_session, redirect, require_user, start_session
from node.store import User

MIN_PASSWORD = 10
# Verified when the username is unknown, so a wrong name takes as long as a wrong password.
_DUMMY_HASH = hash_password("not-a-real-password")


def add_routes(app: web.Application) -> None:
    """Register login, logout and the admin-only pages."""
    app.router.add_route("*", "/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_route("*", "/admin/users", users_page)
    app.router.add_route("*", "/admin/places", places_page)
    app.router.add_get("/admin/status", status_page)
    app.router.add_route("*", "/admin/tokens", tokens_page)


def client_address(request: web.Request) -> str:
    """Return the browser's address: the peer, or the forwarded one behind a trusted proxy.

    Without trusted_proxies, X-Forwarded-For is ignored (any client can send one); behind a
    reverse proxy on this host, list it (docs/deploy.md) or every login shares its address.
    """
    peer = request.remote or "unknown"
    forwarded = request.headers.getall("X-Forwarded-For", [])
    return auth.client_address(peer, forwarded, request.app[CONFIG].trusted_proxies)


def login_required(request: web.Request, *, admin: bool = False) -> User:
    """Return the logged-in user, or send the browser to the login page and back."""
    if current_user(request) is None:
        raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs)}")
    return require_user(request, admin=admin)


async def login(request: web.Request) -> web.Response:
    """GET/POST /login: the login form; rate limited per username and per address."""
    nxt = safe_next(request.query.get("next") or "/admin")
    if request.method != "POST":
        return render(request, "login.html", {"next": nxt, "username": ""})
    form = await read_form(request)
    username = str(form.get("username", "")).strip()
    password = str(form.get("password", ""))
    address = client_address(request)
    limiter = request.app[LIMITER]
    if limiter.blocked(username, address):
        return _rate_limited(request, nxt, username)
    # Counted as failed before the check and taken back on success: attempts sent in
    # parallel would otherwise all pass blocked() while the first are still hashing.
    limiter.failed(username, address)
    user = request.app[STORE].user(username)
    stored = user.password_hash if user else _DUMMY_HASH
    ok = await asyncio.to_thread(verify_password, stored, password)
    if user is None or not ok:
        message = gettext(request, "Wrong username or password.")
        return _login_failed(request, nxt, username, message, 401)
    limiter.succeeded(username, address)
    await start_session(request, user)
    return redirect(nxt)


def _rate_limited(request: web.Request, nxt: str, username: str) -> web.Response:
    window = request.app[CONFIG].login_window
    minutes = max(1, round(window / 60))
    message = gettext(
        request,
        "Too many failed attempts. Wait %(minutes)s minutes and try again.",
        minutes=minutes,
    )
    response = _login_failed(request, nxt, username, message, 429)
    response.headers["Retry-After"] = str(int(window))
    return response


def _login_failed(
    request: web.Request, nxt: str, username: str, message: str, status: int
) -> web.Response:
    context = {"next": nxt, "username": username, "error": message}
    return render(request, "login.html", context, status=status)


async def logout(request: web.Request) -> web.Response:
    """POST /logout: end the session."""
    await end_session(request)
    return redirect("/")


async def users_page(request: web.Request) -> web.Response:
    """GET/POST /admin/users: the user list and the form to add one (admins only)."""
    login_required(request, admin=True)
    form: dict[str, str] = {}
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        post = await read_form(request)
        form = {k: str(post.get(k, "")).strip() for k in ("username", "association", "admin")}
        try:
            await add_user(request, form, str(post.get("password", "")))
            raise web.HTTPSeeOther("/admin/users?added=1")
        except ValidationError as e:
            errors, status = translate_fields(request_lang(request), e.fields), 422
    context = {"users": request.app[STORE].users(), "form": form, "errors": errors}
    return render(request, "users.html", context, status=status)


def check_user(username: str, association: str, password: str) -> dict[str, str]:
    """Return what is wrong with a new user's details (empty when fine)."""
    errors = {}
    if not username or len(username) > 64 or any(c.isspace() for c in username):
        errors["username"] = N_("A username is one word of at most 64 characters.")
    if not association.strip():
        errors["association"] = N_("Give the association the user posts for.")
    if len(password) < MIN_PASSWORD:
        errors["password"] = N_("The password needs at least 10 characters.")
    return errors


async def add_user(request: web.Request, form: dict[str, str], password: str) -> None:
    """Validate and store a new user from the admin form."""
    errors = check_user(form["username"], form["association"], password)
    store = request.app[STORE]
    if not errors and store.user(form["username"]) is not None:
        errors["username"] = N_("That username is taken.")
    if errors:
        raise ValidationError(errors)
    hashed = await asyncio.to_thread(hash_password, password)
    user = User(
        username=form["username"],
        association=form["association"],
        password_hash=hashed,
        admin=form.get("admin") in ("1", "on"),
        created=now(request).isoformat(),
    )
    await store.save_user(user)


async def places_page(request: web.Request) -> web.Response:
    """GET/POST /admin/places: saved places; add or remove one (admins only)."""
    login_required(request, admin=True)
    store = request.app[STORE]
    form: dict[str, str] = {}
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        post = await read_form(request)
        if post.get("delete"):
            await store.delete_place(str(post["delete"]))
            raise web.HTTPSeeOther("/admin/places")
        form = {
            k: str(post.get(k, "")).strip()
            for k in ("name", "street", "postcode", "locality", "lat", "lon")
        }
        try:
            await store.save_place(_place(form))
            raise web.HTTPSeeOther("/admin/places")
        except ValidationError as e:
            errors, status = translate_fields(request_lang(request), e.fields), 422
    context = {
        "places": store.places(),
        "config_places": request.app[CONFIG].places,
        "form": form,
        "errors": errors,
    }
    return render(request, "places.html", context, status=status)


def _place(form: dict[str, str]) -> Place:
    if not form["name"]:
        raise ValidationError({"name": N_("Give the place a name.")})
    coords: dict[str, float | None] = {}
    for key in ("lat", "lon"):
        try:
            coords[key] = float(form[key].replace(",", ".")) if form[key] else None
        except ValueError:
            raise ValidationError({key: N_("Give a number such as 55.64.")}) from None
    return Place(
        name=form["name"],
        street=form["street"],
        postcode=form["postcode"],
        locality=form["locality"],
        **coords,
    )


async def status_page(request: web.Request) -> web.Response:
    """GET /admin/status: how pinging the aggregators goes (admins only)."""
    login_required(request, admin=True)
    pinger = request.app[PINGER]
    lang = request_lang(request)
    views = [
        (view, view.error.render(lang) if view.error else "")
        for view in await request.app[CLUSTER].views()
    ]
    context = {
        "cluster": views,
        "pings": list(pinger.status.values()),
        "log": request.app[STORE].ping_log(),
        "feed_url": request.app[CONFIG].feed_url,
        "local": partial(local_time, tz=request.app[CONFIG].timezone),
    }
    return render(request, "status.html", context)


def local_time(stamp: str, tz: str) -> datetime | None:
    """Return a stored ISO 8601 instant in the node's zone, for the page to say in words."""
    try:
        when = datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        return None
    return when.astimezone(zone(tz)) if when.tzinfo else when


async def tokens_page(request: web.Request) -> web.Response:
    """GET/POST /admin/tokens: API tokens; make one (shown once) or revoke one."""
    user = login_required(request)
    store = request.app[STORE]
    shown = ""
    if request.method == "POST":
        post = await read_form(request)
        if post.get("action") == "new":
            record, shown = new_token(user.username, now(request))
            await store.save_token(record)
        else:
            found = store.token(str(post.get("revoke", "")))
            if found is None or not (user.admin or found.username == user.username):
                raise Forbidden(N_("You may revoke only your own tokens."))
            await store.save_token(replace(found, revoked=now(request).isoformat()))
            raise web.HTTPSeeOther("/admin/tokens")
    tokens = [t for t in store.tokens() if user.admin or t.username == user.username]
    tokens.sort(key=lambda t: t.created, reverse=True)
    return render(request, "tokens.html", {"user": user, "tokens": tokens, "new_token": shown})
