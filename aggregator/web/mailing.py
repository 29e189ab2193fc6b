"""The ugeseddel's e-mail pages: sign up, confirm, unsubscribe (one click, RFC 8058).

Registered only when aggregator.toml has `[mail]`: without it these paths are 404 and no
page offers the e-mail. Sign-ups are rate-limited per client address and in all, so the form
cannot be used to flood someone's inbox with confirmation mails.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from aiohttp import web

from aggregator.keys import CONFIG, MAILER, now
from aggregator.mail.compose import clean_address
from aggregator.mail.tokens import CONFIRM, UNSUBSCRIBE
from klynge.errors import BadRequest, KlyngeError
from klynge.messages import Message, define
from klynge.sliding import SlidingCounts
from klynge.web import read_form, render, request_lang

WINDOW = timedelta(hours=1)
PER_CLIENT = 5  # sign-ups from one client address an hour
IN_ALL = 100  # sign-ups an hour in all
EVERYONE = "*"  # the key that counts every sign-up (no client address is "*")
BAD_ADDRESS = define(
    "mail.bad_address",
    "“%(address)s” is not an e-mail address we can send to. Write it as name@example.dk.",
)
NO_ADDRESS = define("mail.no_address", "Write the e-mail address the ugeseddel should go to.")
TOO_MANY = define("mail.too_many", "Too many sign-ups in a short time. Wait an hour and try again.")
BAD_LINK = define(
    "mail.bad_link",
    "This link is not valid (or a confirmation link older than a week). "
    "Sign up again on the subscribe page.",
)


class RateLimit:
    """Recent sign-ups, per client address and in all (klynge.sliding)."""

    def __init__(self) -> None:
        self.counts: SlidingCounts | None = None  # made at the first sign-up's time

    def allow(self, client: str, at: datetime) -> bool:
        """Count one sign-up from `client` at `at`; tell whether it is within the limits."""
        moment = at.timestamp()
        if self.counts is None:
            self.counts = SlidingCounts(WINDOW.total_seconds(), moment)
        counts = self.counts
        if counts.count(client, moment) >= PER_CLIENT or counts.count(EVERYONE, moment) >= IN_ALL:
            return False
        counts.add((client, EVERYONE), moment)
        return True


LIMIT = web.AppKey("aggregator_signup_limit", RateLimit)


def add_routes(app: web.Application) -> None:
    """Register the e-mail pages, if the cluster has an SMTP server configured."""
    if app[CONFIG].mail is None:
        return
    app[LIMIT] = RateLimit()
    app.router.add_get("/digest/signup", signup_form)
    app.router.add_post("/digest/signup", signup)
    app.router.add_get("/digest/confirm", confirm_form)
    app.router.add_post("/digest/confirm", confirm)
    app.router.add_get("/digest/unsubscribe", unsubscribe_form)
    app.router.add_post("/digest/unsubscribe", unsubscribe)


def _page(request: web.Request, step: str, status: int = 200, **extra: object) -> web.Response:
    return render(request, "digest_mail.html", {"step": step} | extra, status=status)


async def signup_form(request: web.Request) -> web.Response:
    """Show the sign-up form."""
    return _page(request, "form", address="", error="")


async def signup(request: web.Request) -> web.Response:
    """Take a sign-up: check the address, limit the rate, send the confirmation link."""
    form = await read_form(request)
    typed = str(form.get("email", ""))[:300]
    lang = request_lang(request)
    address = clean_address(typed)
    if address is None:
        words = Message(BAD_ADDRESS, {"address": typed.strip()}) if typed.strip() else None
        error = (words or Message(NO_ADDRESS)).render(lang)
        return _page(request, "form", 400, address=typed, error=error)
    if not request.app[LIMIT].allow(request.remote or "", now(request)):
        error = Message(TOO_MANY).render(lang)
        return _page(request, "form", 429, address=typed, error=error)
    try:
        await request.app[MAILER].sign_up(address, lang)
    except KlyngeError as e:  # the SMTP server is down, or the list is full: say so here
        return _page(request, "form", e.status, address=typed, error=e.detail.render(lang))
    return _page(request, "sent", address=address)


def _token(request: web.Request, purpose: str) -> tuple[str, str]:
    token = request.query.get("token", "")
    address = request.app[MAILER].address_of(token, purpose)
    if address is None:
        raise BadRequest(Message(BAD_LINK))
    return token, address


async def confirm_form(request: web.Request) -> web.Response:
    """Ask for the yes with a button (a link scanner following the link confirms nothing)."""
    token, address = _token(request, CONFIRM)
    return _page(request, "confirm", token=token, address=address)


async def confirm(request: web.Request) -> web.Response:
    """Make the sign-up active."""
    token, _ = _token(request, CONFIRM)
    address = await request.app[MAILER].confirm(token)
    if address is None:
        raise BadRequest(Message(BAD_LINK))
    return _page(request, "confirmed", address=address)


async def unsubscribe_form(request: web.Request) -> web.Response:
    """Show the unsubscribe button of an e-mail's link."""
    token, address = _token(request, UNSUBSCRIBE)
    return _page(request, "unsubscribe", token=token, address=address)


async def unsubscribe(request: web.Request) -> web.Response:
    """Unsubscribe at once: the form's button, or a mail program's one-click POST (RFC 8058)."""
    token, _ = _token(request, UNSUBSCRIBE)
    address = await request.app[MAILER].unsubscribe(token)
    return _page(request, "unsubscribed", address=address)
