"""Issue 16's info screen: today and the coming days, large, landscape, reloading itself."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from chromium_support import chromium
from clock_support import hostile_dates
from test_aggregator_pages import World, at, client_for, feed_server, main_of, make_event, page, w

from aggregator.web.screen import COMING_ROWS, REFRESH_SECONDS, TODAY_CAP
from klynge.i18n import date_long

__all__ = ["client_for", "feed_server", "w"]  # fixtures shared with the page tests
AXE = Path(__file__).resolve().parent.parent / "node_modules" / "axe-core" / "axe.min.js"
SHOTS_DIR = os.environ.get("KLYNGE_POSTER_SHOTS", "")  # screenshots to look at, when set


def day_of(w: World, hour: int, title: str, days: int = 0, **kwargs: Any) -> Any:
    """Return an event `days` after today at `hour`."""
    return make_event(title, w.TODAY + timedelta(days=days), hour, **kwargs)


def world_events(w: World) -> list[Any]:
    """Return a day that has begun (one event over), and a busy week after it."""
    # Every instant the suite runs at is past 00:30 and before 23:30 (clock_support.py).
    start, late_start = at(w.TODAY, 0), at(w.TODAY, 23) + timedelta(minutes=30)
    over = make_event("Morgensang", w.TODAY, start=start, end=start + timedelta(minutes=30))
    late = make_event(
        "Aftenkoncert", w.TODAY, start=late_start, end=late_start + timedelta(hours=2)
    )
    coming = [day_of(w, 9 + n % 10, f"Arrangement {n}", 1 + n % 6) for n in range(30)]
    return [over, late, *coming]


@hostile_dates
async def test_screen_shows_what_is_left_of_today_and_the_coming_days(
    w: World, client_for: Any
) -> None:
    client = await client_for(world_events(w))
    response = await client.get("/screen")
    assert response.headers["Refresh"] == str(REFRESH_SECONDS)  # reloads itself, no script
    html = await response.text()
    assert '<html lang="da">' in html and "<script" not in html.split("</head>")[0] + html
    assert ">I dag</h1>" in html and "De næste dage" in html
    today = main_of(html).split('id="screen-coming"')[0]
    assert "Aftenkoncert" in today
    assert "Morgensang" not in html, "an event that is over is still on the screen"
    assert f'<time datetime="{w.TODAY.isoformat()}">{date_long(w.TODAY, "da")}</time>' in html
    coming = main_of(html).split('id="screen-coming"')[1]
    rows = (
        coming.count("<h3") + coming.count('<li class="screen-entry') + coming.count('class="more"')
    )
    assert rows <= COMING_ROWS and "Arrangement 0" in coming
    assert date_long(w.TODAY + timedelta(days=1), "da") in coming
    english = await page(client, "/screen", lang="en")
    assert '<html lang="en">' in english and ">Today</h1>" in english
    assert "The coming days" in english and "Updated " in english


async def test_busy_today_is_capped_and_says_how_many_more(w: World, client_for: Any) -> None:
    busy = [day_of(w, 21, f"Aftenmøde {n}") for n in range(TODAY_CAP + 4)]  # 21-23 h
    client = await client_for(busy)
    html = main_of(await page(client, "/screen"))
    today = html.split('id="screen-coming"')[0]
    assert today.count('<li class="screen-entry') == TODAY_CAP
    assert re.search(r"\+ 4 flere på syd.example/calendar", today)
    assert "Intet planlagt de næste dage." in html


async def test_empty_screen_says_so_in_words(w: World, client_for: Any) -> None:
    client = await client_for([])
    html = main_of(await page(client, "/screen"))
    assert "Ikke mere i dag." in html and "Intet planlagt de næste dage." in html


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Launch Debian's chromium through Playwright."""
    async with chromium() as launched:
        yield launched


@pytest.mark.browser
@pytest.mark.parametrize("lang", ["da", "en"])
async def test_screen_fits_1920_by_1080_in_large_type_and_passes_axe(
    w: World, browser: Any, client_for: Any, lang: str
) -> None:
    client = await client_for(world_events(w))
    context = await browser.new_context(
        locale="da-DK", viewport={"width": 1920, "height": 1080}, java_script_enabled=False
    )
    page_ = await context.new_page()
    try:
        await page_.goto(str(client.make_url(f"/screen?lang={lang}")))
        size = "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
        if SHOTS_DIR:
            await page_.screenshot(path=f"{SHOTS_DIR}/screen-{lang}.png")
        await context.close()
        context = await browser.new_context(
            locale="da-DK", viewport={"width": 1920, "height": 1080}
        )  # axe needs JavaScript; the page itself does not
        page_ = await context.new_page()
        await page_.goto(str(client.make_url(f"/screen?lang={lang}")))
        assert await page_.evaluate(size) == [1920, 1080], "the screen scrolls"
        smallest = await page_.evaluate(
            """Math.min(...[...document.querySelectorAll('main li, main p, main h3')]
                .map(e => parseFloat(getComputedStyle(e).fontSize)))"""
        )
        assert smallest >= 32, f"text of {smallest}px is too small across a room"
        await page_.add_script_tag(path=str(AXE))
        result = await page_.evaluate(
            "axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'best-practice']})"
        )
        problems = [(v["id"], v["nodes"][0]["html"]) for v in result["violations"]]
        assert problems == [], problems
    finally:
        await context.close()
