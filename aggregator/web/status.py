"""Source health for /status and /api/sources: a summary and the problems, as messages."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from aggregator.config import AggregatorConfig, Source
from aggregator.reader.refresh import Refresher
from aggregator.reader.state import SourceState
from klynge.i18n import N_
from klynge.messages import Message, Param, define, text
from klynge.model import format_when

EXAMPLES = 5  # problems shown of each kind; the rest of that kind are counted
KINDS = 40  # kinds of problem shown; the problems of further kinds are counted
MORE_OF_KIND = define("status.more_of_kind", "… and %(n)s more like this: %(what)s")
MORE_KINDS = define(
    "status.more_kinds",
    "… and %(n)s problem of other kinds.",
    "… and %(n)s problems of other kinds.",
    count="n",
)

# The health words, translated on /status.
HEALTH_WORDS = (N_("new"), N_("ok"), N_("failing"), N_("stale"))

# The summary of a source's health (Danish in aggregator/locale).
NOT_FETCHED = define("status.not_fetched", "Not fetched yet.")
OK = define("status.ok", "OK: %(n)s entry.", "OK: %(n)s entries.", count="n")
OK_NOTE = define("status.ok_note", "OK: %(n)s entry. %(note)s", "OK: %(n)s entries. %(note)s", "n")
TWO_NOTES = define("status.two_notes", "%(first)s %(second)s")
FAILING = define(
    "status.failing",
    "Failing: %(error)s (%(n)s failure in a row, %(since)s%(kept)s).",
    "Failing: %(error)s (%(n)s failures in a row, %(since)s%(kept)s).",
    count="n",
)
STALE = define(
    "status.stale",
    "Stale: %(error)s (%(n)s failure in a row, %(since)s%(kept)s).",
    "Stale: %(error)s (%(n)s failures in a row, %(since)s%(kept)s).",
    count="n",
)
NEVER_FETCHED = define("status.never_fetched", "never fetched successfully")
LAST_SUCCESS = define("status.last_success", "last success %(ago)s ago")
KEPT = define(
    "status.kept",
    "; keeping its last %(count)s good entry",
    "; keeping its last %(count)s good entries",
    count="count",
)
# English abbreviates; Danish counts ("1 time", "25 timer").
SECONDS = define("status.seconds", "%(n)s s", "%(n)s s", count="n")
MINUTES = define("status.minutes", "%(n)s min", "%(n)s min", count="n")
HOURS = define("status.hours", "%(n)s h", "%(n)s h", count="n")


def _iso(value: datetime | None) -> str | None:
    return format_when(value) if value else None


def summary(state: SourceState, now: datetime, config: AggregatorConfig) -> Message:
    """Return one sentence on a source's health, naming the problem if there is one."""
    health = state.health(now, config.limits.stale_after)
    count = len(state.content.entries)
    if health == "new":
        return Message(NOT_FETCHED)
    if health == "ok":
        notes = [n for n in (state.content.flag, state.limited) if n is not None]
        if not notes:
            return Message(OK, {"n": count})
        note = notes[0]
        if len(notes) == 2:
            note = Message(TWO_NOTES, {"first": notes[0], "second": notes[1]})
        return Message(OK_NOTE, {"n": count, "note": note})
    since = (
        Message(NEVER_FETCHED)
        if state.last_success is None
        else Message(LAST_SUCCESS, {"ago": _ago(now - state.last_success)})
    )
    kept: Message | str = Message(KEPT, {"count": count}) if count else ""
    error = state.last_error or text("")
    params: dict[str, Param] = {"error": error, "n": state.failures, "since": since, "kept": kept}
    return Message(STALE if health == "stale" else FAILING, params)


def _ago(delta: timedelta) -> Message:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return Message(SECONDS, {"n": seconds})
    if seconds < 7200:
        return Message(MINUTES, {"n": seconds // 60})
    return Message(HOURS, {"n": seconds // 3600})


def messages(state: SourceState, now: datetime, config: AggregatorConfig) -> dict[str, Any]:
    """Return a source's summary, last error, hold-back flag, limit and problems as messages."""
    return {
        "summary": summary(state, now, config),
        "last_error": state.last_error,
        "flag": state.content.flag,
        "limited": state.limited,
        "problems": grouped(state.problems),
    }


def kind_of(problem: Message) -> str:
    """Return what a problem is at bottom: the code of its innermost cause."""
    while problem.cause is not None:
        problem = problem.cause
    return problem.code


def grouped(problems: Sequence[Message]) -> list[Message]:
    """Return every problem of a fetch, bounded: the first of each kind, then a count of the rest.

    A calendar of 2,000 events can have thousands of problems of a few kinds (no UID, no
    start): each kind is shown with its first EXAMPLES examples and how many more there are,
    so every problem is accounted for on /status within at most KINDS * (EXAMPLES + 1) lines.
    """
    kinds: dict[str, list[Message]] = {}
    for problem in problems:
        kinds.setdefault(kind_of(problem), []).append(problem)
    shown: list[Message] = []
    for index, same in enumerate(kinds.values()):
        if index == KINDS:
            rest = sum(len(v) for v in list(kinds.values())[KINDS:])
            shown.append(Message(MORE_KINDS, {"n": rest}))
            break
        shown.extend(same[:EXAMPLES])
        if len(same) > EXAMPLES:
            innermost = same[0]
            while innermost.cause is not None:
                innermost = innermost.cause
            shown.append(Message(MORE_OF_KIND, {"n": len(same) - EXAMPLES, "what": innermost}))
    return shown


def _english(value: Message | list[Message] | None) -> str | list[str]:
    if isinstance(value, list):
        return [m.english() for m in value]
    return value.english() if value is not None else ""


def _json(value: Message | list[Message] | None) -> Any:
    if isinstance(value, list):
        return [m.to_json() for m in value]
    return value.to_json() if value is not None else None


def source_row(
    source: Source,
    state: SourceState,
    config: AggregatorConfig,
    now: datetime,
    *,
    paused: bool = False,
) -> dict[str, Any]:
    """Return one source's health as a JSON-ready dict: English words, and codes under messages."""
    content = state.content
    origin = content.origin
    said = messages(state, now, config)
    return {
        "url": source.url,
        "name": source.name or (origin.title if origin else "") or source.url,
        "kind": source.kind,
        "health": state.health(now, config.limits.stale_after),
        "summary": _english(said["summary"]),
        "last_success": _iso(state.last_success),
        "last_attempt": _iso(state.last_attempt),
        "last_error": _english(said["last_error"]),
        "failures": state.failures,
        "next_check": _iso(state.next_check),
        "entries": len(content.entries),
        "upcoming": content.upcoming(now),
        "tombstones": len(content.tombstones),
        "held_back": len(content.held),
        "flag": _english(said["flag"]),
        "limited": _english(said["limited"]),
        "problems": _english(said["problems"]),
        "paused": paused,
        "problems_total": len(state.problems),
        "messages": {key: _json(value) for key, value in said.items()},
    }


class SourceRows:
    """Every configured source's row, each made again only when what it shows has changed.

    /api/sources, /status and the OPML ask on the event loop, and a host's page or script may
    poll: at 1,000 sources making every row took 27 ms a request and its JSON 7.5 ms more. A row
    is a function of the source, its state and the health and counts `now` gives (`_inputs`),
    so a row whose inputs are equal is the row kept, with its JSON.
    """

    def __init__(self) -> None:
        self._kept: dict[str, tuple[tuple[Any, ...], dict[str, Any], bytes]] = {}

    def rows(self, config: AggregatorConfig, refresher: Refresher) -> list[dict[str, Any]]:
        """Return every configured source's health, in configuration order (as it is now).

        The rows are shared with later calls: read them, do not change them.
        """
        return [row for _, row, _ in self._each(config, refresher)]

    def json(self, config: AggregatorConfig, refresher: Refresher) -> bytes:
        """Return {"sources": rows} as JSON (what json.dumps gives, joined from kept rows)."""
        return b'{"sources": [' + b", ".join(j for _, _, j in self._each(config, refresher)) + b"]}"

    def _each(
        self, config: AggregatorConfig, refresher: Refresher
    ) -> list[tuple[tuple[Any, ...], dict[str, Any], bytes]]:
        now = config.clock.now()
        kept: dict[str, tuple[tuple[Any, ...], dict[str, Any], bytes]] = {}
        for source in refresher.config.sources:
            state, paused = refresher.state(source), source.url in refresher.paused
            inputs = _inputs(source, state, config, now, paused)
            old = self._kept.get(source.url)
            if old is None or old[0] != inputs:
                row = source_row(source, state, config, now, paused=paused)
                old = (inputs, row, json.dumps(row, ensure_ascii=False).encode())
            kept[source.url] = old
        self._kept = kept  # removed sources' rows go
        return list(kept.values())


def _inputs(
    source: Source, state: SourceState, config: AggregatorConfig, now: datetime, paused: bool
) -> tuple[Any, ...]:
    """Return what `source_row` reads: equal inputs, equal rows.

    The content is compared by value (frozen, and equal when a fetch changed nothing); `now`
    counts through the health, the upcoming entries and, for a failing source, the seconds
    since its last success.
    """
    health = state.health(now, config.limits.stale_after)
    since = state.last_success
    ago = None if health in ("new", "ok") or since is None else int((now - since).total_seconds())
    return (
        source,
        paused,
        state.content,
        state.last_success,
        state.last_attempt,
        state.failures,
        state.next_check,
        state.last_error,
        state.limited,
        state.problems,
        health,
        state.content.upcoming(now),
        ago,
    )
