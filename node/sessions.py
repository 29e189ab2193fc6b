"""Browser sessions for the volunteer pages: a signed cookie, the user, and CSRF checks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from klynge.errors import Forbidden, Unauthorized
from klynge.i18n import N_
from klynge.web import CSRF_TOKEN, read_form
from node.auth import (
    SESSION_COOKIE,
    SESSION_MAX_AGE,
    Session,
    csrf_ok,
    csrf_token,
    decode_session,
    encode_session,
    new_session,
)
from node.keys import CONFIG, STORE
from node.store import User

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SESSION_PATHS = ("/login", "/logout", "/admin")
SESSION = web.RequestKey("node_session", Session)
NEW_SESSION = web.RequestKey("node_new_session", Session)
USER = web.RequestKey("node_user", User)
CSRF_MESSAGE = N_(
    "The form has expired or did not come from this site; reload the page and try again."
)


def _needs_session(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in SESSION_PATHS)


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Attach the session, user and CSRF token to volunteer pages; check CSRF on POST."""
    if not _needs_session(request.path):
        return await handler(request)
    secret = request.app[CONFIG].secret_key
    cookie = request.cookies.get(SESSION_COOKIE, "")
    session = decode_session(secret, cookie) if cookie else None
    if session is None:
        session = new_session()
        request[NEW_SESSION] = session
    _attach(request, session)
    if request.method == "POST":
        form = await read_form(request)
        given = form.get("csrf_token")
        if not isinstance(given, str) or not csrf_ok(secret, session, given):
            raise Forbidden(CSRF_MESSAGE)
    response = await handler(request)
    if NEW_SESSION in request:
        _set_cookie(request, response, request[NEW_SESSION])
    return response


def _attach(request: web.Request, session: Session) -> None:
    request[SESSION] = session
    request[CSRF_TOKEN] = csrf_token(request.app[CONFIG].secret_key, session)
    user = request.app[STORE].user(session.username) if session.username else None
    if user is None:
        request.pop(USER, None)
    else:
        request[USER] = user


def _set_cookie(request: web.Request, response: web.StreamResponse, session: Session) -> None:
    config = request.app[CONFIG]
    response.set_cookie(
        SESSION_COOKIE,
        encode_session(config.secret_key, session),
        max_age=SESSION_MAX_AGE,
        path="/",
        httponly=True,
        samesite="Lax",
        secure=config.secure_cookies,
    )


def start_session(request: web.Request, username: str) -> None:
    """Log `username` in: a new session (new nonce) is sent with this response."""
    session = new_session(username)
    request[NEW_SESSION] = session
    _attach(request, session)


def end_session(request: web.Request) -> None:
    """Log out: an anonymous session replaces the current one."""
    start_session(request, "")


def current_user(request: web.Request) -> User | None:
    """Return the logged-in user, or None."""
    return request.get(USER)


def require_user(request: web.Request, *, admin: bool = False) -> User:
    """Return the logged-in user, or raise (the page handler turns 401 into a login redirect)."""
    user = current_user(request)
    if user is None:
        raise Unauthorized(N_("Please log in first."))
    if admin and not user.admin:
        raise Forbidden(N_("Only an administrator may do that."))
    return user


def redirect(location: str) -> web.Response:
    """Return a 303 See Other to `location` (after a form POST)."""
    return web.Response(status=303, headers={"Location": location})
