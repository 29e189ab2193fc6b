"""The shared web layer through a real aiohttp app: language, errors, static files, filters."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from chromium_support import chromium

from klynge.errors import NotFound, ValidationError
from klynge.messages import Message
from klynge.model import END_BEFORE_START, NO_TITLE
from klynge.web import CSRF_TOKEN, LANG, error_middleware, gettext, render, safe_next, setup_web

CPH = ZoneInfo("Europe/Copenhagen")

PAGE = """{% extends "base.html" %}
{% import "macros.html" as m %}
{% block title %}{{ _("Give a title.") }}{% endblock %}
{% block nav %}<ul><li>{{ m.nav_link("/page", "Page", path) }}</li></ul>{% endblock %}
{% block content %}
<h1>{{ site_name }}</h1>
<p id="when">{{ when|date_long(year=True) }} {{ when|time_short }}</p>
<p id="short">{{ when|date_short }}|{{ when|weekday }}|{{ when|week_label }}|\
{{- when|month_label }}</p>
<p id="cat">{{ "children"|category_label }}|{{ "unknown-term"|category_label }}</p>
<p id="iso">{{ when|datetime_iso }}|{{ day|datetime_iso }}</p>
<p id="plural">{% trans count=1 %}{{ count }} event{% pluralize %}{{ count }} events{% endtrans %}|\
{{- ngettext("%(num)s day", "%(num)s days", 3) }}</p>
<p id="csrf">{{ csrf_token|default("none") }}</p>
<p id="switch">{{ switch_lang_url }}</p>
{{ m.form_errors(errors, {"title": "Title"}) }}
<form>{{ m.field("title", "Title", value=value, error=errors.get("title", ""), required=True,
                 hint="A short name") }}
{{ m.textarea("body", "Text", value="x < y") }}
{{ m.select("category", "Category", [("sport", "Sport"), ("market", "Market")], value="market") }}
{{ m.checkbox("all_day", "All day", checked=True) }}</form>
{% endblock %}
"""


def _page_context(request: web.Request) -> dict[str, Any]:
    errors = {"title": request.query["error"]} if "error" in request.query else {}
    return {
        "when": datetime(2026, 12, 12, 19, 30, tzinfo=CPH),
        "day": date(2026, 12, 12),
        "errors": errors,
        "value": request.query.get("value", ""),
    }


async def page(request: web.Request) -> web.Response:
    await asyncio.sleep(0)  # let concurrent requests interleave
    if "csrf" in request.query:
        request[CSRF_TOKEN] = "tok123"
    return render(request, "page.html", _page_context(request))


async def api_invalid(request: web.Request) -> web.Response:
    raise ValidationError({"title": Message(NO_TITLE), "end": Message(END_BEFORE_START)})


async def bad_words(request: web.Request) -> web.Response:
    raise web.HTTPBadRequest(text="Give a title.")


async def custom_invalid(request: web.Request) -> web.Response:
    raise ValidationError({"title": "Give a title."}, "The end is before the start.")


async def html_missing(request: web.Request) -> web.Response:
    raise NotFound("The page was not found.")


async def crash(request: web.Request) -> web.Response:
    raise RuntimeError("secret internal detail")


async def api_echo(request: web.Request) -> web.Response:
    return web.json_response(await request.json())


async def handler_gettext(request: web.Request) -> web.Response:
    text = gettext(request, "Error code %(status)s.", status=418)
    return web.Response(text=f"{request[LANG]}:{text}")


def make_app(template_dir: Path, package: str = "klynge", language: str = "da") -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=1024)
    setup_web(
        app,
        package=package,
        site_name="Testby",
        extra_template_dirs=[template_dir],
        language=language,
    )
    app.router.add_get("/page", page)
    app.router.add_get("/api/invalid", api_invalid)
    app.router.add_post("/api/echo", api_echo)
    app.router.add_get("/missing", html_missing)
    app.router.add_get("/crash", crash)
    app.router.add_get("/api/crash", crash)
    app.router.add_get("/gettext", handler_gettext)
    app.router.add_get("/api/bad", bad_words)
    app.router.add_get("/api/custom", custom_invalid)
    return app


@pytest.fixture
def template_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "page.html").write_text(PAGE, encoding="utf-8")
    return folder


@pytest.fixture
async def client(aiohttp_client: Any, template_dir: Path) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = await aiohttp_client(make_app(template_dir))
    return client


def _text(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}">(.*?)</p>', html, re.S)
    assert match, f"no #{element_id} in page"
    return match.group(1)


async def test_danish_is_the_default(client: TestClient[Any, Any]) -> None:
    response = await client.get("/page")
    html = await response.text()
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.headers["Content-Language"] == "da"
    assert "Accept-Language" in response.headers["Vary"]
    assert '<html lang="da">' in html
    assert "Spring til indhold" in html
    assert '<main id="main"' in html
    assert "<title>Skriv en titel.</title>" in html
    assert '<meta name="viewport"' in html
    assert ">English</a>" in html


async def test_query_switches_to_english(client: TestClient[Any, Any]) -> None:
    html = await (await client.get("/page?lang=en")).text()
    assert '<html lang="en">' in html
    assert "Skip to content" in html
    assert "<title>Give a title.</title>" in html
    assert ">Dansk</a>" in html


async def test_the_configured_language_wins_over_accept_language(
    client: TestClient[Any, Any],
) -> None:
    """A phone set to English gets the cluster's Danish pages (issue 16); ?lang= still switches."""
    en = await (await client.get("/page", headers={"Accept-Language": "en-GB,en;q=0.8"})).text()
    assert '<html lang="da">' in en
    fr = await (await client.get("/page", headers={"Accept-Language": "fr-FR, de;q=0.5"})).text()
    assert '<html lang="da">' in fr
    chosen = await client.get("/page?lang=en", headers={"Accept-Language": "da"})
    assert '<html lang="en">' in await chosen.text()


async def test_an_english_cluster_is_english_unless_the_resident_picks_danish(
    aiohttp_client: Any, template_dir: Path
) -> None:
    client = await aiohttp_client(make_app(template_dir, language="en"))
    danish_phone = {"Accept-Language": "da-DK,da;q=0.9"}
    assert '<html lang="en">' in await (await client.get("/page", headers=danish_phone)).text()
    assert '<html lang="da">' in await (await client.get("/page?lang=da")).text()
    await client.get("/lang/da?next=/page")
    assert '<html lang="da">' in await (await client.get("/page")).text(), "the cookie counts"


async def test_the_api_follows_accept_language(client: TestClient[Any, Any]) -> None:
    """Programs state the language they want: on /api/ Accept-Language still chooses."""
    english = await client.get("/api/invalid", headers={"Accept-Language": "en-GB,en;q=0.8"})
    assert (await english.json())["error"]["fields"]["title"] == "Give a title."
    danish = await client.get("/api/invalid", headers={"Accept-Language": "fr"})
    assert (await danish.json())["error"]["fields"]["title"] != "Give a title."


async def test_lang_cookie_is_set_and_persists(client: TestClient[Any, Any]) -> None:
    response = await client.get("/lang/en?next=/page%3Fx%3D1", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/page?x=1"
    cookie = response.headers["Set-Cookie"]
    assert "lang=en" in cookie
    assert "Max-Age=31536000" in cookie
    assert "SameSite=Lax" in cookie
    html = await (await client.get("/page", headers={"Accept-Language": "da"})).text()
    assert '<html lang="en">' in html, "the cookie beats Accept-Language"
    back = await client.get("/lang/da?next=/page")
    assert '<html lang="da">' in await back.text()


async def test_unknown_language_is_404(client: TestClient[Any, Any]) -> None:
    response = await client.get("/lang/fr?next=/page", allow_redirects=False)
    assert response.status == 404
    assert "Siden findes ikke" in await response.text()


@pytest.mark.parametrize(
    "target",
    ["//evil.com", "https://evil.com/", "/\\evil.com", "evil.com", "javascript:alert(1)", ""],
)
async def test_lang_switch_refuses_foreign_next(client: TestClient[Any, Any], target: str) -> None:
    response = await client.get("/lang/en", params={"next": target}, allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"] == "/"


def test_safe_next_keeps_local_paths() -> None:
    assert safe_next("/calendar?village=a&week=2026-W49") == "/calendar?village=a&week=2026-W49"
    assert safe_next("/\t/evil.com") == "/"
    assert safe_next(None) == "/"


async def test_switch_link_keeps_query_but_drops_lang(client: TestClient[Any, Any]) -> None:
    html = await (await client.get("/page?x=1&lang=en")).text()
    assert _text(html, "switch") == "/lang/da?next=%2Fpage%3Fx%3D1"


async def test_api_error_is_the_pinned_json_shape(client: TestClient[Any, Any]) -> None:
    response = await client.get("/api/invalid")
    assert response.status == 422
    body = (await response.json())["error"]
    assert set(body) == {"code", "message", "fields", "field_details", "detail"}
    assert {k: body[k] for k in ("code", "message", "fields")} == {
        "code": "invalid",
        "message": "title: Skriv en titel.; end: Slutningen er før starten.",
        "fields": {"title": "Skriv en titel.", "end": "Slutningen er før starten."},
    }
    assert body["field_details"] == {
        "title": {"code": "model.no_title", "params": {}, "message": "Give a title."},
        "end": {
            "code": "model.end_before_start",
            "params": {},
            "message": "The end is before the start.",
        },
    }
    assert body["detail"]["code"] == "errors.and"
    assert body["detail"]["message"] == "title: Give a title.; end: The end is before the start."
    english = await client.get("/api/invalid", headers={"Accept-Language": "en"})
    assert (await english.json())["error"]["fields"]["title"] == "Give a title."


async def test_own_messages_are_kept_and_translated(client: TestClient[Any, Any]) -> None:
    bad = await client.get("/api/bad")
    assert bad.status == 400
    plain = {"code": "legacy.text", "params": {"text": "Give a title."}, "message": "Give a title."}
    assert (await bad.json())["error"] == {
        "code": "bad_request",
        "message": "Skriv en titel.",
        "detail": plain,
    }
    custom = (await (await client.get("/api/custom")).json())["error"]
    assert custom["message"] == "Slutningen er før starten."
    assert custom["fields"] == {"title": "Skriv en titel."}


async def test_unknown_api_route_is_json_404(client: TestClient[Any, Any]) -> None:
    response = await client.get("/api/nothing-here")
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "not_found"


async def test_json_when_the_client_asks_for_it(client: TestClient[Any, Any]) -> None:
    response = await client.get("/missing", headers={"Accept": "application/json"})
    assert response.status == 404
    error = (await response.json())["error"]
    assert {k: error[k] for k in ("code", "message")} == {
        "code": "not_found",
        "message": "Siden blev ikke fundet.",
    }
    assert error["detail"]["message"] == "The page was not found."


async def test_html_404_in_danish(client: TestClient[Any, Any]) -> None:
    response = await client.get("/no/such/page")
    html = await response.text()
    assert response.status == 404
    assert response.headers["Content-Type"].startswith("text/html")
    assert "<h1>Siden findes ikke</h1>" in html
    assert "<title>Siden findes ikke – Testby</title>" in html
    assert "Fejl:" in html
    assert '<html lang="da">' in html


async def test_klynge_error_on_a_page_is_html(client: TestClient[Any, Any]) -> None:
    response = await client.get("/missing?lang=en")
    html = await response.text()
    assert response.status == 404
    assert "The page was not found." in html
    assert "<h1>Page not found</h1>" in html


async def test_crash_is_a_generic_500_logged_not_shown(
    client: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="klynge.web"):
        response = await client.get("/crash")
        html = await response.text()
        api = await client.get("/api/crash")
    assert response.status == 500
    assert "Der gik noget galt hos os" in html
    assert "secret internal detail" not in html
    assert "Traceback" not in html
    assert (await api.json())["error"]["code"] == "internal"
    assert "secret internal detail" in caplog.text
    assert "Traceback" in caplog.text


async def test_oversized_api_body_is_json_413(client: TestClient[Any, Any]) -> None:
    response = await client.post("/api/echo", data=b'{"a": "' + b"x" * 5000 + b'"}')
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "too_large"
    small = await client.post("/api/echo", json={"a": 1})
    assert await small.json() == {"a": 1}


async def test_method_not_allowed_keeps_allow_header(client: TestClient[Any, Any]) -> None:
    response = await client.post("/page")
    assert response.status == 405
    assert "GET" in response.headers["Allow"]


async def test_static_css_is_cached(client: TestClient[Any, Any]) -> None:
    html = await (await client.get("/page")).text()
    match = re.search(r'href="(/static/klynge\.css\?v=[0-9a-f]+)"', html)
    assert match
    response = await client.get(match.group(1))
    css = await response.text()
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/css")
    assert "immutable" in response.headers["Cache-Control"]
    assert ":focus-visible" in css
    etag = response.headers["ETag"]
    again = await client.get("/static/klynge.css", headers={"If-None-Match": etag})
    assert again.status == 304
    plain = await client.get("/static/klynge.css")
    assert "immutable" not in plain.headers["Cache-Control"]
    assert (await client.get("/static/nope.css")).status == 404
    assert (await client.get("/static/..%2Fweb.py")).status == 404


async def test_static_files_are_small_and_present(client: TestClient[Any, Any]) -> None:
    for name, limit in (("klynge.css", 15_000), ("klynge.js", 3_000), ("favicon.svg", 2_000)):
        response = await client.get(f"/static/{name}")
        assert response.status == 200, name
        assert len(await response.read()) < limit, name


async def test_concurrent_requests_keep_their_language(client: TestClient[Any, Any]) -> None:
    langs = ["da", "en"] * 15
    pages = await asyncio.gather(*(client.get(f"/page?lang={lang}") for lang in langs))
    for lang, response in zip(langs, pages, strict=True):
        html = await response.text()
        assert f'<html lang="{lang}">' in html
        expected = "lørdag 12. december 2026" if lang == "da" else "Saturday 12 December 2026"
        assert expected in html
        assert ("Spring til indhold" in html) == (lang == "da")


async def test_date_filters_danish_and_english(client: TestClient[Any, Any]) -> None:
    da = await (await client.get("/page")).text()
    assert _text(da, "when") == "lørdag 12. december 2026 19:30"
    assert _text(da, "short") == "12. dec.|lørdag|uge 50|december 2026"
    assert _text(da, "cat") == "Børn og unge|unknown-term"
    assert _text(da, "plural") == "1 event|3 days"
    assert _text(da, "iso") == "2026-12-12T19:30:00+01:00|2026-12-12"
    en = await (await client.get("/page?lang=en")).text()
    assert _text(en, "when") == "Saturday 12 December 2026 19:30"
    assert _text(en, "short") == "12 Dec|Saturday|week 50|December 2026"
    assert _text(en, "cat") == "Children and youth|unknown-term"


async def test_form_macros_are_accessible(client: TestClient[Any, Any]) -> None:
    html = await (await client.get("/page", params={"error": "Give a title."})).text()
    assert '<label for="f-title">Title <span class="required">(skal udfyldes)</span>' in html
    assert 'aria-invalid="true"' in html
    assert 'aria-describedby="f-title-hint f-title-error"' in html
    assert 'id="f-title-error"><span class="error-prefix">Fejl:</span> Skriv en titel.' in html
    assert '<a href="#f-title">Title: Skriv en titel.</a>' in html
    assert 'role="alert"' in html
    assert '<option value="market" selected>Market</option>' in html
    assert 'type="checkbox" value="1" checked' in html
    assert "x &lt; y</textarea>" in html
    assert '<a href="/page" aria-current="page">Page</a>' in html


async def test_form_without_errors_has_no_error_markup(client: TestClient[Any, Any]) -> None:
    html = await (await client.get("/page")).text()
    assert "aria-invalid" not in html
    assert "error-summary" not in html
    assert 'aria-describedby="f-title-hint"' in html


async def test_user_text_is_escaped_even_through_translation(
    client: TestClient[Any, Any],
) -> None:
    evil = '<script>alert("x")</script>'
    html = await (await client.get("/page", params={"error": evil, "value": evil})).text()
    assert "<script>alert" not in html
    assert "&lt;script&gt;" in html


async def test_csrf_token_reaches_the_template(client: TestClient[Any, Any]) -> None:
    assert _text(await (await client.get("/page?csrf=1")).text(), "csrf") == "tok123"
    assert _text(await (await client.get("/page")).text(), "csrf") == "none"


async def test_gettext_for_handlers(client: TestClient[Any, Any]) -> None:
    assert await (await client.get("/gettext")).text() == "da:Fejlkode 418."
    assert await (await client.get("/gettext?lang=en")).text() == "en:Error code 418."


async def test_service_package_overrides_klynge(
    aiohttp_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "svc_web_test"
    (package / "templates").mkdir(parents=True)
    (package / "static").mkdir()
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "templates" / "page.html").write_text(
        '{% extends "base.html" %}{% block content %}<p id="t">{{ _("Give a title.") }}'
        "|{{ _('Main menu') }}</p>{% endblock %}",
        encoding="utf-8",
    )
    (package / "static" / "poster.css").write_text("body{}", encoding="utf-8")
    po = package / "locale" / "da" / "LC_MESSAGES"
    po.mkdir(parents=True)
    (po / "messages.po").write_text(
        'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=utf-8\\n"\n\n'
        'msgid "Give a title."\nmsgstr "Giv det et navn."\n',
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        client = await aiohttp_client(make_app(tmp_path / "empty", package="svc_web_test"))
        html = await (await client.get("/page")).text()
        assert _text(html, "t") == "Giv det et navn.|Hovedmenu"
        assert (await client.get("/static/poster.css")).status == 200
        assert (await client.get("/static/klynge.css")).status == 200
    finally:
        sys.modules.pop("svc_web_test", None)


AXE = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"


@pytest.mark.browser
async def test_pages_pass_axe_and_fit_320px(aiohttp_server: Any, template_dir: Path) -> None:
    server = await aiohttp_server(make_app(template_dir))
    urls = [server.make_url("/page?error=Give+a+title."), server.make_url("/no-such-page")]
    async with chromium() as browser:
        for width in (320, 1280):
            context = await browser.new_context(
                locale="da-DK", viewport={"width": width, "height": 800}
            )
            page = await context.new_page()
            for url in urls:
                await page.goto(str(url))
                assert await page.evaluate("document.documentElement.lang") == "da"
                overflow = "document.documentElement.scrollWidth - window.innerWidth"
                assert await page.evaluate(overflow) <= 0, f"horizontal scroll at {width}px"
                await page.add_script_tag(path=str(AXE))
                result = await page.evaluate(
                    "axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'best-practice']})"
                )
                problems = [(v["id"], v["nodes"][0]["html"]) for v in result["violations"]]
                assert problems == [], f"{url} at {width}px: {problems}"
            font = await page.evaluate("getComputedStyle(document.body).fontSize")
            assert float(font.removesuffix("px")) >= 18
            await page.keyboard.press("Tab")
            focused = await page.evaluate("document.activeElement.textContent")
            assert focused == "Spring til indhold"
            assert await page.locator(".skip-link").is_visible()
            await context.close()
