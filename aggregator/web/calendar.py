"""The /calendar page: a month grid (a day list on phones) and an agenda list, both filtered."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from aiohttp import web

from aggregator.web.pages import (
    Days,
    Filters,
    by_day,
    common,
    filters_of,
    link,
    local_today,
    make_href,
    merged_of,
    occurrences_between,
    public_url,
    timezone_of,
    webcal,
)
from klynge.errors import BadRequest
from klynge.i18n import N_
from klynge.recurrence import Occurrence

CELL_CAP = 5  # events shown in one day of the month grid; the rest behind "+ N more"
LIST_DAYS = 28  # days in one page of the agenda list
LIST_CAP = 120  # occurrences in one page of the list, cut at a day's end (page weight)
DAY_CAP = 40  # occurrences of one day in the list and on the front page
_MONTH_RE = re.compile(r"^(\d{4})-(\d{1,2})$")
BAD_MONTH = N_("Give the month as YYYY-MM, for example 2026-12.")
BAD_DATE = N_("Give the date as YYYY-MM-DD, for example 2026-12-12.")


@dataclass
class Cell:
    """One day of the month grid."""

    day: date
    in_month: bool
    shown: list[Occurrence] = field(default_factory=list)
    more: int = 0


@dataclass
class Week:
    """One row of the month grid: the ISO week and its seven days."""

    monday: date
    cells: list[Cell]

    @property
    def busy(self) -> bool:
        """Tell whether any day of the week (in the month) has events."""
        return any(c.shown for c in self.cells if c.in_month)


def parse_month(value: str, today: date) -> date:
    """Return the first day of a `YYYY-MM` month (this month when empty), or raise BadRequest."""
    if not value:
        return today.replace(day=1)
    match = _MONTH_RE.match(value.strip())
    if not match or not 1 <= int(match.group(2)) <= 12 or not 1900 <= int(match.group(1)) <= 2200:
        raise BadRequest(BAD_MONTH)
    return date(int(match.group(1)), int(match.group(2)), 1)


def parse_day(value: str, today: date) -> date:
    """Return a `YYYY-MM-DD` date (today when empty), or raise BadRequest."""
    if not value:
        return today
    try:
        day = date.fromisoformat(value.strip()[:10])
    except ValueError:
        raise BadRequest(BAD_DATE) from None
    if not 1900 <= day.year <= 2200:  # as parse_month; year 1 or 9999 overflow the window sums
        raise BadRequest(BAD_DATE)
    return day


def shift_month(first: date, months: int) -> date:
    """Return the first day of the month `months` after (or before) `first`."""
    index = first.year * 12 + first.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def month_grid(days: Days, month: date, cap: int = CELL_CAP) -> list[Week]:
    """Return the weeks (Monday to Sunday) that cover `month`, with each day's events."""
    found = dict(days)
    start = month - timedelta(days=month.weekday())
    end = shift_month(month, 1)
    weeks: list[Week] = []
    monday = start
    while monday < end:
        cells = [_cell(monday + timedelta(days=n), month, found, cap) for n in range(7)]
        weeks.append(Week(monday, cells))
        monday += timedelta(days=7)
    return weeks


def _cell(day: date, month: date, found: dict[date, list[Occurrence]], cap: int) -> Cell:
    items = found.get(day, [])
    return Cell(day, day.month == month.month, items[:cap], max(0, len(items) - cap))


def cut_list(days: Days, cap: int = LIST_CAP) -> tuple[Days, bool]:
    """Return whole days up to about `cap` occurrences, and whether some were left out.

    Each day shows at most DAY_CAP occurrences: one village can publish thousands of events
    on one day, and must not push the other days off the page nor make it heavy.
    """
    kept: Days = []
    total = 0
    cut = False
    for day, items in days:
        shown = items[:DAY_CAP]
        if kept and total + len(shown) > cap:
            return kept, True
        kept.append((day, shown))
        total += len(shown)
        cut = cut or len(shown) < len(items)
    return kept, cut


async def month_context(request: web.Request, filters: Filters) -> dict[str, Any]:
    """Gather one month's grid, with links to the months before and after."""
    tz = timezone_of(request)
    month = parse_month(request.query.get("month", ""), local_today(request))
    end = shift_month(month, 1)
    start = month - timedelta(days=month.weekday())
    found = await occurrences_between(request, start, end, filters)
    return {
        "view": "month",
        "month": month,
        "weeks": month_grid(by_day(found, tz), month),
        "prev_month": shift_month(month, -1).strftime("%Y-%m"),
        "next_month": end.strftime("%Y-%m"),
        "params": {"view": "month", "month": month.strftime("%Y-%m")},
    }


async def list_context(request: web.Request, filters: Filters) -> dict[str, Any]:
    """Gather four weeks of the agenda list from `?from=` (today by default)."""
    tz = timezone_of(request)
    today = local_today(request)
    first = parse_day(request.query.get("from", ""), today)
    end = first + timedelta(days=LIST_DAYS)
    days, cut = cut_list(by_day(await occurrences_between(request, first, end, filters), tz))
    after = days[-1][0] + timedelta(days=1) if cut else end
    return {
        "view": "list",
        "first": first,
        "last": after - timedelta(days=1),
        "days": days,
        "earlier": (first - timedelta(days=LIST_DAYS)).isoformat() if first > today else "",
        "later": after.isoformat(),
        "params": {"from": first.isoformat() if first != today else ""},
    }


async def calendar_context(request: web.Request) -> dict[str, Any]:
    """Gather the month grid (`?view=month`) or the agenda list (default), filtered."""
    filters = filters_of(request)
    merged = await merged_of(request)
    if request.query.get("view", "list") == "month":
        view = await month_context(request, filters)
    else:
        view = await list_context(request, filters)
    href = make_href("/calendar", filters.params(**view["params"]))
    ics = public_url(request, link("/calendar.ics", filters.params()))
    extra = {"href": href, "selection_ics": ics, "selection_webcal": webcal(ics)}
    return common(request, merged, filters) | view | extra
