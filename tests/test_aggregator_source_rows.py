"""Each source's health row is kept while what it shows holds (aggregator.web.status.SourceRows).

/api/sources, /status and the OPML ask for every row on the event loop; at 1,000 sources making
them all took 27 ms a request. The kept rows and their JSON must be exactly what making them
afresh gives: after a change of one source (only that row is made again), and as the clock
moves on (the upcoming count, the health and a failing source's "last success ... ago").
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aggregator_support import NOW, config_for, event, harness, notice

from aggregator.config import AggregatorConfig, Source
from aggregator.reader.merge import Content
from aggregator.reader.refresh import Refresher
from aggregator.web.status import SourceRows, source_row
from klynge.clock import Clock
from klynge.http.problems import CONNECT
from klynge.messages import Message
from klynge.model import FeedSource

SOURCES = (
    Source("http://a.example/feed.atom", "Østerby"),
    Source("http://b.example/feed.atom", "Vesterby"),
    Source("http://c.example/feed.atom"),  # never fetched
)


def _content(title: str) -> Content:
    origin = FeedSource(id=f"urn:{title}", title=title)
    items = [event("Snart", days=0, source=origin), event("Senere", days=9, source=origin)]
    items.append(notice(source=origin))
    return Content(
        origin=origin,
        entries={item.id: item for item in items},
        first_seen={item.id: NOW for item in items},
    ).warm()


def _fresh(config: AggregatorConfig, refresher: Refresher) -> list[dict[str, Any]]:
    now = config.clock.now()
    return [
        source_row(s, refresher.state(s), config, now, paused=s.url in refresher.paused)
        for s in refresher.config.sources
    ]


def _same(rows: SourceRows, config: AggregatorConfig, refresher: Refresher) -> list[Any]:
    """Assert the kept rows and JSON are the fresh ones; return the rows."""
    fresh = _fresh(config, refresher)
    kept = rows.rows(config, refresher)
    assert kept == fresh
    assert (
        rows.json(config, refresher) == json.dumps({"sources": fresh}, ensure_ascii=False).encode()
    )
    return kept


@pytest.fixture
async def sources(tmp_path: Path) -> AsyncIterator[tuple[AggregatorConfig, Refresher]]:
    """A loaded Refresher of SOURCES: two fetched five minutes ago, one never."""
    config = config_for(tmp_path, SOURCES)
    h = await harness(config)
    for source, title in zip(SOURCES[:2], ("Østerby", "Vesterby"), strict=True):
        state = h.refresher.states[source.url]
        state.content = _content(title)
        state.last_success = state.last_attempt = NOW - timedelta(minutes=5)
    yield config, h.refresher
    await h.close()


async def test_kept_rows_and_their_json_are_what_making_them_gives(
    sources: tuple[AggregatorConfig, Refresher],
) -> None:
    config, refresher = sources
    rows = SourceRows()
    first = _same(rows, config, refresher)
    assert [r["health"] for r in first] == ["ok", "ok", "new"]
    again = _same(rows, config, refresher)
    assert all(a is b for a, b in zip(first, again, strict=True))  # kept, not made again


async def test_a_change_of_one_source_makes_its_row_again_only(
    sources: tuple[AggregatorConfig, Refresher],
) -> None:
    config, refresher = sources
    rows = SourceRows()
    first = _same(rows, config, refresher)
    state = refresher.states[SOURCES[0].url]
    state.failed(Message(CONNECT), NOW, refresher.polling)
    refresher.states[SOURCES[1].url].content = _content("Vesterby nu")
    refresher.paused = frozenset({SOURCES[2].url})
    after = _same(rows, config, refresher)
    assert after[0]["health"] == "failing" and after[0] is not first[0]
    assert after[1]["name"] == "Vesterby" and after[1] is not first[1]  # a new content
    assert after[2]["paused"] and after[2] is not first[2]
    state = refresher.states[SOURCES[1].url]
    state.content = replace(state.content)  # another object, equal: kept
    assert _same(rows, config, refresher)[1] is after[1]


async def test_the_rows_follow_the_clock(
    sources: tuple[AggregatorConfig, Refresher],
) -> None:
    config, refresher = sources
    rows = SourceRows()
    refresher.states[SOURCES[0].url].failed(Message(CONNECT), NOW, refresher.polling)
    before = _same(rows, config, refresher)
    a_minute = _same(rows, replace(config, clock=Clock(timedelta(minutes=1))), refresher)
    assert a_minute[0]["summary"] != before[0]["summary"]  # its last success, longer ago
    assert a_minute[1] is before[1]  # nothing it shows has changed
    later = replace(config, clock=Clock(timedelta(hours=2)))
    assert _same(rows, later, refresher)[1]["upcoming"] == before[1]["upcoming"] - 1
    stale = replace(config, clock=Clock(config.limits.stale_after + timedelta(hours=1)))
    assert _same(rows, stale, refresher)[0]["health"] == "stale"
