"""Shared pieces of the residents' pages: local days, day groups, filters and their links."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import groupby
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from babel.dates import format_date

from aggregator.keys import CONFIG, MERGED, now
from aggregator.publish import outputs
from aggregator.reader.merge import Merged
from klynge import i18n
from klynge.model import CATEGORIES, Item, as_utc, zone
from klynge.recurrence import Occurrence
from klynge.web import WebState, request_lang

Days = list[tuple[date, list[Occurrence]]]


@dataclass(frozen=True)
class Filters:
    """The village and category a page is narrowed to (both optional)."""

    village: str = ""
    category: str = ""

    @property
    def active(self) -> bool:
        """Tell whether any filter is set."""
        return bool(self.village or self.category)

    def params(self, **extra: str) -> dict[str, str]:
        """Return the filter (and extra) query parameters, leaving out empty ones."""
        values = {"village": self.village, "category": self.category} | extra
        return {k: v for k, v in values.items() if v}


def filters_of(request: web.Request) -> Filters:
    """Read `?village=` and `?category=` (trimmed and bounded, as the API does)."""
    village = outputs.slug(request.query.get("village", "").strip()[:100])
    category = request.query.get("category", "").strip().lower()[:40]
    return Filters(village, category)


def link(path: str, params: dict[str, str]) -> str:
    """Return `path` with the non-empty `params` as its query string."""
    query = urlencode({k: v for k, v in params.items() if v})
    return f"{path}?{query}" if query else path


def make_href(path: str, params: dict[str, str]) -> Callable[..., str]:
    """Return `href(**changes)`: a link to `path` with `params` changed ("" drops one)."""

    def href(**changes: str) -> str:
        return link(path, params | changes)

    return href


def timezone_of(request: web.Request) -> str:
    """Return the cluster's IANA time zone."""
    return request.app[CONFIG].timezone


def local_today(request: web.Request) -> date:
    """Return today's date in the cluster's zone, from the aggregator's clock."""
    return now(request).astimezone(zone(timezone_of(request))).date()


def local_day(value: date, tz: str) -> date:
    """Return the local date of a date or an aware datetime."""
    return value.astimezone(zone(tz)).date() if isinstance(value, datetime) else value


def by_day(found: Iterable[Occurrence], tz: str) -> Days:
    """Group occurrences (sorted by start) by the local day they start on."""
    keyed = groupby(found, key=lambda o: local_day(o.start, tz))
    return [(day, list(group)) for day, group in keyed]


async def merged_of(request: web.Request) -> Merged:
    """Return the current merged view of the cluster."""
    return await request.app[MERGED].current()


async def occurrences_between(
    request: web.Request, first: date, end: date, filters: Filters = Filters()
) -> list[Occurrence]:
    """Return the occurrences from local day `first` up to (not including) `end`, filtered."""
    tz = timezone_of(request)
    merged = await merged_of(request)
    lo, hi = as_utc(first, tz), as_utc(end, tz)
    loop = asyncio.get_running_loop()
    village, category = filters.village, filters.category
    return await loop.run_in_executor(None, outputs.occurrences, merged, lo, hi, village, category)


def villages(merged: Merged) -> list[tuple[str, str]]:
    """Return (key, name) of every village with entries, sorted by name."""
    names = merged.village_titles
    return sorted(((outputs.slug(n), n) for n in names if n), key=lambda p: p[1])


def village_name(merged: Merged, key: str) -> str:
    """Return the name of the village with this key, or the key itself."""
    return dict(villages(merged)).get(key, key)


def categories_in_use(items: Iterable[Item]) -> list[str]:
    """Return the categories of `items`: vocabulary order first, unknown terms after."""
    used = {i.category for i in items if i.category}
    known = [term for term in CATEGORIES if term in used]
    return known + sorted(used - set(known))


def categories_in_use_by(merged: Merged) -> list[str]:
    """Return the categories of the merged events, in the order categories_in_use gives."""
    used = merged.event_categories
    known = [term for term in CATEGORIES if term in used]
    return known + sorted(used - set(known))


def event_path(entry_id: str) -> str:
    """Return the aggregator's page path of an event id (`urn:uuid:…`)."""
    return f"/events/{entry_id.removeprefix('urn:uuid:')}"


def public_url(request: web.Request, path: str) -> str:
    """Return the absolute public URL of a path on this aggregator."""
    return request.app[CONFIG].url.rstrip("/") + path


def webcal(url: str) -> str:
    """Return the webcal:// form of an http(s) URL (calendar apps subscribe to it)."""
    return "webcal://" + url.split("://", 1)[-1]


# --- dates in words (babel, the page's language) -----------------------------------------


def day_month(value: date, lang: str, *, year: bool = False) -> str:
    """Format "30. november" / "30 November" (with the year if asked)."""
    code = i18n.normalise_lang(lang) or i18n.DEFAULT_LANG
    if code == "da":
        pattern = "d. MMMM y" if year else "d. MMMM"
    else:
        pattern = "d MMMM y" if year else "d MMMM"
    return format_date(value, pattern, locale=i18n.LOCALES[code])


def weekday_name(index: int, lang: str) -> str:
    """Return the name of a weekday (0 = Monday) in the page's language."""
    monday = date(2026, 1, 5)
    return i18n.weekday(monday + timedelta(days=index), lang)


def warm_up(state: WebState) -> None:
    """Compile every template and load the catalogues and Babel's locale data (a thread).

    Otherwise the first page of each kind after a start does it on the event loop: a few
    hundred milliseconds of loop stall once (measured with py-spy, bench/scale_bench.py).
    """
    for name in state.env.list_templates(extensions=["html"]):
        state.env.get_template(name)
    for lang in i18n.LOCALES:
        state.translations(lang)
        i18n.date_long(date(2026, 1, 5), lang)
        i18n.month_label(date(2026, 1, 5), lang)


def lang_of(request: web.Request) -> str:
    """Return the language of the page being answered."""
    return request_lang(request)


def common(request: web.Request, merged: Merged, filters: Filters) -> dict[str, Any]:
    """Return the context every filtered page shares: villages, categories, active filter."""
    return {
        "filters": filters,
        "villages": villages(merged),
        "village_name": village_name(merged, filters.village) if filters.village else "",
        "categories": categories_in_use_by(merged),
        "today": local_today(request),
        "href": make_href("/calendar", filters.params()),
    }
