"""The merge kept one source at a time (MergeIndex, through MergedView) equals merging all
sources again, after any sequence of changes, removals, pauses and hidden entries."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from aggregator_support import NOW, event
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.publish.merged import MergedView
from aggregator.reader.merge import Content, merge_visible
from klynge.ical.writer import start_order
from klynge.model import FeedSource, Item, Tombstone

VILLAGES = [
    FeedSource(id=f"urn:klynge:v{n}", title=f"Landsby {n}", self_url=f"http://v{n}.example/f")
    for n in range(3)
]
RELAY = FeedSource(id="urn:klynge:agg", title="Klynge", self_url="http://agg.example/f")
URLS = [v.self_url for v in VILLAGES] + [RELAY.self_url]
IDS = [f"urn:uuid:00000000-0000-4000-8000-{n:012d}" for n in range(5)]  # shared on purpose
BASE = event("Fællesspisning")

Drawn = tuple[list[tuple[int, int, int, int]], list[tuple[int, int, int]]]

# One entry of a source: (id, origin village, hours before now it was edited, sequence).
ENTRY = st.tuples(st.integers(0, 4), st.integers(0, 2), st.integers(0, 3), st.integers(0, 1))
TOMB = st.tuples(st.integers(0, 4), st.integers(0, 2), st.integers(0, 4))
CONTENT = st.tuples(st.lists(ENTRY, max_size=5), st.lists(TOMB, max_size=3))
STEP = st.one_of(
    st.tuples(st.just("change"), st.integers(0, 3), CONTENT),
    st.tuples(st.just("remove"), st.integers(0, 3), st.none()),
    st.tuples(st.just("pause"), st.integers(0, 3), st.none()),
    st.tuples(st.just("hide"), st.integers(0, 4), st.none()),
)


def _item(entry: tuple[int, int, int, int], url_index: int) -> Item:
    id_index, village, hours, sequence = entry
    origin = VILLAGES[village] if url_index == 3 else VILLAGES[url_index]  # only the relay relays
    title = f"{BASE.title} {id_index}-{village}-{hours}-{sequence}-{url_index}"
    updated = NOW - timedelta(hours=hours)
    return replace(BASE, id=IDS[id_index], title=title, updated=updated, sequence=sequence,
                   source=origin)  # fmt: skip


def _content(url_index: int, drawn: Drawn) -> Content:
    entries, tombs = drawn
    origin = RELAY if url_index == 3 else VILLAGES[url_index]
    items = {i.id: i for i in (_item(e, url_index) for e in entries)}
    dead = {}
    for id_index, village, hours in tombs:
        source = VILLAGES[village] if url_index == 3 else origin
        dead[IDS[id_index]] = Tombstone(IDS[id_index], NOW - timedelta(hours=hours), source)
    return Content(origin, items, {i: NOW for i in items}, dead)


@settings(max_examples=150, deadline=None)
@given(steps=st.lists(STEP, min_size=1, max_size=25))
def test_the_kept_merge_equals_merging_everything_again(
    steps: list[tuple[str, int, object]],
) -> None:
    view = MergedView()
    hidden: set[str] = set()
    paused: set[str] = set()
    try:
        for what, which, drawn in steps:
            url = URLS[which % len(URLS)]
            if what == "change":
                view.changed(url, _content(which, drawn))  # type: ignore[arg-type]
            elif what == "remove":
                view.removed(url)
            elif what == "pause":
                paused ^= {url}
            else:
                hidden ^= {IDS[which]}
            view.moderate(frozenset(hidden), frozenset(paused))
            kept = view.merged()
            whole = merge_visible(view.contents(), frozenset(hidden))
            assert kept.items == whole.items
            assert [(i.id, i.title) for i in kept.items] == [(i.id, i.title) for i in whole.items]
            assert kept.tombstones == whole.tombstones
            assert kept.starts is not None  # kept in start order by the index, not sorted
            assert kept.events_by_start == tuple(sorted(whole.events, key=start_order))
            assert [t.source for t in kept.tombstones] == [t.source for t in whole.tombstones]
    finally:
        view.close()


def test_an_unchanged_source_keeps_its_entries_as_the_same_objects() -> None:
    view = MergedView()
    try:
        view.changed(URLS[0], _content(0, ([(0, 0, 1, 0), (1, 0, 2, 0)], [])))
        view.changed(URLS[1], _content(1, ([(2, 0, 1, 0)], [])))
        first = {i.id: i for i in view.merged().items}
        view.changed(URLS[1], _content(1, ([(3, 0, 1, 0)], [])))
        second = {i.id: i for i in view.merged().items}
        assert second[IDS[0]] is first[IDS[0]] and second[IDS[1]] is first[IDS[1]]
        assert IDS[2] not in second and IDS[3] in second
    finally:
        view.close()
