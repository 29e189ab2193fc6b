"""Issue 16's poster, printed by chromium and measured in the PDF: one A4 page, large, full."""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from chromium_support import chromium
from clock_support import DEFAULT_NOW, HOSTILE_NOWS
from pdf_support import PageFigures, page_figures
from pypdf import PdfReader
from test_aggregator_pages import World, client_for, feed_server, make_event, make_notice, w

from klynge.model import Place

pytestmark = pytest.mark.browser

__all__ = ["client_for", "feed_server", "w"]  # fixtures shared with the page tests
# Chromium lays type out in CSS pixels: 14 pt is 18.667 px and comes back as 13.99 pt.
PT_ROUNDING = 0.05
A4 = (595.28, 841.89)  # 210 x 297 mm in PostScript points
A3 = (841.89, 1190.55)
HALL = Place(name="Vesterby Forsamlingshus", locality="Vesterby")
TITLES = ("Strikkeklub", "Fællesspisning i forsamlingshuset", "Fodboldtræning for de små")
SHOTS_DIR = os.environ.get("KLYNGE_POSTER_SHOTS", "")  # screenshots to look at, when set
SHOTS = Path(SHOTS_DIR) if SHOTS_DIR else None


def busy_week(w: World, count: int) -> list[Any]:
    """Return `count` events over next week, of mixed title lengths, and three notices."""
    events: list[Any] = [
        make_event(
            f"{TITLES[n % 3]} {n}", w.NEXT_MONDAY + timedelta(days=n % 7), 8 + n % 12, place=HALL
        )
        for n in range(count)
    ]
    notices = [make_notice(t) for t in ("Hjælpere søges til julemarkedet", "Samkørsel til byen")]
    return events + notices


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Launch Debian's chromium through Playwright."""
    async with chromium() as launched:
        yield launched


async def printed(browser: Any, url: str, paper: str = "A4", shot: str = "") -> tuple[int, bytes]:
    """Print a page with chromium in Danish; return its page count and the PDF."""
    context = await browser.new_context(locale="da-DK")
    page = await context.new_page()
    try:
        response = await page.goto(url)
        assert response is not None and response.status == 200, url
        await page.emulate_media(media="print")
        pdf = bytes(await page.pdf(format=paper, print_background=True))
        if SHOTS and shot:  # to look at by eye: KLYNGE_POSTER_SHOTS=/tmp/poster
            await page.set_viewport_size({"width": 794, "height": 1123})
            await page.screenshot(path=str(SHOTS / f"{shot}.png"), full_page=True)
    finally:
        await context.close()
    return len(PdfReader(io.BytesIO(pdf)).pages), pdf


def week_url(client: Any, w: World, **params: str) -> str:
    """Return the URL of next week's poster."""
    year, number, _ = w.NEXT_MONDAY.isocalendar()
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return str(client.make_url(f"/poster?week={year}-W{number:02d}&{query}"))


def report(label: str, pages: int, figures: PageFigures) -> None:
    """Print the measured figures (shown with pytest -s; the report quotes them)."""
    print(f"\n{label}: pages={pages} smallest={figures.smallest():.1f}pt "
          f"filled={figures.filled:.2f} box={[round(v) for v in figures.box]}")  # fmt: skip


# The usual week, the week that ends summer time and the one over the year's end.
NOWS = {"default": DEFAULT_NOW} | {
    k: HOSTILE_NOWS[k] for k in ("dst-autumn-before", "new-years-eve")
}


@pytest.mark.parametrize("now", list(NOWS.values()), ids=list(NOWS), indirect=True)
@pytest.mark.parametrize("count", [3, 15, 60])
async def test_poster_fills_one_a4_page_in_large_type(
    w: World, browser: Any, client_for: Any, count: int
) -> None:
    client = await client_for(busy_week(w, count))
    pages, pdf = await printed(browser, week_url(client, w), shot=f"poster-{count}")
    figures = page_figures(pdf)
    report(f"{count} events", pages, figures)
    assert pages == 1, f"{count} events print on {pages} pages"
    assert abs(figures.width - A4[0]) < 2 and abs(figures.height - A4[1]) < 2
    assert figures.smallest() >= 14 - PT_ROUNDING, sorted(figures.sizes)[:5]
    assert max(size for size, _ in figures.sizes) >= 36, "the headline is under 36 pt"
    assert figures.filled >= 2 / 3, f"only {figures.filled:.0%} of the page is used"
    text = " ".join(text for _, text in figures.sizes)
    assert "Klynge Syd" in text and "Strikkeklub 0" in text
    assert "Hjælpere søges til julemarkedet" in text, "no current notice on the poster"


async def test_poster_prints_on_one_a3_page_when_asked(
    w: World, browser: Any, client_for: Any
) -> None:
    client = await client_for(busy_week(w, 15))
    pages, pdf = await printed(browser, week_url(client, w, paper="a3"), "A3", shot="poster-a3")
    figures = page_figures(pdf)
    report("15 events on A3", pages, figures)
    assert pages == 1 and abs(figures.height - A3[1]) < 2
    assert figures.smallest() >= 14 * 1.4 - PT_ROUNDING, sorted(figures.sizes)[:4]
    assert figures.filled >= 2 / 3


def quiet_month(w: World) -> list[Any]:
    """Return a quiet fortnight and seven one-off events in the fortnight after it."""
    club = make_event("Sangaften", w.NEXT_MONDAY + timedelta(days=1), rrule="FREQ=WEEKLY;COUNT=8")
    supper = make_event("Fællesspisning", w.NEXT_MONDAY + timedelta(days=3), 18, place=HALL)
    later = [
        make_event(f"{TITLES[n % 3]} {n}", w.NEXT_MONDAY + timedelta(days=14 + 2 * n),
                   10 + n, place=HALL)
        for n in range(7)
    ]  # fmt: skip
    return [club, supper, *later, make_notice("Hjælpere søges til julemarkedet")]


@pytest.mark.parametrize("now", list(NOWS.values()), ids=list(NOWS), indirect=True)
async def test_months_highlights_fill_one_a4_page_in_large_type(
    w: World, browser: Any, client_for: Any
) -> None:
    client = await client_for(quiet_month(w))
    pages, pdf = await printed(browser, week_url(client, w), shot="poster-month")
    figures = page_figures(pdf)
    report("the month's highlights", pages, figures)
    text = " ".join(text for _, text in figures.sizes)
    assert "højdepunkter" in text, "a quiet fortnight did not become the month's highlights"
    assert pages == 1
    assert figures.smallest() >= 14 - PT_ROUNDING, sorted(figures.sizes)[:5]
    assert figures.filled >= 2 / 3, f"only {figures.filled:.0%} of the page is used"
    joined = "".join(text.split())  # chromium splits runs at kerning pairs ("F ællesspisning")
    assert "Fællesspisning" in joined and "Sangaften" not in joined  # a weekly club is routine
    assert "Strikkeklub0" in joined and "Strikkeklub6" in joined  # 26 days on
