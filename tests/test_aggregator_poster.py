"""Issue 16's poster choices, served by the real app: one or two weeks, A3, notices."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from clock_support import hostile_dates
from test_aggregator_pages import (
    World,
    client,
    client_for,
    feed_server,
    main_of,
    make_event,
    make_notice,
    page,
    w,
)

__all__ = ["client", "client_for", "feed_server", "w"]  # fixtures shared with the page tests


def week_of(w: World, weeks_ahead: int = 1) -> str:
    """Return the ?week= value of the week `weeks_ahead` after this one."""
    year, number, _ = (w.MONDAY + timedelta(days=7 * weeks_ahead)).isocalendar()
    return f"{year}-W{number:02d}"


@hostile_dates
async def test_quiet_week_grows_to_two_weeks_when_the_next_has_events(
    w: World, client_for: Any
) -> None:
    quiet = make_event("Strikkeklub", w.NEXT_MONDAY + timedelta(days=2))
    later = make_event("Juletræsfest", w.NEXT_MONDAY + timedelta(days=9))
    client = await client_for([quiet, later])
    html = main_of(await page(client, "/poster", week=week_of(w)))
    first, second = ((w.NEXT_MONDAY + timedelta(days=7 * n)).isocalendar().week for n in (0, 1))
    assert f"Uge {first}–{second} ·" in html
    assert "Strikkeklub" in html and "Juletræsfest" in html
    single = main_of(await page(client, "/poster", week=week_of(w), weeks="1"))
    assert f"Uge {first} ·" in single and "Juletræsfest" not in single


@hostile_dates
async def test_full_week_stays_one_week(w: World, client_for: Any) -> None:
    busy = [make_event(f"Møde {n}", w.NEXT_MONDAY + timedelta(days=n % 7)) for n in range(12)]
    later = make_event("Juletræsfest", w.NEXT_MONDAY + timedelta(days=9))
    client = await client_for([*busy, later])
    html = main_of(await page(client, "/poster", week=week_of(w)))
    assert "Juletræsfest" not in html and html.count('<span class="what">Møde') == 12
    both = main_of(await page(client, "/poster", week=week_of(w), weeks="2"))
    assert "Juletræsfest" in both


async def test_poster_shows_current_notices_and_not_expired_ones(w: World, client_for: Any) -> None:
    gone = make_notice("Gammelt opslag", expires=w.UPDATED)
    notices = [make_notice(f"Opslag {n}") for n in range(5)]
    client = await client_for([make_event("Fællesspisning", w.NEXT_MONDAY), gone, *notices])
    html = main_of(await page(client, "/poster", week=week_of(w)))
    assert "Opslagstavle" in html and "Gammelt opslag" not in html
    assert sum(f"Opslag {n}" in html for n in range(5)) == 3  # a few, not all


async def test_a3_poster_asks_chromium_for_an_a3_page(w: World, client: Any) -> None:
    html = await page(client, "/poster", week=week_of(w), paper="a3")
    assert "@page { size: A3; }" in html and "--paper: 1.414" in html
    plain = await page(client, "/poster", week=week_of(w), paper="letter")
    assert "size: A3" not in plain and "--paper: 1.0" in plain
    assert "Udskriv den på ét A4-ark, eller vælg A3" in plain


@pytest.mark.parametrize("weeks", ["3", "0", "-1", "x", "1.5"])
async def test_poster_refuses_other_numbers_of_weeks_in_words(client: Any, weeks: str) -> None:
    html = await page(client, "/poster", 400, weeks=weeks)
    assert "Skriv antallet af uger som 1 eller 2, eller month for månedens højdepunkter." in html


def quiet_month(w: World) -> list[Any]:
    """Return a quiet fortnight (a weekly club, one supper) and a month of one-off events."""
    club = make_event("Strikkeklub", w.NEXT_MONDAY + timedelta(days=1), rrule="FREQ=WEEKLY;COUNT=8")
    supper = make_event("Fællesspisning", w.NEXT_MONDAY + timedelta(days=3), 18)
    called_off = make_event("Aflyst koncert", w.NEXT_MONDAY + timedelta(days=4), status="cancelled")
    later = [
        make_event(f"Julemarked {n}", w.NEXT_MONDAY + timedelta(days=14 + 2 * n), 10 + n)
        for n in range(7)
    ]
    return [club, supper, called_off, *later]


@hostile_dates
async def test_a_quiet_fortnight_becomes_the_months_highlights(w: World, client_for: Any) -> None:
    client = await client_for(quiet_month(w))
    html = main_of(await page(client, "/poster", week=week_of(w)))
    assert "Månedens højdepunkter ·" in html
    assert "Fællesspisning" in html and "Julemarked 6" in html  # four weeks on
    assert "Strikkeklub" not in html, "a weekly club is routine, not a highlight"
    assert "Aflyst koncert" not in html, "a cancelled event is no highlight"
    last = w.NEXT_MONDAY + timedelta(days=27)
    assert f"{last.day}. " in html.split("Månedens højdepunkter ·")[1].split("</p>")[0]
    two = main_of(await page(client, "/poster", week=week_of(w), weeks="2"))
    assert "Strikkeklub" in two and "Julemarked 6" not in two
    asked = main_of(await page(client, "/poster", week=week_of(w), weeks="month"))
    assert "Månedens højdepunkter ·" in asked


async def test_a_busy_fortnight_stays_weeks(w: World, client_for: Any) -> None:
    busy = [make_event(f"Møde {n}", w.NEXT_MONDAY + timedelta(days=n % 14)) for n in range(14)]
    client = await client_for([*busy, *quiet_month(w)[3:]])
    html = main_of(await page(client, "/poster", week=week_of(w)))
    assert "Månedens højdepunkter" not in html.split("poster-week")[1].split("</p>")[0]
