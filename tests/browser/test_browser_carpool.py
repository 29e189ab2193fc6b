"""Carpools across villages in a real browser at 375 px (issue 14's acceptance).

On the cluster's page of Vesterby's away match, a parent from Østerby offers 3 seats on the
node's form the page links to; another from Nørrevang asks for 1; both show on the cluster's
event page within 2 s (the ping) and on the node's; the offer's private link changes it to 2
seats, then withdraws it.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from browser_support import eventually, follow, opened, today

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]
PHONE_WIDTH = 375
MATCH = "Udebanekamp U10 mod Østerby"


async def away_match(cluster: Any) -> str:
    day = today() + timedelta(days=4)
    body = {"title": MATCH, "start": f"{day}T10:00", "end": f"{day}T12:00", "category": "sport"}
    made = await cluster.api(cluster.node("Vesterby"), "POST", "/api/events", body)
    assert made["carpooling"] is True
    uid = str(made["id"]).removeprefix("urn:uuid:")

    async def arrived() -> bool:
        return MATCH in await cluster.aggregator_titles()

    await eventually(arrived, limit=15.0)
    return uid


async def post_on_form(page: Any, fields: dict[str, str]) -> None:
    for name, value in fields.items():
        if name == "direction":
            await page.select_option("select[name=direction]", value)
        else:
            await page.fill(f"input[name={name}]", value)
    response = await follow(page, page.locator("form.carpool-form button[value=save]"))
    assert response.status == 201, await page.inner_text("main")


async def no_sideways_scroll(page: Any) -> None:
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE_WIDTH, f"{page.url} scrolls sideways at {PHONE_WIDTH} px ({width} px)"


async def shown_within(
    page: Any, url: str, words: str, absent: str = "", limit: float = 2.0
) -> float:
    began = time.monotonic()

    async def there() -> bool:
        await page.goto(url)
        text = await page.inner_text("main")
        return words in text and (not absent or absent not in text)

    await eventually(there, limit=limit)
    return time.monotonic() - began


async def test_carpools_across_villages_at_375_px(browser: Any, cluster: Any) -> None:
    uid = await away_match(cluster)
    event_url = cluster.agg(f"/events/{uid}")
    async with opened(browser, width=PHONE_WIDTH) as mette:
        await mette.goto(event_url)
        await no_sideways_scroll(mette)
        await follow(mette, mette.locator("main a", has_text="Tilbyd eller søg pladser"))
        assert mette.url == cluster.node("Vesterby").url(f"/events/{uid}/carpool")
        assert "Vises for alle:" in await mette.inner_text("main")
        await no_sideways_scroll(mette)
        mette_offer = {
            "direction": "offer",
            "seats": "3",
            "from": "Østerby Kirke",
            "departure": "09:15",
            "name": "Mette",
            "phone": "20 12 34 56",
        }
        await post_on_form(mette, mette_offer)
        link = await mette.locator("a.private-link").get_attribute("href")
        assert link and "/carpool/" in link
    async with opened(browser, width=PHONE_WIDTH) as jens:
        await jens.goto(cluster.node("Vesterby").url(f"/events/{uid}/carpool"))
        jens_request = {
            "direction": "request",
            "seats": "1",
            "from": "Nørrevang",
            "name": "Jens",
            "email": "jens@example.dk",
        }
        await post_on_form(jens, jens_request)
        took = await shown_within(jens, event_url, "Tilbyder 3 pladser fra Østerby Kirke")
        await shown_within(jens, event_url, "Søger 1 plads fra Nørrevang")
        print(f"both posts on the cluster's event page within {took:.2f} s")
        tel = jens.locator("main a[href='tel:+4520123456']")
        assert await tel.count() == 1 and (await tel.inner_text()) == "20 12 34 56"
        await no_sideways_scroll(jens)
        await jens.goto(cluster.node("Vesterby").url(f"/events/{uid}"))
        node_text = await jens.inner_text("main")
        assert "Tilbyder 3 pladser fra Østerby Kirke" in node_text and "Søger 1 plads" in node_text
    async with opened(browser, width=PHONE_WIDTH) as mette:
        await mette.goto(link)
        await mette.fill("input[name=seats]", "2")
        await follow(mette, mette.locator("form.carpool-form button[value=save]"))
        assert "Dit opslag er ændret." in await mette.inner_text("main")
        await shown_within(mette, event_url, "Tilbyder 2 pladser", absent="Tilbyder 3 pladser")
        await mette.goto(link)
        await follow(mette, mette.locator("form.carpool-form button[value=withdraw]"))
        assert "trukket tilbage" in await mette.inner_text("main")
        await shown_within(mette, event_url, "Søger 1 plads", absent="Tilbyder 2 pladser")
        response = await mette.goto(link)
        assert response is not None and response.status == 404
