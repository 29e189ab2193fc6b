"""Clash warnings for volunteers: in the preview, the form's JSON endpoint and the API answer.

Everything here is answered from the cached cluster copy (node.cluster.copy), never by
fetching while the volunteer waits; a form opened on an old copy only starts a refresh.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from babel.dates import format_timedelta

from klynge import i18n
from klynge.errors import ValidationError
from klynge.i18n import N_
from klynge.model import CATEGORIES, Event, When, new_id, zone
from klynge.web import gettext, request_lang
from node.accounts import login_required
from node.cluster.clash import OVERLAP, SAME_VENUE, Clash, clashes
from node.cluster.copy import ClusterCopy
from node.config import NodeConfig
from node.forms import event_input
from node.keys import CONFIG, STORE
from node.serialize import Stamp, build_event

COPY = web.AppKey("node_cluster_copy", ClusterCopy)
FORM_KEYS = (
    "title", "date", "start_time", "end_time", "all_day", "end_date", "repeat_until",
    "place", "place_name", "place_street", "place_postcode", "place_locality", "category",
    "status",
)  # fmt: skip
HEADINGS = {
    SAME_VENUE: N_("Same place in the cluster:"),
    OVERLAP: N_("At the same time in the cluster:"),
}
SAME_DAY_HEADING = N_("Same day in the cluster:")
FRESH_WORDS = N_("Cluster calendar fetched %(age)s ago.")
STALE_WORDS = N_(
    "The cluster's aggregator cannot be reached; showing its calendar as it was %(age)s ago."
)
NEVER_WORDS = N_("The cluster's calendar has not been fetched yet, so clashes cannot be shown.")


def add_routes(app: web.Application) -> None:
    """Register the form's clash endpoint."""
    app.router.add_get("/admin/cluster/clashes", clashes_endpoint)


def has_cluster(request: web.Request) -> bool:
    """Tell whether the node names any aggregator (and so keeps a cluster copy)."""
    return bool(request.app[COPY].aggregators)


def clash_rows(request: web.Request, event: Event) -> list[dict[str, Any]]:
    """Return the clashes of `event` as rows for pages and JSON, worded for the request."""
    copy = request.app[COPY]
    config: NodeConfig = copy.config
    found = clashes(event, copy.events(), config.clash, config.clock.now())
    return worded(request, event, found)


def worded(request: web.Request, event: Event, found: list[Clash]) -> list[dict[str, Any]]:
    """Return clashes as rows in the request's language."""
    series = event.rrule is not None or bool(event.rdates)
    tz = request.app[CONFIG].timezone
    return [_row(request, clash, tz, series) for clash in found]


def copy_words(request: web.Request) -> dict[str, Any]:
    """Return how old the cluster copy is, in words, and whether it is stale."""
    copy = request.app[COPY]
    age = copy.age()
    if not copy.aggregators:
        return {"text": "", "stale": False, "age_seconds": None}
    if age is None:
        return {"text": gettext(request, NEVER_WORDS), "stale": True, "age_seconds": None}
    words = _age(age, request_lang(request))
    stale = copy.failing()
    text = gettext(request, STALE_WORDS if stale else FRESH_WORDS, age=words)
    return {"text": text, "stale": stale, "age_seconds": int(age.total_seconds())}


def clash_context(request: web.Request, event: Event | None) -> dict[str, Any]:
    """Return the template context of the clash box (rows and the copy's age)."""
    rows = clash_rows(request, event) if event is not None else []
    return {"clashes": rows, "cluster_copy": copy_words(request)}


async def clashes_endpoint(request: web.Request) -> web.Response:
    """GET /admin/cluster/clashes?date=…: the form's values -> clashes as JSON (no store)."""
    login_required(request)
    request.app[COPY].refresh_if_old()
    event = draft_event(request)
    rows: list[dict[str, Any]] = []
    if event is not None:
        # Off the event loop: a long daily series against a big cluster takes a while.
        copy = request.app[COPY]
        now = copy.config.clock.now()
        loop = asyncio.get_running_loop()
        found = await loop.run_in_executor(
            None, clashes, event, copy.events(), copy.config.clash, now
        )
        rows = worded(request, event, found)
    body = {"clashes": rows, "copy": copy_words(request)}
    return web.json_response(body, headers={"Cache-Control": "no-store"})


def draft_event(request: web.Request) -> Event | None:
    """Build the event the form describes, or None while it is incomplete."""
    config = request.app[CONFIG]
    form = {k: request.query.get(k, "")[:500] for k in FORM_KEYS}
    form["title"] = form["title"] or "-"
    moment = config.clock.now()
    given = request.query.get("id", "").strip().lower()[:36]
    stamp = Stamp(id=f"urn:uuid:{given}" if given else new_id(), organizer="", created=moment,
                  updated=moment)  # fmt: skip
    places = [*config.places, *request.app[STORE].places()]
    try:
        values = event_input(form, config.timezone)
        return build_event(values, stamp, default_tz=config.timezone, places=places)
    except (ValidationError, ValueError):
        return None


def _row(request: web.Request, clash: Clash, tz: str, series: bool) -> dict[str, Any]:
    other = clash.other
    lang = request_lang(request)
    heading = gettext(request, HEADINGS.get(clash.kind, SAME_DAY_HEADING))
    when = _times(other.start, other.end, other.all_day, tz, lang)
    if series or _day(other.start, tz) != _day(clash.date, tz):
        when = f"{i18n.date_long(_day(other.start, tz), lang)} {when}".strip()
    label = _category(other.category, lang)
    text = f"{other.village} — {other.title} {when}".strip() + (f" ({label})" if label else "")
    if other.status == "tentative":
        text += " · " + gettext(request, "Tentative")
    return {
        "heading": heading,
        "text": text,
        "village": other.village,
        "title": other.title,
        "when": when,
        "category": other.category,
        "kind": clash.kind,
        "hard": clash.hard,
        "same_category": clash.same_category,
        "tentative": other.status == "tentative",
        "id": other.id,
        "start": other.start.isoformat(),
    }


def _day(value: When, tz: str) -> Any:
    return value.astimezone(zone(tz)).date() if isinstance(value, datetime) else value


def _times(start: When, end: When, all_day: bool, tz: str, lang: str) -> str:
    if all_day or not isinstance(start, datetime) or not isinstance(end, datetime):
        return ""
    first = _clock(start.astimezone(zone(tz)), lang)
    if end <= start:
        return first
    return f"{first}–{_clock(end.astimezone(zone(tz)), lang)}"


def _clock(value: datetime, lang: str) -> str:
    if value.minute == 0:
        return str(value.hour)
    return f"{value.hour}{'.' if lang == 'da' else ':'}{value.minute:02d}"


def _category(term: str, lang: str) -> str:
    labels = CATEGORIES.get(term)
    if labels is None:
        return term
    return labels[1] if lang == "en" else labels[0]


def _age(age: timedelta, lang: str) -> str:
    code = i18n.normalise_lang(lang) or i18n.DEFAULT_LANG
    seconds = max(age.total_seconds(), 1)
    return format_timedelta(timedelta(seconds=seconds), locale=i18n.LOCALES[code], threshold=1.5)
