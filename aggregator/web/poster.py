"""The printable week poster: one A4 page, grouped by day, with a QR code to /subscribe.

The only module that imports segno (the QR code library).
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import segno
from aiohttp import web
from markupsafe import Markup

from aggregator.web.pages import (
    Days,
    by_day,
    day_month,
    filters_of,
    lang_of,
    local_today,
    merged_of,
    occurrences_between,
    public_url,
    timezone_of,
    village_name,
)
from klynge.errors import BadRequest
from klynge.i18n import N_
from klynge.recurrence import Occurrence

_WEEK_RE = re.compile(r"^(\d{4})-?W(\d{1,2})$", re.IGNORECASE)
BAD_WEEK = N_("Give the week as YYYY-Www, for example 2026-W49.")
# What fits on one A4 page in the poster's print type, measured by printing with chromium:
# about POSTER_LINES lines of about CHARS_PER_LINE characters in the two columns, besides
# the header and footer. A day heading costs two lines, "+ N more" one.
POSTER_LINES = 68
CHARS_PER_LINE = 38
ENTRY_LINES_MAX = 3  # poster.css clamps an entry to three lines in print


def parse_week(value: str, today: date) -> date:
    """Return the Monday of an ISO week `YYYY-Www` (this week when empty), or raise BadRequest."""
    if not value.strip():
        return today - timedelta(days=today.weekday())
    match = _WEEK_RE.match(value.strip())
    # Years as the calendar's months; year 1 or 9999 overflow the week's window sums.
    if not match or not 1900 <= int(match.group(1)) <= 2200:
        raise BadRequest(BAD_WEEK)
    try:
        return date.fromisocalendar(int(match.group(1)), int(match.group(2)), 1)
    except ValueError:
        raise BadRequest(BAD_WEEK) from None


def week_param(monday: date) -> str:
    """Return the `?week=` value of a week, e.g. 2026-W49."""
    year, week, _ = monday.isocalendar()
    return f"{year}-W{week:02d}"


def qr_svg(url: str, label: str = "") -> Markup:
    """Return a QR code for `url` as inline SVG that scales with CSS (a viewBox, no size)."""
    svg = segno.make(url, error="m").svg_inline(
        scale=1, border=2, omitsize=True, title=label or url
    )
    # role=img with a name: screen readers say what the code is instead of skipping it.
    return Markup(svg.replace("<svg ", '<svg role="img" focusable="false" ', 1))


def entry_lines(occurrence: Occurrence) -> int:
    """Return about how many printed lines one entry takes (its text wraps in a column)."""
    event = occurrence.event
    place = occurrence.place.name if occurrence.place else ""
    village = event.source.title if event.source else ""
    chars = 8 + len(occurrence.title) + len(place) + len(village)
    return min(ENTRY_LINES_MAX, 1 + chars // CHARS_PER_LINE)


def poster_lines(days: Days, cap: int) -> int:
    """Return about how many lines the week takes with at most `cap` entries a day."""
    total = 0
    for _, items in days:
        total += 2 + sum(entry_lines(o) for o in items[:cap]) + (len(items) > cap)
    return total


def day_cap(days: Days, lines: int = 0) -> int:
    """Return the most entries shown per day so the whole week fits in `lines` lines.

    Linear in the entries that can fit: the lines of each day's first entries are summed once
    (a page holds at most `lines` of them), then the cap is found by bisection, since the
    week's lines only grow with the cap. Trying every cap from the longest day down was
    quadratic: minutes for a day of 5,000 entries.
    """
    budget = lines or POSTER_LINES
    longest = max((len(items) for _, items in days), default=0)
    reach = min(longest, budget)  # every entry takes a line: more never fit
    sums = [_prefix_lines(items[:reach]) for _, items in days]
    sizes = [len(items) for _, items in days]

    def week_lines(cap: int) -> int:
        return sum(
            2 + s[min(cap, len(s) - 1)] + (n > cap) for s, n in zip(sums, sizes, strict=True)
        )

    low, high = 1, max(reach, 1)  # the answer lies in [low, high]; cap 1 is the floor
    if longest <= budget and week_lines(longest) <= budget:
        return longest
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if week_lines(middle) <= budget else (low, middle - 1)
    return low


def _prefix_lines(items: list[Occurrence]) -> list[int]:
    sums = [0]
    for occurrence in items:
        sums.append(sums[-1] + entry_lines(occurrence))
    return sums


def capped(days: Days, cap: int) -> list[tuple[date, list[Any], int]]:
    """Return each day with at most `cap` entries and the number left out."""
    return [(day, items[:cap], max(0, len(items) - cap)) for day, items in days]


async def poster_context(request: web.Request) -> dict[str, Any]:
    """Gather one week for the poster, capped to fit one A4 page."""
    tz = timezone_of(request)
    monday = parse_week(request.query.get("week", ""), local_today(request))
    filters = filters_of(request)
    sunday = monday + timedelta(days=6)
    days = by_day(await occurrences_between(request, monday, sunday + timedelta(1), filters), tz)
    subscribe = public_url(request, "/subscribe")
    merged = await merged_of(request)
    return {
        "monday": monday,
        "sunday": sunday,
        "week_span": f"{day_month(monday, lang_of(request))} – "
        f"{day_month(sunday, lang_of(request), year=True)}",
        "days": capped(days, day_cap(days)),
        "filters": filters,
        "village_name": village_name(merged, filters.village) if filters.village else "",
        "subscribe_url": subscribe,
        "calendar_url": public_url(request, "/calendar"),
        "short_url": public_url(request, "/calendar").split("://", 1)[-1],
        "qr": qr_svg(subscribe),
        "prev_week": week_param(monday - timedelta(days=7)),
        "next_week": week_param(monday + timedelta(days=7)),
    }
