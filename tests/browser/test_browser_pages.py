"""Every page, in a real chromium: axe-core, JavaScript off, page weight and foreign requests."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from browser_support import (
    MAX_PAGE_BYTES,
    PAGE_NAMES,
    TODAY_MARKET,
    assert_content,
    axe_violations,
    describe_load,
    describe_violations,
    follow,
    iso_week,
    log_in,
    measured_load,
    open_spec,
    opened,
    page_specs,
    this_month,
    today,
)

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

AXE_PAGES = (
    "front", "month", "event", "noticeboard", "subscribe", "poster", "node-login",
    "node-event-form",
)  # fmt: skip


def spec_of(cluster: Any, name: str) -> Any:
    """Return the PageSpec of a page name (the poster shows the week of the seeded dinner)."""
    return page_specs(cluster, iso_week(today() + timedelta(days=1)))[name]


@pytest.mark.parametrize("name", AXE_PAGES)
async def test_axe_finds_no_serious_violations(browser: Any, cluster: Any, name: str) -> None:
    spec = spec_of(cluster, name)
    async with opened(browser, csp=False) as page:
        url = await open_spec(page, cluster, spec)
        response = await page.goto(url)
        assert response is not None, url
        assert response.status == 200, f"{url} answered {response.status}"
        await assert_content(page, spec)
        violations = await axe_violations(page)
    assert not violations, f"axe on {url}:\n{describe_violations(violations)}"


async def test_axe_on_the_event_form_showing_errors(browser: Any, cluster: Any) -> None:
    # The error state is where forms most often lose their labels and links.
    node = cluster.node("Østerby")
    async with opened(browser, csp=False) as page:
        await log_in(page, node.base, "bo")
        await page.goto(node.url("/admin/events/new"))
        form = page.locator("form:has(input[name=title])")
        await follow(page, form.locator("[type=submit]").first)  # everything empty
        assert await page.locator("[aria-invalid=true]").count() > 0
        violations = await axe_violations(page)
    assert not violations, f"axe on the form with errors:\n{describe_violations(violations)}"


async def test_month_view_shows_the_month(browser: Any, cluster: Any) -> None:
    # The other page tests load the month view too; this one checks it is a month.
    async with opened(browser, js=False) as page:
        await page.goto(cluster.agg(spec_of(cluster, "month").path))
        heading = " ".join(await page.locator("main h1, main h2").all_inner_texts())
        assert this_month() in heading.lower(), f"no heading names {this_month()!r}: {heading}"
        assert TODAY_MARKET in await page.inner_text("main")


@pytest.mark.parametrize("name", PAGE_NAMES)
async def test_page_works_without_javascript(browser: Any, cluster: Any, name: str) -> None:
    spec = spec_of(cluster, name)
    async with opened(browser, js=False) as page:
        url = await open_spec(page, cluster, spec)
        response = await page.goto(url)
        assert response is not None, url
        assert response.status == 200, f"{url} answered {response.status}"
        await assert_content(page, spec)
        # The page's own scripts did not run (nothing un-hid the JS-only copy buttons).
        shown = await page.locator("[data-copy]:visible").count()
        assert shown == 0, "JavaScript-only controls are visible with JavaScript off"


async def test_login_form_works_without_javascript(browser: Any, cluster: Any) -> None:
    node = cluster.node("Vesterby")
    async with opened(browser, js=False) as page:
        await page.goto(node.url("/login"))
        await page.fill("input[name=username]", "bo")
        await page.fill("input[name=password]", "not the password")
        response = await follow(page, page.locator("form:has(input[name=password]) [type=submit]"))
        assert response.status == 401
        assert "Forkert brugernavn eller adgangskode" in await page.inner_text("main")
        await log_in(page, node.base, "bo")  # asserts the logout form is there
        assert page.url.startswith(node.url("/admin"))


async def test_event_form_posts_without_javascript(browser: Any, cluster: Any) -> None:
    node = cluster.node("Vesterby")
    title = "Strikkeklub uden JavaScript"
    day = today() + timedelta(days=4)
    async with opened(browser, js=False) as page:
        await log_in(page, node.base, "bo")
        await page.goto(node.url("/admin/events/new"))
        await page.fill("input[name=title]", title)
        await page.fill("input[name=date]", day.isoformat())
        await page.fill("input[name=start_time]", "14:00")
        await page.fill("input[name=end_time]", "16:00")
        form = page.locator("form:has(input[name=title])")
        response = await follow(page, form.locator("[type=submit]").first)
        publish = page.get_by_role("button", name="Offentliggør")
        if await publish.count():  # a preview step before publishing
            response = await follow(page, publish.first)
        assert response.status == 200, await page.inner_text("main")
        assert await page.locator("[role=status]").count() == 1, "no confirmation shown"
        await page.goto(node.url("/"))
        assert title in await page.inner_text("main")


@pytest.mark.parametrize("name", PAGE_NAMES)
async def test_page_is_light_and_stays_home(browser: Any, cluster: Any, name: str) -> None:
    spec = spec_of(cluster, name)
    async with opened(browser) as page:
        url = await open_spec(page, cluster, spec)
        load = await measured_load(page, url)
    assert load.status == 200, url
    assert not load.foreign(), f"{url} made requests to other hosts: {load.foreign()}"
    assert load.sizes and load.sizes[0][0] == url, describe_load(load)  # the HTML was counted
    assert load.weight <= MAX_PAGE_BYTES, describe_load(load)
