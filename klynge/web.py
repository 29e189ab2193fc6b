"""The shared web layer: templates, language choice, static files and error pages.

Both services call `setup_web` once and `render` in their views; `error_middleware` turns
every error into the pinned JSON shape (API) or a friendly page in the reader's language.

Page conventions: extend "base.html" (blocks title, head, nav, content, footer); import form
helpers with `{% import "macros.html" as m %}` (field, textarea, select, checkbox, form_errors,
csrf, nav_link, copy_button). Every template gets lang, site_name, request, path, static(name),
switch_lang_url, other_lang, other_lang_name, csrf_token (when request[CSRF_TOKEN] is set) and
flash (a list of messages, if the view passes one). `_("Text %(n)s", n=1)` translates and
formats; the result is escaped, so keep HTML out of msgids. Date filters follow the page
language: date_long, date_short, weekday, month_label, week_label, time_short, datetime_iso,
category_label.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import mimetypes
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import jinja2
from aiohttp import web
from babel.support import NullTranslations

from klynge import i18n
from klynge.errors import BadRequest, KlyngeError, StorageError, error_json
from klynge.i18n import N_
from klynge.messages import Message, as_message, define
from klynge.model import Status, category_label
from klynge.phone import tel_links

log = logging.getLogger("klynge.web")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
LANG_COOKIE = "lang"
LANG_COOKIE_MAX_AGE = 365 * 24 * 3600
# Versioned URLs (?v=<hash>) never change content, so browsers may keep them for a year.
IMMUTABLE = "public, max-age=31536000, immutable"
SHORT_CACHE = "public, max-age=300"
# schema.org's EventStatusType for each Event.status, for the event pages' JSON-LD. A tentative
# date (a hall's reserved Saturday, details to follow) is, as far as schema.org can say, scheduled.
EVENT_STATUS: Mapping[Status, str] = {
    "confirmed": "https://schema.org/EventScheduled",
    "cancelled": "https://schema.org/EventCancelled",
    "postponed": "https://schema.org/EventPostponed",
    "tentative": "https://schema.org/EventScheduled",
}

# The translations of the request being rendered. Rendering is synchronous and each aiohttp
# request runs in its own task (its own context), so concurrent requests in different
# languages never see each other's catalogue; the shared Environment stays untouched.
_current: ContextVar[tuple[str, NullTranslations] | None] = ContextVar("klynge_lang", default=None)


@dataclass(frozen=True)
class StaticFile:
    """One file under /static/, held in memory with its content hash."""

    body: bytes
    content_type: str
    version: str


@dataclass
class WebState:
    """Everything `render` and the middleware need, kept on the app."""

    env: jinja2.Environment
    site_name: str
    packages: tuple[str, ...]
    static_files: dict[str, StaticFile] = field(default_factory=dict)
    json_paths: frozenset[str] = frozenset()  # answered by programs: errors always JSON
    language: str = i18n.DEFAULT_LANG  # the configured language of the pages

    def translations(self, lang: str) -> NullTranslations:
        """Return the merged catalogue (service over klynge) for `lang`."""
        return i18n.catalogue(lang, self.packages)

    def keep_compiled(self, directory: Path) -> None:
        """Keep the compiled templates in `directory`, for the next start to load.

        Compiling them all was about 0.4 s of an aggregator's start (py-spy, 50,000 entries),
        competing for the GIL with its loading; jinja2 compiles a template again when its
        source, jinja2 or Python changed. A directory that cannot be made is logged, and the
        templates are compiled at each start as before.
        """
        try:
            directory.mkdir(exist_ok=True)
        except OSError as e:
            log.warning("compiled templates are not kept in %s: %s", directory, e)
            return
        self.env.bytecode_cache = jinja2.FileSystemBytecodeCache(str(directory))


WEB_STATE = web.AppKey("klynge_web_state", WebState)
# Request storage keys (aiohttp >= 3.12 warns on plain string keys): request[LANG] is the
# chosen language; a service that puts request[CSRF_TOKEN] gets `csrf_token` in templates.
# Errors that stopped a running service (see stop_serving); `klynge … serve` reports the first.
FATAL_ERRORS = web.AppKey("klynge_fatal_errors", list[KlyngeError])
LANG = web.RequestKey("lang", str)
CSRF_TOKEN = web.RequestKey("csrf_token", str)


def setup_web(
    app: web.Application,
    *,
    package: str,
    site_name: str,
    extra_template_dirs: Iterable[Path] = (),
    json_paths: Iterable[str] = (),
    language: str = i18n.DEFAULT_LANG,
) -> None:
    """Set up templates, catalogues, /static/ and /lang/{code} for a service app.

    Errors on `json_paths` (besides /api/) are always the JSON shape, whatever the Accept.
    """
    packages = (package, "klynge") if package != "klynge" else ("klynge",)
    state = WebState(_environment(packages, extra_template_dirs), site_name, packages)
    state.json_paths = frozenset(json_paths)
    state.language = language
    state.static_files = _load_static(packages)
    app[WEB_STATE] = state
    app[FATAL_ERRORS] = []
    app.middlewares.append(language_middleware)
    app.router.add_get("/static/{name}", _static_handler, name="klynge_static")
    app.router.add_get("/lang/{code}", _lang_handler, name="klynge_lang")


def _environment(packages: tuple[str, ...], extra_dirs: Iterable[Path]) -> jinja2.Environment:
    loaders: list[jinja2.BaseLoader] = [jinja2.FileSystemLoader([str(d) for d in extra_dirs])]
    for package in packages:  # the service's templates first, then klynge's
        folder = _package_dir(package, "templates")
        if folder is not None:
            loaders.append(jinja2.FileSystemLoader(str(folder)))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # Our own newstyle callables instead of install_gettext_callables: jinja's wrappers mark
    # the result as Markup and always apply `%`, which is unsafe for dynamic msgids.
    env.globals["gettext"] = _gettext
    env.globals["ngettext"] = _ngettext
    env.newstyle_gettext = True  # type: ignore[attr-defined]
    env.filters.update(FILTERS)
    return env


def _package_dir(package: str, name: str) -> Path | None:
    root = i18n.package_dir(package)
    return root / name if root and (root / name).is_dir() else None


# --- translations in templates ---------------------------------------------------------------


def _active() -> tuple[str, NullTranslations]:
    current = _current.get()
    return current if current is not None else (i18n.DEFAULT_LANG, i18n.catalogue("da"))


def _gettext(msgid: str, **params: Any) -> str:
    # Plain str, not Markup: autoescape then escapes the result, so even a dynamic msgid
    # (e.g. a field message echoing user input) is safe to pass through `_()`.
    return i18n.format_message(_active()[1].gettext(msgid), params)


def _ngettext(singular: str, plural: str, n: int, **params: Any) -> str:
    params.setdefault("num", n)
    return _active()[1].ngettext(singular, plural, n) % params


def request_lang(request: web.Request) -> str:
    """Return (and remember in request[LANG]) the language chosen for this request."""
    if LANG in request:
        return request[LANG]
    state = request.config_dict.get(WEB_STATE)
    # A browser's Accept-Language is the phone's setting, not a choice: the configured language
    # wins unless the resident picks another (?lang=, the cookie). Programs calling the API
    # state the language they want, so there it still counts.
    accept = request.headers.get("Accept-Language", "") if _is_api(request) else ""
    lang = i18n.choose_lang(
        request.query.get("lang"),
        request.cookies.get(LANG_COOKIE),
        accept,
        state.language if state else i18n.DEFAULT_LANG,
    )
    request[LANG] = lang
    return lang


@web.middleware
async def language_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Set request[LANG] before the handler runs."""
    request_lang(request)
    return await handler(request)


def gettext(request: web.Request, msgid: str, **params: Any) -> str:
    """Translate `msgid` into the request's language (service catalogue over klynge's)."""
    tr = _state(request).translations(request_lang(request))
    return i18n.format_message(tr.gettext(msgid), params)


def _state(request: web.Request) -> WebState:
    return request.config_dict[WEB_STATE]


# --- rendering -------------------------------------------------------------------------------


def render(
    request: web.Request,
    template: str,
    context: dict[str, Any],
    status: int = 200,
) -> web.Response:
    """Render `template` in the request's language as an HTML response."""
    state = _state(request)
    lang = request_lang(request)
    tr = state.translations(lang)
    token = _current.set((lang, tr))
    try:
        html = state.env.get_template(template).render(base_context(request, state) | context)
    finally:
        _current.reset(token)
    response = web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
    response.headers["Content-Language"] = lang
    # The same URL renders in two languages: shared caches must key on these headers.
    response.headers["Vary"] = "Accept-Language, Cookie"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "strict-origin-when-cross-origin"
    return response


def base_context(request: web.Request, state: WebState) -> dict[str, Any]:
    """Return the variables every template gets."""
    lang = request_lang(request)
    other = "en" if lang == "da" else "da"
    context: dict[str, Any] = {
        "lang": lang,
        "site_name": state.site_name,
        "request": request,
        "path": request.path,
        "static": lambda name: static_url(state, name),
        "other_lang": other,
        "other_lang_name": i18n.LANG_NAMES[other],
        "switch_lang_url": switch_lang_url(request, other),
    }
    token = request.get(CSRF_TOKEN) or request.get("csrf_token")  # the key, or a plain name
    if token:
        context["csrf_token"] = token
    return context


def static_url(state: WebState, name: str) -> str:
    """Return the versioned URL of a static file (`/static/klynge.css?v=…`)."""
    found = state.static_files.get(name)
    return f"/static/{name}?v={found.version}" if found else f"/static/{name}"


def switch_lang_url(request: web.Request, lang: str) -> str:
    """Return the /lang/ link that switches to `lang` and comes back to this page."""
    query = [(k, v) for k, v in request.query.items() if k != "lang"]
    here = request.path + (f"?{urlencode(query)}" if query else "")
    return f"/lang/{lang}?{urlencode({'next': here})}"


# --- language switch and static files --------------------------------------------------------


def safe_next(value: str | None) -> str:
    """Return `value` if it is a path on this site, else "/" (no open redirects)."""
    if not value or not value.startswith("/") or value.startswith("//"):
        return "/"
    if "\\" in value or any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "/"
    parts = urlsplit(value)
    return value if not parts.scheme and not parts.netloc else "/"


async def _lang_handler(request: web.Request) -> web.StreamResponse:
    lang = i18n.normalise_lang(request.match_info["code"])
    if lang is None or request.match_info["code"] != lang:
        raise web.HTTPNotFound()
    response = web.HTTPSeeOther(safe_next(request.query.get("next")))
    response.set_cookie(
        LANG_COOKIE, lang, max_age=LANG_COOKIE_MAX_AGE, path="/", samesite="Lax", httponly=True
    )
    raise response


def _load_static(packages: tuple[str, ...]) -> dict[str, StaticFile]:
    files: dict[str, StaticFile] = {}
    for package in reversed(packages):  # the service's own files override klynge's
        folder = _package_dir(package, "static")
        for path in sorted(folder.iterdir()) if folder else ():
            if path.is_file() and not path.name.startswith("."):
                files[path.name] = _static_file(path)
    return files


def _static_file(path: Path) -> StaticFile:
    body = path.read_bytes()
    kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if kind.startswith("text/") or kind in ("application/javascript", "image/svg+xml"):
        kind += "; charset=utf-8"
    return StaticFile(body, kind, hashlib.sha256(body).hexdigest()[:12])


async def _static_handler(request: web.Request) -> web.StreamResponse:
    found = _state(request).static_files.get(request.match_info["name"])
    if found is None:
        raise web.HTTPNotFound()
    etag = f'"{found.version}"'
    cache = IMMUTABLE if request.query.get("v") == found.version else SHORT_CACHE
    headers = {"ETag": etag, "Cache-Control": cache, "X-Content-Type-Options": "nosniff"}
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    headers["Content-Type"] = found.content_type
    return web.Response(body=found.body, headers=headers)


# --- stopping on a fatal error ----------------------------------------------------------------


def stop_serving(app: web.Application, error: KlyngeError) -> None:
    """Stop a service started by `klynge … serve` because of `error`, which it then reports.

    For what is found after the server started (the aggregator loads its store in the
    background): GracefulExit raised from a loop callback ends web.run_app with cleanup.
    """
    app[FATAL_ERRORS].append(error)
    asyncio.get_running_loop().call_soon(_exit)


def _exit() -> None:
    raise web.GracefulExit


def fatal_error(app: web.Application) -> KlyngeError | None:
    """Return the error that stopped the service, if one did."""
    errors = app.get(FATAL_ERRORS) or []
    return errors[0] if errors else None


# --- errors ----------------------------------------------------------------------------------

_HTTP_CODES = {
    400: ("bad_request", define("web.bad_request", "The request could not be understood.")),
    401: ("unauthorized", define("web.unauthorized", "Please log in first.")),
    403: ("forbidden", define("web.forbidden", "You may not do that.")),
    404: ("not_found", define("web.not_found", "The page was not found.")),
    405: ("method_not_allowed", define("web.method", "That method is not allowed here.")),
    409: ("conflict", define("web.conflict", "That conflicts with what is already there.")),
    413: ("too_large", define("web.too_large", "The request is too large.")),
    415: (
        "unsupported_media_type",
        define("web.media_type", "Send JSON (Content-Type: application/json)."),
    ),
    429: (
        "too_many_requests",
        define("web.too_many", "Too many attempts; wait a little and try again."),
    ),
}
INTERNAL = define("web.internal", "Something went wrong on our side. Please try again later.")
STORAGE_FAILED = define(
    "web.storage_failed",
    "Nothing was saved: the server could not write its data. Try again in a moment; "
    "if it keeps happening, tell the site's administrator. (%(reason)s)",
)


FORM_UNREADABLE = N_(
    "The form could not be read; send it as UTF-8 form data "
    "(application/x-www-form-urlencoded or multipart/form-data)."
)


async def read_form(request: web.Request) -> Any:
    """Return the request's form fields (a MultiDictProxy); refuse an unreadable body (400)."""
    try:
        return await request.post()
    except (ValueError, LookupError) as e:
        # aiohttp decodes the body with the charset the client named: bytes that are not in
        # it, or an unknown charset, raised out of every form handler as a 500 (tests/fuzz/).
        raise BadRequest(FORM_UNREADABLE) from e


def _is_api(request: web.Request) -> bool:
    """Tell whether the path is answered to programs: /api/ and the service's JSON paths."""
    if request.path == "/api" or request.path.startswith("/api/"):
        return True
    return WEB_STATE in request.config_dict and request.path in _state(request).json_paths


def wants_json(request: web.Request) -> bool:
    """Tell whether an error should be JSON: API paths, or a client asking for JSON only."""
    if _is_api(request):
        return True
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render KlyngeError and HTTP errors as JSON (API) or an HTML page; hide crashes.

    Put it first in `web.Application(middlewares=[error_middleware, ...])`. Cap request bodies
    with `web.Application(client_max_size=...)`: the 413 aiohttp raises becomes the JSON shape.
    """
    try:
        return await handler(request)
    except StorageError as e:
        # The details (file, OS reason) are for whoever runs the node: log them, and tell the
        # volunteer in their language that nothing was kept and what to do.
        log.error("Storage failed on %s %s: %s", request.method, request.path, e.message)
        failed = Message(STORAGE_FAILED, {"reason": e.detail})
        return error_response(request, e.status, e.code, failed)
    except KlyngeError as e:
        return error_response(request, e.status, e.code, e.detail, e.fields)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return _http_error(request, e)
    except Exception:
        log.exception("Unhandled error on %s %s", request.method, request.path)
        return error_response(request, 500, "internal", Message(INTERNAL))


def _http_error(request: web.Request, e: web.HTTPException) -> web.Response:
    code, words = _HTTP_CODES.get(e.status, (f"http_{e.status}", ""))
    message = Message(words) if words else as_message(e.reason)
    if e.text and e.text != f"{e.status}: {e.reason}":
        message = as_message(e.text)  # a handler's own words, e.g. HTTPBadRequest(text="...")
    response = error_response(request, e.status, code, message)
    for name in ("Allow", "WWW-Authenticate", "Retry-After"):
        if name in e.headers:
            response.headers[name] = e.headers[name]
    return response


def error_response(
    request: web.Request,
    status: int,
    code: str,
    detail: Message,
    fields: Mapping[str, Message] | None = None,
) -> web.Response:
    """Return an error as the pinned JSON shape or as error.html, in the request's language."""
    lang = request_lang(request)
    body = error_json(code, detail, fields or {}, lang)
    if wants_json(request) or WEB_STATE not in request.config_dict:
        response = web.json_response({"error": body}, status=status, dumps=_dumps)
        response.headers["Vary"] = "Accept-Language, Cookie"
        return response
    message = body["message"]
    context = {"status": status, "code": code, "message": message, "fields": body.get("fields", {})}
    try:
        return render(request, "error.html", context, status=status)
    except Exception:  # a broken template must not hide the original error
        log.exception("Could not render error.html")
        return web.Response(text=message, status=status, content_type="text/plain")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


# --- filters: klynge.i18n's formatters, given the language of the page being rendered --------


def _lang(ctx: jinja2.runtime.Context) -> str:
    lang = ctx.get("lang")
    return lang if isinstance(lang, str) and lang in i18n.LANGS else _active()[0]


def _context_filter(formatter: Callable[..., str]) -> Callable[..., str]:
    @jinja2.pass_context
    def apply(ctx: jinja2.runtime.Context, value: Any, *args: Any, **kwargs: Any) -> str:
        return formatter(value, _lang(ctx), *args, **kwargs)

    apply.__doc__ = formatter.__doc__
    return apply


FILTERS: dict[str, Callable[..., str]] = {
    "date_long": _context_filter(i18n.date_long),
    "date_short": _context_filter(i18n.date_short),
    "weekday": _context_filter(i18n.weekday),
    "month_label": _context_filter(i18n.month_label),
    "week_label": _context_filter(i18n.week_label),
    "category_label": _context_filter(category_label),
    "time_short": i18n.time_short,
    "datetime_iso": i18n.datetime_iso,
    "tel_links": tel_links,
}
