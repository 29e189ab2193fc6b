"""Helpers for the browser tests: chromium settings, axe-core, the page-load guard, logging in."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from clock_support import local_today
from patience import eventually as eventually  # re-exported

from klynge.i18n import month_label

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "docs" / "screenshots"
PASSWORD = "en god adgangskode 42"
CLUSTER_NAME = "Klynge Syd"
TIMEZONE = "Europe/Copenhagen"
MAX_PAGE_BYTES = 100 * 1024  # HTML + CSS + JS of one page, before images (issue 5)
COUNTED_TYPES = {"document", "stylesheet", "script"}
BLOCKING_IMPACTS = {"serious", "critical"}


def today() -> date:
    """Return today's date in the cluster's time zone."""
    return local_today()


def iso_week(day: date) -> str:
    """Return the poster's week parameter for a day, e.g. 2026-W49."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def this_month() -> str:
    """Return this month as the month view names it in Danish ("november 2026")."""
    return month_label(today(), "da")


@asynccontextmanager
async def opened(
    browser: Any, *, width: int = 1280, js: bool = True, locale: str = "da-DK", csp: bool = True
) -> AsyncIterator[Any]:
    """Open a fresh browser context (own cookies) with one page; close both afterwards."""
    context = await browser.new_context(
        viewport={"width": width, "height": 900},
        java_script_enabled=js,
        locale=locale,  # Accept-Language follows it: da-DK asks for the Danish pages
        bypass_csp=not csp,  # axe is injected as an inline script
    )
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def follow(page: Any, target: Any) -> Any:
    """Click a link or submit button and wait for the page it leads to; return its response."""
    async with page.expect_navigation() as navigation:
        await target.click()
    return await navigation.value


async def log_in(page: Any, base: str, username: str) -> None:
    """Log in on a node through its login form (works with JavaScript off too)."""
    await page.goto(f"{base}/login")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORD)
    await follow(page, page.locator("form:has(input[name=password]) [type=submit]").first)
    assert await page.locator("form[action='/logout']").count() == 1, (
        f"{username} is not logged in after the login form: {page.url}\n"
        + (await page.inner_text("main"))[:500]
    )


# ---- axe-core -------------------------------------------------------------------------------


async def axe_violations(page: Any) -> list[dict[str, Any]]:
    """Run axe-core on the loaded page; return its serious and critical violations."""
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: run `npm ci` in the repository root (package.json)")
    await page.add_script_tag(path=str(AXE))
    found = await page.evaluate(
        """async () => {
            const result = await axe.run(document, {resultTypes: ["violations"]});
            return result.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
                nodes: v.nodes.map(n => ({target: n.target.join(" "),
                                         html: n.html, summary: n.failureSummary}))
            }));
        }"""
    )
    return [v for v in found if v["impact"] in BLOCKING_IMPACTS]


def describe_violations(violations: list[dict[str, Any]]) -> str:
    """Format axe violations for a failure message: rule, impact, and each offending node."""
    lines = []
    for v in violations:
        lines.append(f"- {v['id']} ({v['impact']}): {v['help']}  {v['helpUrl']}")
        for node in v["nodes"][:5]:
            summary = " ".join(str(node["summary"]).split())
            lines.append(f"    at {node['target']}: {node['html'][:160]}\n      {summary[:300]}")
        if len(v["nodes"]) > 5:
            lines.append(f"    … and {len(v['nodes']) - 5} more")
    return "\n".join(lines)


# ---- the page-load guard --------------------------------------------------------------------


@dataclass
class Load:
    """What one page load fetched."""

    url: str
    status: int
    requests: list[tuple[str, str]] = field(default_factory=list)  # (resource type, url)
    sizes: list[tuple[str, int]] = field(default_factory=list)  # counted (url, body bytes)

    @property
    def weight(self) -> int:
        """Return the bytes of HTML, CSS and JS the page loaded."""
        return sum(size for _, size in self.sizes)

    def foreign(self) -> list[str]:
        """Return the requests that went anywhere but the page's own host:port."""
        own = urlsplit(self.url).netloc
        found = []
        for _, url in self.requests:
            parts = urlsplit(url)
            if parts.scheme not in ("data", "blob", "about") and parts.netloc != own:
                found.append(url)
        return found


async def measured_load(page: Any, url: str) -> Load:
    """Load `url`, recording every request and the body size of each HTML, CSS and JS file."""
    requests: list[Any] = []
    responses: list[Any] = []

    def on_request(request: Any) -> None:
        requests.append(request)

    def on_response(response: Any) -> None:
        responses.append(response)

    page.on("request", on_request)
    page.on("response", on_response)
    main = await page.goto(url, wait_until="load")
    assert main is not None, f"no response for {url}"
    load = Load(url, main.status, [(r.resource_type, r.url) for r in requests])
    for response in responses:
        if response.request.resource_type in COUNTED_TYPES and not 300 <= response.status < 400:
            load.sizes.append((response.url, len(await response.body())))
    page.remove_listener("request", on_request)
    page.remove_listener("response", on_response)
    return load


def describe_load(load: Load) -> str:
    """Format a page load's counted files for a failure message."""
    rows = [f"  {size:>8} B  {url}" for url, size in load.sizes]
    return f"{load.url}: {load.weight} B in total\n" + "\n".join(rows)


def json_text(value: Any) -> str:
    """Return a readable JSON rendering of a value (for failure messages)."""
    return json.dumps(value, ensure_ascii=False, indent=1)


# ---- the pages under test -------------------------------------------------------------------

FEAST = "Fællesspisning i forsamlingshuset"  # Østerby, tomorrow 18-21, with a full address
FLEA = "Loppemarked på skolen"  # Vesterby, in two days
CANCELLED = "Juletræstænding"  # Vesterby, in three days, cancelled
TODAY_MARKET = "Julemarked i kirkeladen"  # Norreby, all day today (always in this month)
CARPOOL = "Samkørsel til Aarhus"  # Norreby notice


@dataclass(frozen=True)
class PageSpec:
    """A page to check: where it lives, who must be logged in, and what must be on it."""

    name: str
    service: str  # "aggregator" or a village name
    path: str
    text: str = ""  # visible text that proves the content is there
    selector: str = ""  # an element that must be present
    login: str = ""  # node user to log in as first


def page_specs(cluster: Any, week: str) -> dict[str, PageSpec]:
    """Return every page of the web experience, by name, for a seeded cluster."""
    feast = cluster.seeded[FEAST]
    specs = [
        PageSpec("front", "aggregator", "/", text=FEAST),
        PageSpec("month", "aggregator", "/calendar?view=month", text=TODAY_MARKET),
        PageSpec("event", "aggregator", f"/events/{feast}", text=FEAST),
        PageSpec("noticeboard", "aggregator", "/noticeboard", text=CARPOOL),
        PageSpec("subscribe", "aggregator", "/subscribe", selector="a[href^='webcal://']"),
        PageSpec("poster", "aggregator", f"/poster?week={week}", text=FEAST),
        PageSpec("status", "aggregator", "/status", text="Vesterby"),
        PageSpec("node-public", "Østerby", "/", text=FEAST),
        PageSpec("node-event", "Østerby", f"/events/{feast}", text=FEAST),
        PageSpec("node-login", "Østerby", "/login", selector="input[type=password]"),
        PageSpec("node-event-form", "Østerby", "/admin/events/new", "", "input[name=title]", "bo"),
        PageSpec("node-status", "Østerby", "/admin/status", cluster.agg("/ping"), login="anna"),
    ]
    return {spec.name: spec for spec in specs}


PAGE_NAMES = (
    "front", "month", "event", "noticeboard", "subscribe", "poster", "status",
    "node-public", "node-event", "node-login", "node-event-form", "node-status",
)  # fmt: skip


def base_of(cluster: Any, spec: PageSpec) -> str:
    """Return the base URL of the service a page lives on."""
    if spec.service == "aggregator":
        return str(cluster.aggregator_base)
    return str(cluster.node(spec.service).base)


async def open_spec(page: Any, cluster: Any, spec: PageSpec) -> str:
    """Log in if the page needs it; return the page's absolute URL (not yet loaded)."""
    base = base_of(cluster, spec)
    if spec.login:
        await log_in(page, base, spec.login)
    return base + spec.path


async def assert_content(page: Any, spec: PageSpec) -> None:
    """Assert the page shows what it is for (its known text or element)."""
    if spec.text:
        body = await page.inner_text("body")
        assert spec.text in body, f"{spec.name}: {spec.text!r} not on {page.url}:\n{body[:800]}"
    if spec.selector:
        count = await page.locator(spec.selector).count()
        assert count > 0, f"{spec.name}: no {spec.selector} on {page.url}"
