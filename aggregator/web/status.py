"""Source health for /status and /api/sources, with problems named in words."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aggregator.config import AggregatorConfig, Source
from aggregator.reader.refresh import Refresher
from aggregator.reader.state import SourceState
from klynge.i18n import N_
from klynge.model import format_when

# The health words, translated on /status.
HEALTH_WORDS = (N_("new"), N_("ok"), N_("failing"), N_("stale"))


def _iso(value: datetime | None) -> str | None:
    return format_when(value) if value else None


def summary(state: SourceState, now: datetime, config: AggregatorConfig) -> str:
    """Return one sentence on a source's health, naming the problem if there is one."""
    health = state.health(now, config.limits.stale_after)
    count = len(state.content.entries)
    if health == "new":
        return "Not fetched yet."
    if health == "ok":
        notes = " ".join(n for n in (state.content.flag, state.limited) if n)
        return f"OK: {count} entries. {notes}" if notes else f"OK: {count} entries."
    since = (
        "never fetched successfully"
        if state.last_success is None
        else (f"last success {_ago(now - state.last_success)} ago")
    )
    kept = f"; keeping its last {count} good entries" if count else ""
    stale = "Stale" if health == "stale" else "Failing"
    return f"{stale}: {state.last_error} ({state.failures} failures in a row, {since}{kept})."


def _ago(delta: Any) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def source_row(
    source: Source, state: SourceState, config: AggregatorConfig, now: datetime
) -> dict[str, Any]:
    """Return one source's health as a JSON-ready dict."""
    content = state.content
    origin = content.origin
    return {
        "url": source.url,
        "name": source.name or (origin.title if origin else "") or source.url,
        "kind": source.kind,
        "health": state.health(now, config.limits.stale_after),
        "summary": summary(state, now, config),
        "last_success": _iso(state.last_success),
        "last_attempt": _iso(state.last_attempt),
        "last_error": state.last_error,
        "failures": state.failures,
        "next_check": _iso(state.next_check),
        "entries": len(content.entries),
        "upcoming": content.upcoming(now),
        "tombstones": len(content.tombstones),
        "held_back": len(content.held),
        "flag": content.flag,
        "limited": state.limited,
        "problems": list(state.problems[:20]),
    }


def source_rows(config: AggregatorConfig, refresher: Refresher) -> list[dict[str, Any]]:
    """Return every configured source's health, in configuration order."""
    now = config.clock.now()
    return [source_row(s, refresher.state(s), config, now) for s in config.sources]
