"""Layout edges found in use (issue 16): phones with large text, the month grid's words."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from browser_support import eventually, opened, today

pytestmark = [pytest.mark.browser, pytest.mark.asyncio(loop_scope="session")]

LONG_TITLE = "Fodboldtræning for de mindste"
HALL_TITLE = "Julehygge i forsamlingshuset"

# Every word of the page's visible text in one line box each: a word split over two lines
# ("forsamlingshus|et") has two client rects. Returns the split words.
SPLIT_WORDS_JS = """(selector) => {
  const split = [];
  for (const root of document.querySelectorAll(selector)) {
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const re = /\\S+/g;
      for (let m = re.exec(node.data); m; m = re.exec(node.data)) {
        const range = document.createRange();
        range.setStart(node, m.index);
        range.setEnd(node, m.index + m[0].length);
        const tops = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
        if (tops.size > 1) split.push(m[0]);
      }
    }
  }
  return split;
}"""

# Elements whose text is cut: wider content than box, with the overflow hidden or clipped.
CUT_JS = """(selector) => [...document.querySelectorAll(selector)]
  .filter(e => e.scrollWidth > e.clientWidth + 1)
  .map(e => e.textContent.trim())"""


async def seed(cluster: Any) -> None:
    """Add two events with long words, once per session, and wait until the cluster has them."""
    if LONG_TITLE in cluster.seeded:
        return
    day = today() + timedelta(days=1)
    for title, hour in ((LONG_TITLE, 16), (HALL_TITLE, 19)):
        body = {"title": title, "start": f"{day}T{hour}:00", "category": "sport"}
        made = await cluster.api(cluster.node("Østerby"), "POST", "/api/events", body)
        cluster.seeded[title] = made["id"].removeprefix("urn:uuid:")

    async def arrived() -> bool:
        return {LONG_TITLE, HALL_TITLE} <= await cluster.aggregator_titles()

    await eventually(arrived, limit=15.0)


async def test_front_page_fits_a_phone_with_200_percent_text(browser: Any, cluster: Any) -> None:
    await seed(cluster)
    async with opened(browser, width=375) as page:
        await page.goto(cluster.agg("/"))
        await page.add_style_tag(content="html { font-size: 200% !important; }")
        width = await page.evaluate("document.documentElement.scrollWidth")
        wide = await page.evaluate("""[...document.querySelectorAll('body *')]
          .filter(e => e.getBoundingClientRect().right > 376)
          .map(e => e.tagName + '.' + e.className + ' '
               + Math.round(e.getBoundingClientRect().right)
               + ' ' + e.textContent.trim().slice(0, 30))""")
        assert width <= 375, (
            f"the front page is {width} px wide at 375 px with 200% text: {wide[:12]}"
        )
        cut = await page.evaluate(CUT_JS, ".occurrence .what, .occurrence .what a, .occurrence")
        assert not cut, f"titles cut: {cut}"
        assert await page.get_by_text(LONG_TITLE).first.is_visible()


async def test_month_grid_does_not_break_words_at_1280(browser: Any, cluster: Any) -> None:
    await seed(cluster)
    async with opened(browser, width=1280) as page:
        await page.goto(cluster.agg("/calendar?view=month"))
        assert await page.locator(".month .cell").count() >= 28
        split = await page.evaluate(SPLIT_WORDS_JS, ".month .cell li")
        assert not split, f"words broken mid-word in the month grid: {split}"
        assert await page.locator(".month .cell li", has_text=HALL_TITLE).count() == 1
