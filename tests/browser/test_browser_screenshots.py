"""Full-page screenshots at phone and desktop width, saved under docs/screenshots/ for the README.

The files are rewritten on every run (their dates follow today's), so a reviewer can look at
what the pages really look like; at 375 px the pages must also fit without sideways scrolling.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from browser_support import SCREENSHOTS, assert_content, iso_week, opened, page_specs, today

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

SHOTS = ("front", "month", "event", "poster")
WIDTHS = (375, 1280)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("name", SHOTS)
async def test_screenshot(browser: Any, cluster: Any, name: str, width: int) -> None:
    spec = page_specs(cluster, iso_week(today() + timedelta(days=1)))[name]
    path = SCREENSHOTS / f"{name}-{width}.png"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    async with opened(browser, width=width) as page:
        response = await page.goto(cluster.agg(spec.path))
        assert response is not None
        assert response.status == 200, f"{spec.path} answered {response.status}"
        await assert_content(page, spec)
        await page.screenshot(path=str(path), full_page=True)
        overflow = await page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
    assert path.read_bytes().startswith(PNG_MAGIC)
    assert overflow <= 0, f"{name} at {width} px scrolls sideways by {overflow} px"
