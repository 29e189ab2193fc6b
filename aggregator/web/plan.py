"""The cluster's year plan (årshjul) at /plan, and /api/clashes (issue 13).

For the lokalråd's planning meeting: the months ahead at a glance, each day with its number
of events per village, weekends and evenings where two or more villages hold events of the
same category marked, filters by village and category, printable on A4 or A3 landscape.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from aiohttp import web
from babel.dates import format_date

from aggregator.web.calendar import parse_day, parse_month, shift_month
from aggregator.web.clashes import days_of, is_evening, pairs, village
from aggregator.web.pages import (
    Filters,
    common,
    filters_of,
    link,
    local_today,
    make_href,
    merged_of,
    occurrences_between,
    timezone_of,
)
from klynge import i18n
from klynge.errors import BadRequest
from klynge.i18n import N_
from klynge.model import CATEGORIES, format_when
from klynge.recurrence import Occurrence
from klynge.web import render, request_lang

MAX_MONTHS = 12
DEFAULT_MONTHS = 3
MAX_CLASH_DAYS = 366
BAD_MONTHS = N_("Give the number of months as a whole number from 1 to 12.")
RANGE_TOO_LONG = N_("Ask for at most 366 days at a time (from=YYYY-MM-DD&to=YYYY-MM-DD).")
TO_BEFORE_FROM = N_("The to date is before the from date.")


@dataclass
class PlanDay:
    """One day of the plan: events per village, tentative dates, and shared categories."""

    day: date
    weekend: bool
    href: str
    weekday: str  # short: "lør." / "Sat"
    counts: dict[str, int] = field(default_factory=dict)  # village -> events
    tentative: list[tuple[str, str]] = field(default_factory=list)  # (title, village)
    shared: list[str] = field(default_factory=list)  # category labels held by 2+ villages

    @property
    def total(self) -> int:
        """Return the number of events that day."""
        return sum(self.counts.values())


@dataclass
class PlanMonth:
    """A month of the plan."""

    first: date
    days: list[PlanDay]


def add_routes(app: web.Application) -> None:
    """Register /plan and /api/clashes."""
    app.router.add_get("/plan", plan_page)
    app.router.add_get("/api/clashes", api_clashes)


async def plan_page(request: web.Request) -> web.Response:
    """Show the year plan."""
    return render(request, "plan.html", await plan_context(request))


def _months(request: web.Request) -> int:
    text = request.query.get("months", "").strip()
    if not text:
        return DEFAULT_MONTHS
    if not text.isdigit() or not 1 <= int(text) <= MAX_MONTHS:
        raise BadRequest(BAD_MONTHS)
    return int(text)


async def plan_context(request: web.Request) -> dict[str, Any]:
    """Gather the plan's months from `?from=YYYY-MM` (this month by default), filtered."""
    today = local_today(request)
    first = parse_month(request.query.get("from", ""), today)
    months = _months(request)
    filters = filters_of(request)
    end = shift_month(first, months)
    found = await occurrences_between(request, first, end, filters)
    lang = request_lang(request)
    tz = timezone_of(request)
    plan = plan_months(found, first, months, tz, lang, filters)
    paper = "a3" if request.query.get("paper") == "a3" else "a4"
    params = filters.params(**{"from": first.strftime("%Y-%m"), "months": str(months)})
    merged = await merged_of(request)
    return common(request, merged, filters) | {
        "months": plan,
        "paper": paper,
        "month_count": months,
        "plan_href": make_href("/plan", params),
        "prev_from": shift_month(first, -months).strftime("%Y-%m"),
        "next_from": end.strftime("%Y-%m"),
        "plan_villages": sorted({village(o) for o in found}),
        "category_label": lambda term: _label(term, lang),
    }


def plan_months(
    found: list[Occurrence], first: date, months: int, tz: str, lang: str, filters: Filters
) -> list[PlanMonth]:
    """Return the plan's months with every day filled from the occurrences."""
    by_day: dict[date, list[Occurrence]] = defaultdict(list)
    for occurrence in found:
        if occurrence.status != "cancelled":
            for day in days_of(occurrence, tz):
                by_day[day].append(occurrence)
    plan = []
    for index in range(months):
        start = shift_month(first, index)
        days = []
        day = start
        while day < shift_month(start, 1):
            days.append(_plan_day(day, by_day.get(day, []), tz, lang, filters))
            day += timedelta(days=1)
        plan.append(PlanMonth(start, days))
    return plan


def _plan_day(day: date, found: list[Occurrence], tz: str, lang: str, filters: Filters) -> PlanDay:
    weekend = day.weekday() >= 5
    href = link("/calendar", filters.params(**{"from": day.isoformat()}))
    cell = PlanDay(day, weekend, href, format_date(day, "EEE", locale=_locale(lang)))
    held: dict[str, set[str]] = defaultdict(set)  # category -> villages (weekend or evening)
    for occurrence in found:
        name = village(occurrence)
        cell.counts[name] = cell.counts.get(name, 0) + 1
        if occurrence.status == "tentative":
            cell.tentative.append((occurrence.title, name))
        category = occurrence.event.category
        if category and (weekend or is_evening(occurrence, tz)):
            held[category].add(name)
    cell.counts = dict(sorted(cell.counts.items()))
    cell.shared = [_label(c, lang) for c, names in sorted(held.items()) if len(names) >= 2]
    return cell


def _locale(lang: str) -> str:
    return i18n.LOCALES[i18n.normalise_lang(lang) or i18n.DEFAULT_LANG]


def _label(term: str, lang: str) -> str:
    labels = CATEGORIES.get(term)
    if labels is None:
        return term
    return labels[1] if i18n.normalise_lang(lang) == "en" else labels[0]


async def api_clashes(request: web.Request) -> web.Response:
    """GET /api/clashes?from=&to=: pairs of two villages' occurrences that meet, as JSON."""
    today = local_today(request)
    first = parse_day(request.query.get("from", ""), today)
    last = parse_day(request.query.get("to", ""), first + timedelta(days=30))
    if last < first:
        raise BadRequest(TO_BEFORE_FROM)
    if (last - first).days + 1 > MAX_CLASH_DAYS:
        raise BadRequest(RANGE_TOO_LONG)
    filters = filters_of(request)
    found = await occurrences_between(request, first, last + timedelta(days=1), filters)
    tz = timezone_of(request)
    body = {
        "from": first.isoformat(),
        "to": last.isoformat(),
        "clashes": [_pair_json(p) for p in pairs(found, tz)],
    }
    return web.json_response(body, dumps=outputs_dumps)


def _pair_json(pair: Any) -> dict[str, Any]:
    return {
        "kind": pair.kind,
        "same_category": pair.same_category,
        "events": [_side(pair.first), _side(pair.second)],
    }


def _side(occurrence: Occurrence) -> dict[str, Any]:
    event = occurrence.event
    return {
        "id": event.id,
        "title": occurrence.title,
        "village": village(occurrence),
        "start": format_when(occurrence.start),
        "end": format_when(occurrence.end),
        "all_day": event.all_day,
        "category": event.category,
        "status": occurrence.status,
        "link": f"/events/{event.id.removeprefix('urn:uuid:')}",
    }


def outputs_dumps(value: Any) -> str:
    """Dump JSON keeping Danish letters readable."""
    return json.dumps(value, ensure_ascii=False)
