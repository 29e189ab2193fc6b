"""Resident-facing HTML pages: one handler per page, its data gathered by a `*_context` function.

The contexts live beside the page kinds: calendar_view (month grid and list), pages_event
(event page and its .ics), pages_board (noticeboard, subscribe, status) and poster.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from aiohttp import web

from aggregator.keys import CONFIG, now
from aggregator.publish import outputs
from aggregator.web import digest, embed, mailing, plan
from aggregator.web.board import noticeboard_context, status_context, subscribe_context
from aggregator.web.calendar import calendar_context, cut_list
from aggregator.web.event import event_context, event_ics
from aggregator.web.kept import kept
from aggregator.web.pages import (
    Days,
    Filters,
    by_day,
    common,
    local_today,
    merged_of,
    occurrences_between,
    timezone_of,
)
from aggregator.web.poster import poster_context
from aggregator.web.screen import screen_context
from klynge.i18n import N_
from klynge.web import render

UUID = r"{uuid:[0-9a-fA-F-]{36}}"
FRONT_CAP = 150  # occurrences on the front page; the calendar has the rest (page weight)
TEASER_NOTICES = 3


def add_routes(app: web.Application) -> None:
    """Register the HTML pages (and the per-event .ics, served beside its page)."""
    app.router.add_get("/", kept(home))
    app.router.add_get("/calendar", kept(calendar_page))
    app.router.add_get("/noticeboard", noticeboard)
    app.router.add_get(f"/events/{UUID}.ics", event_ics)
    app.router.add_get("/events/{uuid}", event_page)
    app.router.add_get("/subscribe", subscribe)
    app.router.add_get("/status", status_page)
    app.router.add_get("/poster", poster)
    app.router.add_get("/screen", screen)
    embed.add_routes(app)
    digest.add_routes(app)
    mailing.add_routes(app)
    plan.add_routes(app)  # /plan and /api/clashes (issue 13)


@dataclass(frozen=True)
class Section:
    """A part of the front page: today, the rest of this week, or next week."""

    key: str
    heading: str  # a msgid
    first: date
    last: date
    days: Days


def sections(days: Days, today: date) -> list[Section]:
    """Split the front page's days into today, the rest of this week and next week."""
    monday = today - timedelta(days=today.weekday())
    parts = [
        ("today", N_("Today"), today, today),
        ("week", N_("This week"), today + timedelta(days=1), monday + timedelta(days=6)),
        ("next", N_("Next week"), monday + timedelta(days=7), monday + timedelta(days=13)),
    ]
    return [
        Section(key, heading, lo, hi, [(d, items) for d, items in days if lo <= d <= hi])
        for key, heading, lo, hi in parts
        if lo <= hi
    ]


async def home_context(request: web.Request) -> dict[str, Any]:
    """Gather today, this calendar week (Monday to Sunday) and next week, and new notices."""
    today = local_today(request)
    end = today - timedelta(days=today.weekday()) + timedelta(days=14)
    found = await occurrences_between(request, today, end)
    merged = await merged_of(request)
    days, cut = cut_list(by_day(found, timezone_of(request)), FRONT_CAP)
    return common(request, merged, Filters()) | {
        "sections": sections(days, today),
        "cut": cut,
        "notices": outputs.current_notices(merged, now(request))[:TEASER_NOTICES],
        "notice_count": len(outputs.current_notices(merged, now(request))),
    }


async def home(request: web.Request) -> web.Response:
    """Show today, this week and next week across the cluster."""
    return render(request, "home.html", await home_context(request))


async def calendar_page(request: web.Request) -> web.Response:
    """Show the month grid or the agenda list, filtered by village and category."""
    return render(request, "calendar.html", await calendar_context(request))


async def noticeboard(request: web.Request) -> web.Response:
    """Show the unexpired notices by category, newest first."""
    return render(request, "noticeboard.html", await noticeboard_context(request))


async def event_page(request: web.Request) -> web.Response:
    """Show one event with its provenance and carpools."""
    return render(request, "event.html", await event_context(request))


async def subscribe(request: web.Request) -> web.Response:
    """Show how to subscribe to the cluster's calendars."""
    context = await subscribe_context(request)
    context["embed_snippet"] = embed.snippet(request)
    context["mail_enabled"] = request.app[CONFIG].mail is not None
    return render(request, "subscribe.html", context)


async def status_page(request: web.Request) -> web.Response:
    """Show every source's health in words."""
    return render(request, "status.html", await status_context(request))


async def poster(request: web.Request) -> web.Response:
    """Show the printable week poster."""
    return render(request, "poster.html", await poster_context(request))


async def screen(request: web.Request) -> web.Response:
    """Show today and the coming days for a TV, reloading itself."""
    context = await screen_context(request)
    response = render(request, "screen.html", context)
    # The Refresh header (HTML's "refresh" pragma, sent as a header) reloads the page with
    # no JavaScript, as <meta http-equiv=refresh> would; the screen is an unattended display.
    response.headers["Refresh"] = str(context["refresh_seconds"])
    return response
