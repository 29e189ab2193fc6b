"""The printable poster: one A4 (or A3) page, one or two weeks by day, notices and a QR code.

When even two weeks leave most of the page empty, the poster shows the month's highlights
instead: the four weeks from the asked Monday, with only the one-off events (no repeat rule)
that are not cancelled or postponed. A one-off is what a poster is for (the Christmas market,
a concert, the general meeting); a weekly training or club evening is routine that the
residents know and the calendar lists, and on a month's poster it would crowd out the rest.

The only module that imports segno (the QR code library). The type size is chosen here, from
an estimate of the lines the entries take, so that a quiet week prints large and a busy one
still fits; poster.css clips the days' box as a last guard so the page never spills over.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import segno
from aiohttp import web
from markupsafe import Markup

from aggregator.keys import now
from aggregator.publish import outputs
from aggregator.web.pages import (
    Days,
    by_day,
    day_month,
    filters_of,
    lang_of,
    local_today,
    make_href,
    merged_of,
    occurrences_between,
    public_url,
    timezone_of,
    village_name,
)
from klynge.errors import BadRequest
from klynge.i18n import N_
from klynge.model import Notice
from klynge.recurrence import Occurrence

_WEEK_RE = re.compile(r"^(\d{4})-?W(\d{1,2})$", re.IGNORECASE)
BAD_WEEK = N_("Give the week as YYYY-Www, for example 2026-W49.")
# What fits on one A4 page in the poster's print type, measured by printing with chromium:
# about POSTER_LINES lines of about CHARS_PER_LINE characters in the two columns, besides
# the header and footer. A day heading costs two lines, "+ N more" one.
POSTER_LINES = 68
CHARS_PER_LINE = 38
ENTRY_LINES_MAX = 3  # poster.css clamps an entry to three lines in print
BAD_WEEKS = N_("Give the number of weeks as 1 or 2, or month for the month's highlights.")
MONTH = 4  # the month's highlights cover four weeks from the asked Monday
QUIET_PT = 22  # weeks that print this large have little on: the month may say more
MONTH_PT = 18  # ...if all its highlights fit at this size or larger
NOTICES = 3  # a few current notices, one line each, under the days
# The days' box on A4 with 10 mm margins, besides the header, notices and footer (points);
# on A3 every length and type size is 1.414 times larger, so the same budget holds.
DAYS_HEIGHT_PT = 540.0
DAYS_WIDTH_PT = 538.0
COLUMN_GAP_PT = 22.0
LINE_HEIGHT = 1.3
CHAR_WIDTH_EM = 0.46  # measured: 40 letters of DejaVu Sans at 14 pt in a 258 pt column
FILL_SAFETY = 0.92  # the estimate is rough: aim below the box, never beyond it
PAPER_SCALE = {"a4": 1.0, "a3": 1.414}


@dataclass(frozen=True)
class Scale:
    """One type size the poster can print at: its entry size and columns."""

    size_pt: int
    columns: int

    @property
    def lines(self) -> int:
        """Return about how many entry lines the days' box holds at this size."""
        per_column = DAYS_HEIGHT_PT / (self.size_pt * LINE_HEIGHT)
        return int(per_column * self.columns * FILL_SAFETY)

    @property
    def chars(self) -> int:
        """Return about how many characters one line of a column holds."""
        width = (DAYS_WIDTH_PT - COLUMN_GAP_PT * (self.columns - 1)) / self.columns
        return int(width / (self.size_pt * CHAR_WIDTH_EM))


# Largest first; events never print below 14 pt (issue 16: readable on a board).
SCALES = (Scale(30, 1), Scale(26, 1), Scale(22, 1), Scale(18, 2), Scale(16, 2), Scale(14, 2))


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


def entry_lines(occurrence: Occurrence, chars_per_line: int = CHARS_PER_LINE) -> int:
    """Return about how many printed lines one entry takes (its text wraps in a column)."""
    event = occurrence.event
    place = occurrence.place.name if occurrence.place else ""
    village = event.source.title if event.source else ""
    chars = 8 + len(occurrence.title) + len(place) + len(village)
    return min(ENTRY_LINES_MAX, -(-chars // max(chars_per_line, 1)))  # whole lines, rounded up


def poster_lines(days: Days, cap: int, chars_per_line: int = CHARS_PER_LINE) -> int:
    """Return about how many lines the week takes with at most `cap` entries a day."""
    total = 0
    for _, items in days:
        shown = sum(entry_lines(o, chars_per_line) for o in items[:cap])
        total += 2 + shown + (len(items) > cap)
    return total


def fitting_scale(days: Days) -> Scale | None:
    """Return the largest type size at which every entry of `days` fits, or None."""
    longest = max((len(items) for _, items in days), default=0)
    for scale in SCALES:
        if longest <= scale.lines and poster_lines(days, longest, scale.chars) <= scale.lines:
            return scale
    return None


def day_cap(days: Days, lines: int = 0, chars_per_line: int = CHARS_PER_LINE) -> int:
    """Return the most entries shown per day so the whole week fits in `lines` lines.

    Linear in the entries that can fit: the lines of each day's first entries are summed once
    (a page holds at most `lines` of them), then the cap is found by bisection, since the
    week's lines only grow with the cap. Trying every cap from the longest day down was
    quadratic: minutes for a day of 5,000 entries.
    """
    budget = lines or POSTER_LINES
    longest = max((len(items) for _, items in days), default=0)
    reach = min(longest, budget)  # every entry takes a line: more never fit
    sums = [_prefix_lines(items[:reach], chars_per_line) for _, items in days]
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


def _prefix_lines(items: list[Occurrence], chars_per_line: int) -> list[int]:
    sums = [0]
    for occurrence in items:
        sums.append(sums[-1] + entry_lines(occurrence, chars_per_line))
    return sums


def capped(days: Days, cap: int) -> list[tuple[date, list[Any], int]]:
    """Return each day with at most `cap` entries and the number left out."""
    return [(day, items[:cap], max(0, len(items) - cap)) for day, items in days]


@dataclass(frozen=True)
class Plan:
    """What the poster prints: its days (capped), how many weeks, and the type size."""

    days: list[tuple[date, list[Any], int]]
    weeks: int  # 1, 2, or MONTH for the month's highlights
    scale: Scale


def plan(one: Days, two: Days, weeks: int = 0) -> Plan:
    """Choose one or two weeks and the type size so the poster fills its page (0 = choose)."""
    single = fitting_scale(one)
    if weeks == 2 or (weeks == 0 and _wants_two(one, two, single)):
        scale = fitting_scale(two)
        if scale is not None:
            return Plan(capped(two, max((len(i) for _, i in two), default=0)), 2, scale)
        if weeks == 2:
            smallest = SCALES[-1]
            return Plan(capped(two, day_cap(two, smallest.lines, smallest.chars)), 2, smallest)
    if single is not None:
        return Plan(capped(one, max((len(i) for _, i in one), default=0)), 1, single)
    smallest = SCALES[-1]
    return Plan(capped(one, day_cap(one, smallest.lines, smallest.chars)), 1, smallest)


def highlights(days: Days) -> Days:
    """Return the month's highlights: one-off events that still take place, by day."""
    kept = [(day, [o for o in items if _highlight(o)]) for day, items in days]
    return [(day, items) for day, items in kept if items]


def _highlight(occurrence: Occurrence) -> bool:
    return occurrence.event.rrule is None and occurrence.status not in ("cancelled", "postponed")


def fitted(days: Days, weeks: int) -> Plan:
    """Return `days` at the largest type that fits, capped per day at 14 pt if none does."""
    scale = fitting_scale(days)
    if scale is not None:
        return Plan(capped(days, max((len(i) for _, i in days), default=0)), weeks, scale)
    smallest = SCALES[-1]
    return Plan(capped(days, day_cap(days, smallest.lines, smallest.chars)), weeks, smallest)


def choose(one: Days, two: Days, month: Days, weeks: int = 0) -> Plan:
    """Choose one week, two weeks or the month's highlights (0 = choose), to fill the page.

    The highlights win when the weeks print large (so there is little on), the month has more
    one-off events than the weeks show, and all of them still fit in large type.
    """
    if weeks == MONTH:
        return fitted(highlights(month), MONTH)
    chosen = plan(one, two, weeks)
    if weeks or chosen.scale.size_pt < QUIET_PT:
        return chosen
    best = highlights(month)
    scale = fitting_scale(best)
    shown = sum(len(found) for _, found, _ in chosen.days)
    if scale is not None and scale.size_pt >= MONTH_PT and sum(len(i) for _, i in best) > shown:
        return fitted(best, MONTH)
    return chosen


def _wants_two(one: Days, two: Days, single: Scale | None) -> bool:
    """Tell whether a quiet week leaves room that next week's entries can fill, still large."""
    if single is None or single != SCALES[0] or len(two) == len(one):
        return False
    biggest = SCALES[0]
    roomy = poster_lines(one, len(one) and max(len(i) for _, i in one), biggest.chars)
    both = fitting_scale(two)
    return roomy * 2 < biggest.lines and both is not None and both.size_pt >= 22


def parse_weeks(value: str) -> int:
    """Return the `?weeks=` choice: 0 (let the poster choose), 1 or 2; or raise BadRequest."""
    if value.strip() in ("", "auto"):
        return 0
    if value.strip().lower() == "month":
        return MONTH
    if value.strip() in ("1", "2"):
        return int(value)
    raise BadRequest(BAD_WEEKS)


def paper_of(value: str) -> str:
    """Return the paper size asked for (`a4` or `a3`); anything else is A4."""
    return value.strip().lower() if value.strip().lower() in PAPER_SCALE else "a4"


def poster_notices(request: web.Request, merged: Any, village: str) -> list[Notice]:
    """Return a few current notices (of the village, when the poster is for one)."""
    return outputs.current_notices(merged, now(request), village)[:NOTICES]


async def poster_context(request: web.Request) -> dict[str, Any]:
    """Gather one or two weeks for the poster, at the largest type that fits one page."""
    tz = timezone_of(request)
    lang = lang_of(request)
    monday = parse_week(request.query.get("week", ""), local_today(request))
    weeks = parse_weeks(request.query.get("weeks", ""))
    paper = paper_of(request.query.get("paper", ""))
    filters = filters_of(request)
    found = await occurrences_between(request, monday, monday + timedelta(7 * MONTH), filters)
    month = by_day(found, tz)
    two = [d for d in month if d[0] < monday + timedelta(14)]
    chosen = choose([d for d in two if d[0] < monday + timedelta(7)], two, month, weeks)
    sunday = monday + timedelta(days=7 * chosen.weeks - 1)
    subscribe = public_url(request, "/subscribe")
    merged = await merged_of(request)
    return {
        "monday": monday,
        "sunday": sunday,
        "weeks": chosen.weeks,
        "month_highlights": chosen.weeks == MONTH,
        "week_numbers": [(monday + timedelta(7 * n)).isocalendar()[1] for n in range(chosen.weeks)],
        "week_span": f"{day_month(monday, lang)} – {day_month(sunday, lang, year=True)}",
        "days": chosen.days,
        "scale": chosen.scale,
        "paper": paper,
        "paper_scale": PAPER_SCALE[paper],
        "notices": poster_notices(request, merged, filters.village),
        "filters": filters,
        "village_name": village_name(merged, filters.village) if filters.village else "",
        "subscribe_url": subscribe,
        "calendar_url": public_url(request, "/calendar"),
        "short_url": public_url(request, "/calendar").split("://", 1)[-1],
        "qr": qr_svg(subscribe),
        "prev_week": week_param(monday - timedelta(days=7)),
        "next_week": week_param(monday + timedelta(days=7)),
        "poster_href": make_href(
            "/poster", {"week": week_param(monday), "village": filters.village, "paper": paper}
        ),
    }
