"""Issue 13's acceptance in a real chromium: a clash warning at 375 px, then the year plan.

Three village nodes and one aggregator on loopback (tests/clash_support.py). A volunteer of
Østerby picks the Saturday of Vesterby's flea market, sees the warning naming Vesterby, the
event and its time before publishing, publishes anyway; within 2 s the aggregator's /plan
marks that Saturday. Screenshots go to docs/screenshots/ (clash-*.png, plan-*.png).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

import pytest
import pytest_asyncio
from browser_support import (
    SCREENSHOTS,
    axe_violations,
    describe_violations,
    follow,
    log_in,
    opened,
    today,
)
from clash_support import Cluster, eventually, running_cluster
from lxml import html as lxml_html
from pypdf import PdfReader

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

ARRIVAL_LIMIT = 2.0  # seconds from publishing to the marked Saturday on /plan (issue 13)
A4_LANDSCAPE = (841.89, 595.28)


def saturday() -> date:
    day = today()
    return day + timedelta(days=(5 - day.weekday()) % 7 or 7)


SAT = saturday()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def coop(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    """Three villages and an aggregator; Vesterby's flea market and Norreby's reservation."""
    root = tmp_path_factory.mktemp("coop")
    async with running_cluster(root, ("Østerby", "Vesterby", "Norreby")) as cluster:
        flea = {"title": "Loppemarked", "start": f"{SAT}T10:00", "end": f"{SAT}T15:00",
                "category": "market"}  # fmt: skip
        held = {"title": "Julemarked", "start": str(SAT), "all_day": True,
                "category": "market", "status": "tentative"}  # fmt: skip
        await cluster.api("Vesterby", "POST", "/api/events", flea)
        await cluster.api("Norreby", "POST", "/api/events", held)

        async def arrived() -> bool:
            rows = await cluster.agg_json(f"/api/events?from={SAT}&to={SAT + timedelta(days=1)}")
            return {"Loppemarked", "Julemarked"} <= {r["title"] for r in rows["events"]}

        await eventually(arrived, limit=15)
        yield cluster


async def fill(page: Any, title: str) -> None:
    await page.fill("input[name=title]", title)
    await page.fill("input[name=date]", SAT.isoformat())
    await page.fill("input[name=start_time]", "11:00")
    await page.fill("input[name=end_time]", "14:00")
    await page.select_option("select[name=category]", "market")


async def test_a_volunteer_sees_the_clash_publishes_and_the_plan_marks_it(
    browser: Any, coop: Cluster
) -> None:
    node = coop.villages["Østerby"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    async with opened(browser, width=375, csp=False) as page:
        await log_in(page, node.base, "bo")
        await page.goto(node.url("/admin/events/new"))
        await fill(page, "Høstfest")
        box = page.locator("#clash-box")
        # The form's script asks the node's JSON endpoint as the date and time change.
        await box.locator("li", has_text="Vesterby — Loppemarked 10–15").wait_for(timeout=5000)
        live = await box.inner_text()
        assert "Samtidig i klyngen:" in live and "(Marked)" in live
        assert "Norreby — Julemarked" in live and "Foreløbig" in live
        assert "Klyngens kalender er hentet for" in live
        age_class = await box.locator(".clash-age").get_attribute("class") or ""
        assert "clash-stale" not in age_class, "a fresh copy is shown as stale"
        assert await page.evaluate("document.documentElement.scrollWidth") <= 375
        violations = await axe_violations(page)
        assert not violations, describe_violations(violations)
        await box.scroll_into_view_if_needed()
        await page.screenshot(path=str(SCREENSHOTS / "clash-warning-375.png"))
        await follow(page, page.locator("form:has(input[name=title]) [type=submit]").first)
        shown = await page.locator("#clash-box").inner_text()
        assert "Vesterby — Loppemarked 10–15 (Marked)" in shown  # before publishing
        await page.screenshot(path=str(SCREENSHOTS / "clash-preview-375.png"), full_page=True)
        response = await follow(page, page.get_by_role("button", name="Offentliggør").first)
        published = time.monotonic()
        assert response.status == 200
        assert await page.locator("[role=status]").count() == 1
    await marked_on_plan(coop, published)


async def marked_on_plan(coop: Cluster, published: float) -> None:
    """Reload /plan until the Saturday is marked (two villages, same category): within 2 s."""

    async def marked() -> bool:
        status, text = await coop.agg_text(f"/plan?from={SAT:%Y-%m}")
        cell = lxml_html.fromstring(text).xpath(f"//li[@id='d-{SAT}']")
        return status == 200 and bool(cell) and "Østerby 1" in cell[0].text_content()

    await eventually(marked, limit=ARRIVAL_LIMIT + 8)  # bounded; the figure is asserted below
    took = time.monotonic() - published
    assert took <= ARRIVAL_LIMIT, f"/plan showed the event {took:.1f} s after publishing"
    _status, text = await coop.agg_text(f"/plan?from={SAT:%Y-%m}")
    cell = lxml_html.fromstring(text).xpath(f"//li[@id='d-{SAT}']")[0]
    assert "plan-clash" in cell.get("class")
    assert "Foreløbig: Julemarked (Norreby)" in " ".join(cell.text_content().split())


async def test_the_api_answer_for_the_same_post_lists_the_clash(coop: Cluster) -> None:
    body = {"title": "Høstfest (API)", "start": f"{SAT}T11:00", "end": f"{SAT}T14:00",
            "category": "market"}  # fmt: skip
    made = await coop.api("Østerby", "POST", "/api/events", body)
    titles = [(c["village"], c["title"], c["when"]) for c in made["clashes"]]
    assert ("Vesterby", "Loppemarked", "10–15") in titles
    assert ("Norreby", "Julemarked", "") in titles


async def test_the_plan_at_1280_and_on_a4_landscape(browser: Any, coop: Cluster) -> None:
    async with opened(browser, width=1280, csp=False) as page:
        response = await page.goto(coop.aggregator + f"/plan?from={SAT:%Y-%m}")
        assert response is not None and response.status == 200
        assert "Foreløbig" in await page.inner_text(f"#d-{SAT}")
        violations = await axe_violations(page)
        assert not violations, describe_violations(violations)
        await page.screenshot(path=str(SCREENSHOTS / "plan-1280.png"), full_page=True)
        await page.emulate_media(media="print")
        pdf = bytes(await page.pdf(prefer_css_page_size=True, print_background=True))
    reader = PdfReader(__import__("io").BytesIO(pdf))
    assert len(reader.pages) == 1, f"the plan prints on {len(reader.pages)} pages"
    box = reader.pages[0].mediabox
    size = (float(box.width), float(box.height))
    assert all(abs(got - want) < 2 for got, want in zip(size, A4_LANDSCAPE, strict=True)), size
    text = reader.pages[0].extract_text()
    assert "Årshjul" in text and "Julemarked" in text
    (SCREENSHOTS / "plan-a4.pdf").write_bytes(pdf)
    if shutil.which("pdftoppm"):  # tests/setup-system.sh installs poppler-utils
        out = SCREENSHOTS / "plan-a4"
        subprocess.run(["pdftoppm", "-png", "-r", "110", "-singlefile", str(SCREENSHOTS /
                        "plan-a4.pdf"), str(out)], check=True, timeout=60)  # fmt: skip
        assert (SCREENSHOTS / "plan-a4.png").stat().st_size > 10_000
    (SCREENSHOTS / "plan-a4.pdf").unlink()


async def test_the_plan_works_without_javascript_at_375(browser: Any, coop: Cluster) -> None:
    async with opened(browser, width=375, js=False) as page:
        response = await page.goto(coop.aggregator + f"/plan?from={SAT:%Y-%m}&paper=a3")
        assert response is not None and response.status == 200
        assert await page.evaluate("document.documentElement.scrollWidth") <= 375
        assert "Foreløbig" in await page.inner_text(f"#d-{SAT}")
