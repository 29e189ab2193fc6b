"""Issue 16's embed: the calendar in an iframe on a village's own site (another origin)."""

from __future__ import annotations

import asyncio
import html as html_module
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import aggregator_support as support
import pytest
from aggregator_support import FeedServer, config_for, feed, refresher_of, start_aggregator
from aiohttp import web
from chromium_support import chromium
from test_aggregator_pages import World, main_of, make_event, page, w

from aggregator.config import Source, from_mapping, to_toml
from aggregator.outreach_config import EmbedSettings
from klynge.errors import ConfigError
from klynge.i18n import date_long

feed_server = support.feed_server  # a fixture
__all__ = ["w"]
AXE = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"


def events(w: World, count: int = 12) -> list[Any]:
    """Return `count` events over the coming week, and one a month ahead."""
    found = [
        make_event(f"Fællesspisning nummer {n}", w.TODAY + timedelta(days=n % 7), 9 + n % 12)
        for n in range(count)
    ]
    sport = make_event("Fodbold", w.TODAY + timedelta(days=2), 10, category="sport")
    return [*found, sport, make_event("Nytårskur", w.TODAY + timedelta(days=33))]


@pytest.fixture
async def embed_client(
    w: World, feed_server: FeedServer, tmp_path: Path, aiohttp_client: Any
) -> Any:
    """An aggregator over one village, with its own embed colours."""
    url = feed_server.set("/travlby.atom", feed("Travlby", events(w)))
    embed = EmbedSettings(accent="#aa3300", frame_ancestors=("*",))
    config = config_for(tmp_path, [Source(url, "Travlby")], embed=embed)
    client = await start_aggregator(aiohttp_client, config)
    await refresher_of(client).refresh_all()
    return client


async def test_embed_lists_the_coming_week_framable_without_cookies(
    w: World, embed_client: Any
) -> None:
    response = await embed_client.get("/embed")
    html = await response.text()
    assert response.status == 200
    assert response.headers["Content-Security-Policy"] == "frame-ancestors *"
    assert "Set-Cookie" not in response.headers and "X-Frame-Options" not in response.headers
    assert '<html lang="da">' in html and "Den kommende uge" in html
    assert "Fællesspisning nummer 0" in html and "Fodbold" in html
    assert "Nytårskur" not in html, "a month ahead is not the coming week"
    assert date_long(w.TODAY, "da") in html
    assert "--embed-accent: #aa3300" in html, "the configured colour is not used"
    assert '<base target="_blank">' in html and "site-nav" not in html  # no menus in a frame
    english = await page(embed_client, "/embed", lang="en")
    assert '<html lang="en">' in english and "The coming week" in english


async def test_embed_narrows_to_a_village_a_category_and_a_month(
    w: World, embed_client: Any
) -> None:
    sport = main_of(await page(embed_client, "/embed", category="sport"))
    assert "Fodbold" in sport and "Fællesspisning" not in sport
    other = main_of(await page(embed_client, "/embed", village="osterby"))
    assert "Fodbold" not in other and "Intet planlagt i denne periode." in other
    far = w.TODAY + timedelta(days=33)
    month = await page(embed_client, "/embed/month", month=far.strftime("%Y-%m"))
    assert "Nytårskur" in month and 'rel="next"' in month
    response = await embed_client.get("/embed/month?month=13-2026")
    assert response.status == 400 and "Set-Cookie" not in response.headers


async def test_other_pages_keep_their_headers(embed_client: Any) -> None:
    for path in ("/", "/calendar", "/subscribe"):
        response = await embed_client.get(path)
        assert "Content-Security-Policy" not in response.headers, path


async def test_subscribe_page_shows_the_snippet_to_copy(embed_client: Any) -> None:
    html = main_of(await page(embed_client, "/subscribe"))
    assert "På jeres landsbys hjemmeside" in html
    assert "&lt;iframe src=&#34;http://syd.example/embed&#34;" in html
    assert "e.origin!==&#39;http://syd.example&#39;" in html


def test_embed_settings_are_validated_and_saved() -> None:
    with pytest.raises(ConfigError, match=r"embed\.accent must be a colour"):
        EmbedSettings(accent="red; background: url(x)")
    with pytest.raises(ConfigError, match="is not a CSP source"):
        EmbedSettings(frame_ancestors=("https://a.dk; script-src *",))
    raw = {"name": "K", "url": "https://k.dk", "embed": {"frame_ancestors": ["https://by.dk"]}}
    config = from_mapping(Path("/tmp"), raw)
    assert config.embed.frame_ancestors == ("https://by.dk",)
    assert 'frame_ancestors = ["https://by.dk"]' in to_toml(config)
    assert from_mapping(Path("/tmp"), {"name": "K", "url": "https://k.dk"}).embed == EmbedSettings()


async def test_configured_frame_ancestors_are_sent(
    w: World, feed_server: FeedServer, tmp_path: Path, aiohttp_client: Any
) -> None:
    url = feed_server.set("/travlby.atom", feed("Travlby", events(w, 2)))
    config = config_for(tmp_path, [Source(url)])
    config = replace(config, embed=EmbedSettings(frame_ancestors=("https://by.dk", "'self'")))
    client = await start_aggregator(aiohttp_client, config)
    response = await client.get("/embed")
    assert response.headers["Content-Security-Policy"] == "frame-ancestors https://by.dk 'self'"


# --- in chromium, framed by a page from another port ---------------------------------------


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Launch Debian's chromium through Playwright."""
    async with chromium() as launched:
        yield launched


async def host_page(aiohttp_server: Any, snippet: str) -> Any:
    """Serve a village website on its own port whose page holds the snippet."""

    async def village(_: web.Request) -> web.Response:
        head = '<!doctype html><html lang=da><title>Landsby</title><link rel=icon href="data:,">'
        body = f"{head}<h1>Landsby</h1>{snippet}"
        return web.Response(text=body, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", village)
    return await aiohttp_server(app)


@pytest.mark.browser
@pytest.mark.parametrize("width", [375, 1280])
async def test_embed_in_an_iframe_on_another_port_fits_its_height(
    embed_client: Any, browser: Any, aiohttp_server: Any, width: int
) -> None:
    origin = str(embed_client.make_url("/")).rstrip("/")
    listed = await embed_client.get("/subscribe")
    snippet = (await listed.text()).split('<code id="u-embed">')[1].split("</code>")[0]
    snippet = html_module.unescape(snippet).replace("http://syd.example", origin)
    host = await host_page(aiohttp_server, snippet)
    assert host.port != embed_client.port
    context = await browser.new_context(viewport={"width": width, "height": 800})
    tab = await context.new_page()
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: errors.append(str(e)))
    try:
        await tab.goto(str(host.make_url("/")))
        element = await tab.wait_for_selector("iframe.klynge-embed")
        assert element is not None
        frame = await element.content_frame()
        assert frame is not None
        await frame.wait_for_selector(".embed-day")
        assert frame.url.startswith(origin)
        inner = 0
        for _ in range(50):  # the height arrives by postMessage, after the frame's layout
            inner = await frame.evaluate("document.documentElement.scrollHeight")
            outer = await tab.evaluate("document.querySelector('iframe').clientHeight")
            if abs(outer - inner) <= 1:
                break
            await asyncio.sleep(0.1)
        assert abs(outer - inner) <= 1, f"iframe {outer}px for {inner}px of content"
        assert inner > 300, "the embed shows next to nothing"
        wide = await frame.evaluate("document.documentElement.scrollWidth")
        assert wide <= width, f"the embed is {wide}px wide in a {width}px page"
        assert errors == [], errors
        assert await context.cookies() == [], "the embed set a cookie"
        await frame.add_script_tag(path=str(AXE))
        result = await frame.evaluate(
            "axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'best-practice']})"
        )
        problems = [(v["id"], v["nodes"][0]["html"]) for v in result["violations"]]
        assert problems == [], problems
    finally:
        await context.close()
