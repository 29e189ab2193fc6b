"""The noticeboard (carpools beside their events), the subscribe page and the status page."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import quote

from aiohttp import web
from babel.numbers import format_decimal

from aggregator.keys import CONFIG, OPERATOR, OUTPUTS, REFRESHER, SOURCE_ROWS, now
from aggregator.publish import outputs
from aggregator.reader.merge import Merged
from aggregator.store.moderation import Hold
from aggregator.web.pages import (
    Filters,
    categories_in_use,
    event_path,
    filters_of,
    lang_of,
    local_day,
    make_href,
    merged_of,
    public_url,
    timezone_of,
    village_name,
    villages,
    webcal,
)
from klynge.i18n import N_
from klynge.messages import Message, define, optional
from klynge.model import CATEGORIES, Event, Notice, category_label, zone

# Health words on /status; "held back" when a fetch would delete too much (design.md).
STATE_WORDS = {
    "new": N_("not fetched yet"),
    "ok": N_("ok"),
    "failing": N_("failing"),
    "stale": N_("stale"),
    "held": N_("held back"),
}
FAILURES = define("status.failures", "%(n)s failure in a row", "%(n)s failures in a row", count="n")
HELD_BACK = define(
    "status.held_back",
    "%(n)s deletion waits for the next fetch to confirm it.",
    "%(n)s deletions wait for the next fetch to confirm them.",
    count="n",
)


@dataclass(frozen=True)
class NoticeRow:
    """A notice as the board shows it, with its last day and the event it belongs to."""

    notice: Notice
    last_day: date | None
    event: Event | None
    event_day: date | None


def last_day_shown(expires: datetime, tz: str) -> date:
    """Return the last local day a notice is shown (an expiry at midnight ends the day before)."""
    local = expires.astimezone(zone(tz))
    return local.date() - timedelta(days=1) if local.time() == time(0) else local.date()


def notice_row(notice: Notice, events: dict[str, Event], tz: str) -> NoticeRow:
    """Return the board's view of one notice."""
    event = events.get(notice.related) if notice.related else None
    event_day = local_day(event.start, tz) if event else None
    last = last_day_shown(notice.expires, tz) if notice.expires else None
    return NoticeRow(notice, last, event, event_day)


def notice_groups(
    merged: Merged, tz: str, now: datetime, village: str = ""
) -> list[tuple[str, list[NoticeRow]]]:
    """Return the unexpired notices (of one village) by category, newest first in each."""
    current = outputs.current_notices(merged, now, village)
    notices = sorted(current, key=lambda n: n.updated, reverse=True)
    events = {e.id: e for e in merged.events}
    rows = [notice_row(n, events, tz) for n in notices]
    order = [*categories_in_use(notices), ""]
    groups = [(term, [r for r in rows if r.notice.category == term]) for term in order]
    return [(term, found) for term, found in groups if found]


def by_event(rows: list[NoticeRow]) -> list[tuple[Event | None, list[NoticeRow]]]:
    """Return carpool rows grouped by their event, soonest event first (issue 14)."""
    groups: dict[str, list[NoticeRow]] = {}
    for row in rows:
        groups.setdefault(row.event.id if row.event else "", []).append(row)

    def soonest(found: list[NoticeRow]) -> tuple[bool, str]:
        event = found[0].event
        return (event is None, event.series_end().isoformat() if event else "")

    return [(found[0].event, found) for found in sorted(groups.values(), key=soonest)]


async def noticeboard_context(request: web.Request) -> dict[str, Any]:
    """Gather the noticeboard's groups, narrowed to one village by `?village=`."""
    merged = await merged_of(request)
    filters = Filters(village=filters_of(request).village)
    groups = notice_groups(merged, timezone_of(request), now(request), filters.village)
    return {
        "groups": groups,
        "event_path": event_path,
        "by_event": by_event,
        "filters": filters,
        "villages": villages(merged),
        "village_name": village_name(merged, filters.village) if filters.village else "",
        "href": make_href("/noticeboard", filters.params()),
    }


# --- /subscribe ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Subscription:
    """One calendar to subscribe to, in the forms calendar apps want."""

    key: str
    label: str
    https: str
    webcal: str
    google: str


def subscription(key: str, label: str, url: str) -> Subscription:
    """Return the https, webcal and Google Calendar forms of a calendar URL."""
    cal = webcal(url)
    google = "https://calendar.google.com/calendar/r?cid=" + quote(cal, safe="")
    return Subscription(key, label, url, cal, google)


def subscriptions(request: web.Request, merged: Merged) -> dict[str, list[Subscription]]:
    """Return the whole cluster's, each village's and each category's calendar."""
    lang = lang_of(request)
    base = public_url(request, "/calendar.ics")
    terms = list(dict.fromkeys([*CATEGORIES, *categories_in_use(merged.events)]))
    return {
        "cluster": [subscription("all", request.app[CONFIG].name, base)],
        "villages": [
            subscription(f"v-{key}", name, f"{base}?village={quote(key)}")
            for key, name in villages(merged)
        ],
        "categories": [
            subscription(f"c-{term}", category_label(term, lang), f"{base}?category={quote(term)}")
            for term in terms
        ],
    }


async def subscribe_context(request: web.Request) -> dict[str, Any]:
    """Gather every calendar link and the Atom feed."""
    merged = await merged_of(request)
    return {
        "groups": subscriptions(request, merged),
        "feed_url": public_url(request, "/feed.atom"),
    }


# --- /status ------------------------------------------------------------------------------


def _local(value: str | None, tz: str) -> datetime | None:
    return datetime.fromisoformat(value).astimezone(zone(tz)) if value else None


def source_view(row: dict[str, Any], tz: str) -> dict[str, Any]:
    """Return one source's health with its state as a word key and local times."""
    state = "held" if row["held_back"] else row["health"]
    return row | {
        "state": state,
        "state_word": STATE_WORDS[state],
        "last_success_at": _local(row["last_success"], tz),
        "last_attempt_at": _local(row["last_attempt"], tz),
        "next_check_at": _local(row["next_check"], tz),
    }


def in_words(row: dict[str, Any], lang: str) -> dict[str, Any]:
    """Return a source's health messages (a row's `messages`) in the reader's language."""
    said = row["messages"]

    def words(key: str) -> str:
        message = optional(said[key])
        return message.render(lang) if message is not None else ""

    return {
        "summary_words": words("summary"),
        "last_error_words": words("last_error"),
        "flag_words": words("flag"),
        "limited_words": words("limited"),
        "problems_words": [Message.from_json(p).render(lang) for p in said["problems"]],
        "failures_words": Message(FAILURES, {"n": row["failures"]}).render(lang),
        "held_back_words": Message(HELD_BACK, {"n": row["held_back"]}).render(lang),
    }


async def status_context(request: web.Request) -> dict[str, Any]:
    """Gather every source's health, for a host to read."""
    tz = timezone_of(request)
    rows = request.app[SOURCE_ROWS].rows(request.app[CONFIG], request.app[REFRESHER])
    lang = lang_of(request)
    moderation = request.app[OPERATOR].moderation
    views = [
        source_view(r, tz) | in_words(r, lang) | {"paused_reason": _reason(moderation.paused, r)}
        for r in rows
    ]
    counts = {key: sum(1 for v in views if v["state"] == key) for key in STATE_WORDS}
    moment = now(request).astimezone(zone(tz))
    hidden = [
        {"id": key, "reason": hold.reason, "since": hold.since.astimezone(zone(tz))}
        for key, hold in moderation.hidden.items()
    ]
    return {
        "sources": views,
        "counts": counts,
        "state_words": STATE_WORDS,
        "now": moment,
        "hidden": hidden,
        "documents": await document_sizes(request, lang),
    }


async def document_sizes(request: web.Request, lang: str) -> dict[str, str] | None:
    """Return the sizes of the merged feed and the calendar, in words (built if need be).

    `calendar.ics` keeps 90 days of past events (design.md), so a big tier's file grows with
    its past: the host sees here what every subscribed phone downloads. None while the stored
    entries are still loading (the page answers at once then, as before).
    """
    if request.app[REFRESHER].loading:
        return None
    documents = request.app[OUTPUTS]
    feed, calendar = await documents.feed(), await documents.calendar()
    return {
        "feed": megabytes(feed.parts.size, lang),
        "calendar": megabytes(calendar.parts.size, lang),
    }


def megabytes(size: int, lang: str) -> str:
    """Return a size in bytes as kB below a megabyte, else MB with one decimal (local format)."""
    if size < 1_000_000:
        return format_decimal(max(1, round(size / 1000)), locale=lang) + " kB"
    return format_decimal(size / 1e6, format="#,##0.0", locale=lang) + " MB"


def _reason(paused: Mapping[str, Hold], row: dict[str, Any]) -> str:
    hold = paused.get(row["url"])
    return hold.reason if hold else ""
