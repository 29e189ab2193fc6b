"""Issue 5's acceptance journey: a volunteer publishes; a resident finds, saves and prints."""

from __future__ import annotations

import asyncio
import io
from datetime import date, timedelta
from typing import Any
from urllib.parse import urljoin

import pytest
from browser_support import CLUSTER_NAME, FLEA, follow, iso_week, log_in, opened, today
from icalendar import Calendar
from pypdf import PdfReader

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

TITLE = "Høstmiddag med musik"
END_BEFORE_START_DA = "Slutningen er før starten."
ARRIVAL_LIMIT = 2.0  # seconds from publishing to the aggregator's front page (issue 5)
A4_POINTS = (595.28, 841.89)  # 210 x 297 mm in PostScript points


async def fill_event(page: Any, day: date, start: str, end: str) -> None:
    """Fill the event form's title and times (leaving the rest as the form has it)."""
    await page.fill("input[name=title]", TITLE)
    await page.fill("input[name=date]", day.isoformat())
    await page.fill("input[name=start_time]", start)
    await page.fill("input[name=end_time]", end)


async def send_event_form(page: Any) -> Any:
    """Press the event form's first submit button (save, or preview where there is one)."""
    form = page.locator("form:has(input[name=title])")
    return await follow(page, form.locator("[type=submit]").first)


async def field_of_message(page: Any, message: str) -> str:
    """Return the name of the input whose description (aria-describedby) holds `message`."""
    error = page.locator(".field-error, [id$=-error]").filter(has_text=message)
    assert await error.count() == 1, f"{message!r} is not shown once next to a field:\n" + (
        await page.inner_text("main")
    )
    error_id = await error.first.get_attribute("id")
    assert error_id, "the field error has no id to link it to its input"
    field = page.locator(f"[aria-describedby~='{error_id}']")
    assert await field.count() == 1, f"no input is described by #{error_id}"
    assert await field.get_attribute("aria-invalid") == "true"
    return str(await field.get_attribute("name"))


async def volunteer_publishes(browser: Any, cluster: Any, day: date) -> None:
    """Log in, make the end-before-start mistake, see it in Danish, fix it and publish."""
    node = cluster.node("Østerby")
    async with opened(browser) as page:
        await log_in(page, node.base, "bo")
        await follow(page, page.locator("a[href='/admin/events/new']").first)
        await fill_event(page, day, "18:00", "17:00")
        response = await send_event_form(page)
        assert response.status == 422
        assert await page.get_attribute("html", "lang") == "da"
        assert await field_of_message(page, END_BEFORE_START_DA) in ("end_time", "end_date")
        kept = {n: await page.input_value(f"input[name={n}]") for n in ("title", "date")}
        kept |= {n: await page.input_value(f"input[name={n}]") for n in ("start_time", "end_time")}
        assert kept == {"title": TITLE, "date": day.isoformat(), "start_time": "18:00",
                        "end_time": "17:00"}  # fmt: skip
        await page.fill("input[name=end_time]", "21:00")
        response = await send_event_form(page)
        publish = page.get_by_role("button", name="Offentliggør")
        if await publish.count():  # the preview step: what residents will see, then publish
            assert TITLE in await page.inner_text("main")
            response = await follow(page, publish.first)
        assert response.status == 200
        confirmation = page.locator("[role=status]")
        assert await confirmation.count() == 1, "no confirmation after publishing"
        assert (await confirmation.inner_text()).strip()


async def arrives_on_front_page(browser: Any, cluster: Any) -> None:
    """Reload the aggregator's front page until the new event is there (bounded: 2 s)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ARRIVAL_LIMIT
    async with opened(browser) as page:
        while True:
            await page.goto(cluster.agg("/"))
            if TITLE in await page.inner_text("main"):
                return
            assert loop.time() < deadline, f"{TITLE!r} not on the front page within 2 s"
            await asyncio.sleep(0.1)


async def village_filter_link(page: Any, village: str) -> Any:
    """Return the plain link that filters by a village (front page first, then the calendar)."""
    for path in ("/", "/calendar"):
        if path != "/":
            await page.goto(urljoin(page.url, path))
        link = page.locator("a[href*='village=']").filter(has_text=village)
        if await link.count():
            return link.first
    pytest.fail(f"no plain link filters by {village} on the front page or the calendar")


async def ics_of_event_page(page: Any) -> Calendar:
    """Fetch the event page's "add to my calendar" .ics link and parse it."""
    links = page.locator("main a[href*='.ics']")
    hrefs = [h for h in await links.evaluate_all("els => els.map(e => e.href)")]
    hrefs = [h for h in hrefs if "calendar.ics" not in h]  # not the whole-cluster feed
    assert hrefs, "the event page has no .ics link for this event"
    response = await page.request.get(hrefs[0])
    assert response.ok, f"{hrefs[0]} answered {response.status}"
    assert response.headers["content-type"].startswith("text/calendar")
    return Calendar.from_ical(await response.body())


async def resident_finds_and_saves(browser: Any, cluster: Any, day: date) -> None:
    """Switch to English, filter by the village, open the event and download its .ics."""
    async with opened(browser) as page:
        await page.goto(cluster.agg("/"))
        assert await page.get_attribute("html", "lang") == "da"
        await follow(page, page.locator("a[hreflang=en]").first)  # the visible switch
        assert await page.get_attribute("html", "lang") == "en"
        link = await village_filter_link(page, "Østerby")
        await follow(page, link)
        assert "village=" in page.url
        assert await page.get_attribute("html", "lang") == "en", "the language was not kept"
        listed = await page.inner_text("main")
        assert TITLE in listed
        assert FLEA not in listed, "the village filter still shows Vesterby's flea market"
        await follow(page, page.locator("main a").filter(has_text=TITLE).first)
        assert TITLE in await page.inner_text("h1")
        calendar = await ics_of_event_page(page)
    [vevent] = calendar.walk("VEVENT")
    assert str(vevent["SUMMARY"]) == TITLE
    assert vevent.decoded("DTSTART").date() == day


async def poster_pdf(browser: Any, cluster: Any, day: date) -> bytes:
    """Print the poster of the event's week to PDF with chromium's print pipeline."""
    async with opened(browser) as page:
        response = await page.goto(cluster.agg(f"/poster?week={iso_week(day)}"))
        assert response is not None
        assert response.status == 200, f"{response.url} answered {response.status}"
        await page.emulate_media(media="print")
        return bytes(await page.pdf(format="A4", print_background=True))


async def test_volunteer_publishes_and_resident_finds_saves_and_prints(
    browser: Any, cluster: Any
) -> None:
    day = today() + timedelta(days=2)
    await volunteer_publishes(browser, cluster, day)
    await arrives_on_front_page(browser, cluster)
    await resident_finds_and_saves(browser, cluster, day)
    reader = PdfReader(io.BytesIO(await poster_pdf(browser, cluster, day)))
    assert len(reader.pages) == 1, f"the poster prints on {len(reader.pages)} pages"
    box = reader.pages[0].mediabox
    size = (float(box.width), float(box.height))
    assert all(abs(got - want) < 2 for got, want in zip(size, A4_POINTS, strict=True)), size
    assert TITLE in reader.pages[0].extract_text()


async def test_poster_shows_cluster_name_and_qr_code(browser: Any, cluster: Any) -> None:
    async with opened(browser, js=False) as page:
        week = iso_week(today() + timedelta(days=1))
        response = await page.goto(cluster.agg(f"/poster?week={week}"))
        assert response is not None
        assert response.status == 200, f"{response.url} answered {response.status}"
        assert CLUSTER_NAME in await page.inner_text("body")
        # The QR code is inline SVG (no image request) and names the subscribe page nearby.
        assert await page.locator("main svg").count() >= 1, "no inline SVG QR code"
        assert cluster.agg("/subscribe") in await page.content()
