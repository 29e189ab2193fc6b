"""The week poster printed to PDF by chromium: one A4 page for a quiet, busy or wordy week."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from chromium_support import chromium
from pypdf import PdfReader
from test_aggregator_pages import World, client_for, feed_server, make_event, w

from klynge.model import Place

pytestmark = pytest.mark.browser

WORDY = "Fællesspisning med musik, lotteri og amerikansk auktion i forsamlingshuset"
HALL = Place(name="Vesterby Forsamlingshus", locality="Vesterby")
__all__ = ["client_for", "feed_server", "w"]  # fixtures shared with the page tests


def week(w: World, count: int, title: str) -> list[Any]:
    """Return `count` events spread over next week's seven days."""
    return [
        make_event(f"{title} {n}", w.NEXT_MONDAY + timedelta(days=n % 7), 8 + n % 12, place=HALL)
        for n in range(count)
    ]


async def printed_pages(browser: Any, url: str) -> tuple[int, str]:
    """Print a page to A4 PDF with chromium; return its page count and its text."""
    context = await browser.new_context(locale="da-DK")  # the Danish poster
    page = await context.new_page()
    try:
        await page.goto(url)
        await page.emulate_media(media="print")
        pdf = PdfReader(io.BytesIO(await page.pdf(format="A4", print_background=True)))
    finally:
        await context.close()
    return len(pdf.pages), "".join(p.extract_text() for p in pdf.pages)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Launch Debian's chromium through Playwright."""
    async with chromium() as launched:
        yield launched


@pytest.mark.parametrize(
    ("count", "title"),
    [(20, "Strikkeklub"), (20, WORDY), (90, "Strikkeklub"), (90, WORDY), (40, WORDY * 2)],
)
async def test_poster_prints_on_one_a4_page(
    w: World, browser: Any, client_for: Any, count: int, title: str
) -> None:
    client = await client_for(week(w, count, title))
    year, number, _ = w.NEXT_MONDAY.isocalendar()
    url = str(client.make_url(f"/poster?week={year}-W{number:02d}"))
    pages, text = await printed_pages(browser, url)
    assert pages == 1, f"{count} events of {len(title)} characters print on {pages} pages"
    assert "Klynge Syd" in text and f"Uge {number}" in text
    assert f"{title} 0"[:20] in " ".join(text.split())
