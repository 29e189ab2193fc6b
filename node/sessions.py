"""Browser sessions for the volunteer pages: a signed cookie, the user, and CSRF checks.

The cookie names a server-side session (node.store sessions table) once the browser has
logged in; the record, not the cookie, says who is logged in and since when, so logging
out, a password change and removing the user end the session wherever its cookie went.
"""

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
    session_expired,
    session_key,
    session_record,
)
from node.keys import CONFIG, STORE, now
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
    user = _user_of(request, session) if session is not None and session.id else None
    if session is None or (session.id and user is None):
        # No cookie, a forged one, or one whose session has ended: start an anonymous one.
        session = new_session()
        request[NEW_SESSION] = session
    _attach(request, session, user)
    if request.method == "POST":
        form = await read_form(request)
        given = form.get("csrf_token")
        if not isinstance(given, str) or not csrf_ok(secret, session, given):
            raise Forbidden(CSRF_MESSAGE)
    response = await handler(request)
    if NEW_SESSION in request:
        _set_cookie(request, response, request[NEW_SESSION])
    return response


def _user_of(request: web.Request, session: Session) -> User | None:
    """Return the user of a live stored session, or None (ended, expired, user removed)."""
    store = request.app[STORE]
    record = store.session(session_key(session.id))
    if record is None or session_expired(record, now(request)):
        return None
    return store.user(record.username)


def _attach(request: web.Request, session: Session, user: User | None) -> None:
    request[SESSION] = session
    request[CSRF_TOKEN] = csrf_token(request.app[CONFIG].secret_key, session)
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


async def start_session(request: web.Request, user: User) -> None:
    """Log `user` in: store a new session (new id and nonce) and send it with this response."""
    session = new_session(logged_in=True)
    await request.app[STORE].save_session(session_record(session, user.username, now(request)))
    request[NEW_SESSION] = session
    _attach(request, session, user)


async def end_session(request: web.Request) -> None:
    """Log out: delete the stored session; an anonymous session replaces it in the browser."""
    old = request[SESSION]
    if old.id:
        await request.app[STORE].delete_session(session_key(old.id))
    session = new_session()
    request[NEW_SESSION] = session
    _attach(request, session, None)


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
