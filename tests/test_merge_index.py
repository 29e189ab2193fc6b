"""The merge kept one source at a time (MergeIndex, through MergedView) equals merging all
sources again, after any sequence of changes, removals, pauses and hidden entries."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from operator import itemgetter

from aggregator_support import NOW, event
from hypothesis import example, given, settings
from hypothesis import strategies as st

from aggregator.publish import outputs
from aggregator.publish.merged import MergedView
from aggregator.publish.paging import PAGE_SIZE, ChangeOrder, place_of
from aggregator.reader.merge import Content, Merged, apply_fetch, merge_visible
from aggregator.reader.merge_index import MergeIndex, Told, _Ordered
from klynge.ical.writer import start_order
from klynge.model import Event, FeedSource, Item, Tombstone
from klynge.recurrence import expand
from klynge.series import Change

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
            # The merged feed's first page merges the two as they run (aggregator.publish.paging)
            changes = sorted([*kept.items, *kept.tombstones], key=place_of, reverse=True)
            first = ChangeOrder.first(kept)
            assert [*first.items, *first.tombstones] == sorted(
                changes[:PAGE_SIZE], key=lambda c: isinstance(c, Tombstone)
            )
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


# An event of the window test: (kind, days from now, weeks it repeats).
SHAPE = st.tuples(st.sampled_from(["single", "allday", "weekly", "moved"]), st.integers(-200, 200),
                  st.integers(2, 12))  # fmt: skip


def _shaped(n: int, shape: tuple[str, int, int]) -> Event:
    kind, days, weeks = shape
    title = f"Arrangement {n}"
    if kind == "allday":
        first = (NOW + timedelta(days=days)).date()
        return event(title, start=first, end=first + timedelta(days=2), all_day=True)
    made = event(title, days=days)
    if kind == "single":
        return made
    rule = f"FREQ=WEEKLY;COUNT={weeks}"
    if kind == "weekly":
        return replace(made, rrule=rule)
    # The second date moved two months earlier: before the series starts, still one of its dates.
    second = made.start + timedelta(days=7)
    return replace(made, rrule=rule, changes=(Change(original=second, start=second - EARLIER),))


EARLIER = timedelta(days=60)  # how far the date moves


@settings(max_examples=60, deadline=None)
@example(shapes=[("moved", 100, 4)], window=(40, 20))  # only the moved date is in the window
@given(shapes=st.lists(SHAPE, min_size=1, max_size=12), window=st.tuples(st.integers(-250, 250),
       st.integers(0, 120)))  # fmt: skip
def test_the_window_of_a_page_has_every_occurrence_a_walk_over_all_events_finds(
    shapes: list[tuple[str, int, int]], window: tuple[int, int]
) -> None:
    events = [replace(_shaped(n, s), source=VILLAGES[0]) for n, s in enumerate(shapes)]
    view = MergedView()
    try:
        view.changed(URLS[0], Content(VILLAGES[0], {e.id: e for e in events}))
        merged = view.merged()
        lo = NOW + timedelta(days=window[0])
        hi = lo + timedelta(days=window[1])
        found = outputs.occurrences(merged, lo, hi)
        assert found == expand(merged.events, lo, hi, limit=outputs.SERIES_LIMIT)
        assert outputs.occurrences(Merged(merged.items), lo, hi) == found  # spans worked out
    finally:
        view.close()


def test_a_fetch_keeps_an_unchanged_entry_as_its_old_object() -> None:
    origin = VILLAGES[0]
    first, second = (replace(event(t), source=origin) for t in ("Loppemarked", "Fodbold"))
    old = apply_fetch(Content(), [first, second], [], origin=origin, now=NOW)
    again = replace(first, title=first.title)  # parsed anew: equal, another object
    edited = replace(second, title="Fodbold (aflyst)", updated=NOW)
    new = apply_fetch(old, [again, edited], [], origin=origin, now=NOW)
    assert again is not first and new.entries[first.id] is first  # its pieces are found again
    assert new.entries[second.id] is edited


@settings(max_examples=150, deadline=None)
@given(changes=st.lists(st.tuples(st.integers(0, 3), CONTENT), min_size=1, max_size=8))
def test_every_source_told_at_once_merges_as_told_one_by_one(
    changes: list[tuple[int, Drawn]],
) -> None:
    # A start tells the empty index every stored source at once: it orders them in one go.
    at_once, one_by_one = MergeIndex(), MergeIndex()
    positions: dict[str, int] = {}
    final: dict[str, Content] = {}
    for which, drawn in changes:
        url = URLS[which]
        told = Told(url, _content(which, drawn), positions.setdefault(url, len(positions)))
        final[url] = told.content  # type: ignore[assignment]
        at_once.tell(told)
        one_by_one.tell(told)
        one_by_one.merged()
    bulk, single = at_once.merged(), one_by_one.merged()
    whole = merge_visible(list(final.values()), frozenset())
    for merged in (single, whole):
        assert bulk.items == merged.items and bulk.tombstones == merged.tombstones
        assert [t.source for t in bulk.tombstones] == [t.source for t in merged.tombstones]
    assert bulk.starts == single.starts and bulk.spans == single.spans
    # After the start, changes move entries one by one again, on the order made in one go.
    which, drawn = changes[0]
    again = Told(URLS[which], _content(which, drawn), positions[URLS[which]])
    at_once.tell(again)
    one_by_one.tell(again)
    assert at_once.merged().items == one_by_one.merged().items


@given(st.lists(st.tuples(st.integers(0, 3), st.booleans()), max_size=30))
def test_an_order_made_in_one_go_equals_one_made_value_by_value(
    steps: list[tuple[int, bool]],
) -> None:
    # Equal keys on purpose: the later value goes first in both (bisect_left inserts).
    values = [(key, object()) for key, _ in steps]
    one_by_one, in_one_go = (_Ordered[tuple[int, object]](itemgetter(0)) for _ in range(2))
    in_one_go.begin_bulk()
    alive: list[tuple[int, object]] = []
    for (_, drop), value in zip(steps, values, strict=True):
        for order in (one_by_one, in_one_go):
            order.insert(value)
        alive.append(value)
        if drop and len(alive) > 1:
            gone = alive.pop(0)
            for order in (one_by_one, in_one_go):
                order.remove(gone)
    in_one_go.end_bulk()
    assert in_one_go.values == one_by_one.values
    assert [k for k, _ in one_by_one.values] == sorted(k for k, _ in alive)
    assert all(a is b for a, b in zip(in_one_go.values, one_by_one.values, strict=True))
