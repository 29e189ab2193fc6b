"""At 1,000 entries (20 villages x 50), after random edits of villages, every output made the
way `serve` makes it (the merge kept one source at a time, each entry's kept Atom, VEVENT
and JSON pieces) is byte-identical to the output made whole (every source merged again,
every entry rendered again, the JSON written by one json.dumps)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

import pytest
from aggregator_support import NOW, calendar_bytes, config_for, event, notice
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.config import AggregatorConfig
from aggregator.publish import documents, outputs
from aggregator.publish.merged import MergedView
from aggregator.publish.pieces import Pieces
from aggregator.reader.merge import Content, Merged, merge_visible
from klynge.model import FeedSource, Item
from klynge.recurrence import expand

VILLAGES = 20
ENTRIES = 50


def _source(n: int) -> FeedSource:
    return FeedSource(
        id=f"urn:klynge:v{n}", title=f"Landsby {n}", self_url=f"http://v{n}.example/f"
    )


def _entry(n: int, i: int) -> Item:
    title = f"Arrangement {i} i landsby {n}"
    if i % 5 == 4:
        return notice(f"Opslag {i} i landsby {n}", source=_source(n))
    rule = "FREQ=WEEKLY;COUNT=6" if i % 10 == 0 else None
    days = (n * 7 + i * 3) % 140 - 20
    return event(title, days=days, rrule=rule, category=("sport", "culture")[i % 2],
                 source=_source(n))  # fmt: skip


CLUSTER = [[_entry(n, i) for i in range(ENTRIES)] for n in range(VILLAGES)]

# An edit: (which village, what, which entry, how many days).
WHAT = st.sampled_from(["retitle", "move", "remove", "add"])
EDIT = st.tuples(st.integers(0, VILLAGES - 1), WHAT, st.integers(0, ENTRIES - 1),
                 st.integers(-30, 30))  # fmt: skip


def _edited(items: list[Item], village: int, what: str, which: int, days: int) -> list[Item]:
    if what == "add":
        return [*items, event(f"Nyt {days}", days=days, source=_source(village))]
    index = which % len(items)
    if what == "remove":
        return items[:index] + items[index + 1 :]
    old = items[index]
    if what == "retitle" or old.kind != "event":
        return [*items[:index], replace(old, title=f"{old.title} ({days})", updated=NOW),
                *items[index + 1 :]]  # fmt: skip
    start = old.start + timedelta(days=days)  # type: ignore[attr-defined]
    end = old.end + timedelta(days=days)  # type: ignore[attr-defined]
    return [*items[:index], replace(old, start=start, end=end, updated=NOW), *items[index + 1 :]]


def _content(n: int, items: list[Item]) -> Content:
    return Content(_source(n), {i.id: i for i in items}, {i.id: NOW for i in items})


def _kept_outputs(config: AggregatorConfig, merged: Merged, pieces: Pieces) -> list[bytes]:
    """The outputs as serve makes them: from the kept merge and the kept pieces."""
    pieces.keep_only(merged.items, merged.events)  # what the builder does on a new view
    lo, hi = NOW, NOW + timedelta(days=31)
    rows = pieces.rows.rows(outputs.occurrences(merged, lo, hi))
    return [
        documents.build_feed(config, merged, pieces),
        calendar_bytes(config, merged, "", "", NOW, pieces),
        calendar_bytes(config, merged, "", "sport", NOW, pieces),
        b"".join(outputs.events_chunks(lo, hi, rows)),
    ]


def _whole_outputs(config: AggregatorConfig, merged: Merged) -> list[bytes]:
    """The outputs made whole: every entry rendered, the JSON written in one go."""
    lo, hi = NOW, NOW + timedelta(days=31)
    found = expand(merged.events, lo, hi, limit=outputs.SERIES_LIMIT)
    body = {"from": lo.isoformat(), "to": hi.isoformat(),
            "events": [outputs.occurrence_json(o) for o in found]}  # fmt: skip
    return [
        documents.build_feed(config, merged),
        calendar_bytes(config, merged, "", "", NOW),
        calendar_bytes(config, merged, "", "sport", NOW),
        json.dumps(body, ensure_ascii=False).encode(),
    ]


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> AggregatorConfig:
    return config_for(tmp_path_factory.mktemp("agg"), [])


@settings(max_examples=4, deadline=None)
@given(edits=st.lists(EDIT, min_size=1, max_size=4))
def test_outputs_from_kept_pieces_equal_whole_outputs_after_random_edits(
    edits: list[tuple[int, str, int, int]], config: AggregatorConfig
) -> None:
    villages = [list(items) for items in CLUSTER]
    view = MergedView()
    pieces = Pieces(outputs.occurrence_row)
    try:
        for n, items in enumerate(villages):
            view.changed(_source(n).self_url, _content(n, items))
        assert _kept_outputs(config, view.merged(), pieces) == _whole_outputs(
            config, merge_visible(view.contents(), frozenset())
        )
        for village, what, which, days in edits:
            villages[village] = _edited(villages[village], village, what, which, days)
            rendered = pieces.rows.rendered
            view.changed(_source(village).self_url, _content(village, villages[village]))
            kept = _kept_outputs(config, view.merged(), pieces)
            assert pieces.rows.rendered - rendered <= ENTRIES * 6  # that village's rows only
            assert kept == _whole_outputs(config, merge_visible(view.contents(), frozenset()))
    finally:
        view.close()
