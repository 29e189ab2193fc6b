"""The merge of every source's content, kept up to date one source at a time.

`merge_entries` merges all sources: at 50,000 entries that costs a few hundred milliseconds
(most of it sorting), on every change of any source. `MergeIndex` keeps, per entry key
(origin, id), the copies and tombstones each source holds, so a changed source costs its own
entries: each key it touches is settled again by the rules of `merge_entries`, and the key's
place in the newest-edit-first order is moved by bisection. The result equals
`merge_entries` of the same contents in the same order (tests/test_merge_index.py compares
them after random edits); an unchanged entry stays the same object, so its rendered pieces
are found again (aggregator.publish.pieces).

One lock guards the index: changes may be told from the event loop while a worker thread
applies earlier ones, and they are applied in the order told.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from aggregator.reader.merge import (
    Content,
    Merged,
    Span,
    _buried,
    _with_id,
    origin_of,
    origin_of_content,
    shared_id,
    span_of,
)
from klynge.ical.writer import start_order
from klynge.model import Event, Item, Tombstone

Key = tuple[str, str]  # (origin, entry id), as merge_entries keys entries
_V = TypeVar("_V")


@dataclass(frozen=True)
class Told:
    """One source's new content (None: it gives nothing now), at its place in the order."""

    url: str
    content: Content | None
    position: int  # the merge order is the order sources were first told (merged.py)


# Each source's (url, value) for one key: almost always one pair, and no tombstone. As a dict
# each, an entry's one copy held 184 bytes and its no tombstones 64 (7 MB at 50,000 entries).
Held = tuple[tuple[str, _V], ...]


def _put(held: Held[_V], url: str, value: _V) -> Held[_V]:
    return (*(pair for pair in held if pair[0] != url), (url, value))


def _drop(held: Held[_V], url: str) -> Held[_V]:
    return tuple(pair for pair in held if pair[0] != url)


# A relayed tombstone at its place: (deleted, id, -the first source's position). The place
# depends on the sources, not on the tombstone alone, so it is kept with it.
_Placed = tuple[tuple[datetime, str, int], Tombstone]


@dataclass(slots=True)  # one per entry key: 2.4 MB less at 50,000 than with a __dict__ each
class _Slot:
    """What the index knows of one key: each source's copy and tombstone, and the outcome."""

    copies: Held[Item] = ()
    tombs: Held[Tombstone] = ()
    chosen: Item | None = None  # the winning copy, if it is alive
    published: Item | None = None  # the chosen copy as published (under a shared id)
    twin_of: Item | None = None  # the copy a published twin was made of
    relayed: Tombstone | None = None  # the tombstone relayed for this key, if any
    tomb_place: _Placed | None = None  # the relayed tombstone at its place in their order


def _edit_order(item: Item) -> tuple[datetime, str]:
    return item.updated, item.id


def _place(placed: _Placed) -> tuple[datetime, str, int]:
    return placed[0]


class MergeIndex:
    """The merged entries of all sources, updated by the changes of one source at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[Told] = []
        self._contents: dict[str, Content] = {}
        self._positions: dict[str, int] = {}
        self._direct: dict[str, str] = {}  # url -> the origin key of its own entries
        self._slots: dict[Key, _Slot] = {}
        # The keys alive under each entry id: almost always one, kept as itself; an id alive
        # under several origins has a tuple of them (a set each held 12.7 MB at 50,000
        # entries and a tuple of one each 2.4 MB, tracemalloc).
        self._alive_one: dict[str, Key] = {}
        self._alive_many: dict[str, tuple[Key, ...]] = {}
        self._items: _Ordered[Item] = _Ordered(_edit_order)  # reversed: newest first
        self._starts: _Ordered[Event] = _Ordered(start_order)
        self._spans: dict[int, Span] = {}  # id() of each event in _starts -> its span
        self._tombs: _Ordered[_Placed] = _Ordered(_place)
        self._merged: Merged | None = Merged(starts=())

    def tell(self, told: Told) -> None:
        """Queue a source's change; the next `merged` applies it (any thread may tell)."""
        with self._lock:
            self._queue.append(told)

    def merged(self) -> Merged:
        """Apply the changes told so far and return the merged entries."""
        with self._lock:
            queue, self._queue = self._queue, []
            # Into an empty index (a start: every stored source at once) the entries are
            # ordered once at the end, not moved into place one by one.
            orders = (self._items, self._starts, self._tombs) if not self._slots else ()
            for order in orders:
                order.begin_bulk()
            try:
                for told in queue:
                    self._apply(told)
            finally:
                for order in orders:
                    order.end_bulk()
            if self._merged is None:
                items = tuple(reversed(self._items.values))
                tombs = tuple(tomb for _, tomb in reversed(self._tombs.values))
                starts = tuple(self._starts.values)
                spans = tuple(self._spans[id(e)] for e in starts)
                self._merged = Merged(items, tombs, starts, spans)
            return self._merged

    def _apply(self, told: Told) -> None:
        touched: set[Key] = set()
        old = self._contents.pop(told.url, None)
        if old is not None:
            touched |= self._withdraw(told.url, old)
        if told.content is not None:
            self._contents[told.url] = told.content
            self._positions[told.url] = told.position
            self._direct[told.url] = origin_of_content(told.content)
            touched |= self._add(told.url, told.content)
        if touched:
            self._merged = None
            self._settle(touched)

    def _withdraw(self, url: str, content: Content) -> set[Key]:
        touched = set()
        for entry_id, item in content.entries.items():
            key = (origin_of(item), entry_id)
            slot = self._slots[key]
            slot.copies = _drop(slot.copies, url)
            touched.add(key)
        for tomb in content.tombstones.values():
            key = (origin_of(tomb), tomb.id)
            slot = self._slots[key]
            slot.tombs = _drop(slot.tombs, url)
            touched.add(key)
        return touched

    def _add(self, url: str, content: Content) -> set[Key]:
        touched = set()
        for entry_id, item in content.entries.items():
            key = (origin_of(item), entry_id)
            slot = self._slot(key)
            slot.copies = _put(slot.copies, url, item)
            touched.add(key)
        for tomb in content.tombstones.values():
            key = (origin_of(tomb), tomb.id)
            slot = self._slot(key)
            slot.tombs = _put(slot.tombs, url, tomb)
            touched.add(key)
        return touched

    def _slot(self, key: Key) -> _Slot:
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot()
        return slot

    def _settle(self, touched: set[Key]) -> None:
        by_id: dict[str, set[Key]] = {}
        for key in touched:
            self._choose(key, self._slots[key])
            by_id.setdefault(key[1], set()).add(key)
        for entry_id, keys in by_id.items():  # whether an id is shared decides its copies' ids
            for key in {*self._alive(entry_id), *keys}:
                self._publish(key, self._slots[key])
        for key in touched:
            slot = self._slots[key]
            if not slot.copies and not slot.tombs:
                del self._slots[key]

    def _choose(self, key: Key, slot: _Slot) -> None:
        """Pick the key's copy and tombstone as merge_entries does; relay a dead key's tomb."""
        tomb = _first_best(slot.tombs, self._positions, lambda t, _url: t.deleted)
        # Newest edit, then highest sequence; on a tie the origin's own feed beats a relay.
        best = _first_best(
            slot.copies,
            self._positions,
            lambda i, url: (i.updated, i.sequence, key[0] == self._direct[url]),
        )
        chosen = best if best is not None and not _buried(best, tomb) else None
        if chosen is not slot.chosen:
            self._set_alive(key, slot, chosen)
        self._relay(key, slot, None if chosen is not None else tomb)

    def _alive(self, entry_id: str) -> tuple[Key, ...]:
        one = self._alive_one.get(entry_id)
        return (one,) if one is not None else self._alive_many.get(entry_id, ())

    def _set_alive(self, key: Key, slot: _Slot, chosen: Item | None) -> None:
        entry_id = key[1]
        alive = self._alive(entry_id)
        if chosen is None:
            alive = tuple(k for k in alive if k != key)
        elif key not in alive:
            alive = (*alive, key)
        self._alive_one.pop(entry_id, None)
        self._alive_many.pop(entry_id, None)
        if len(alive) == 1:
            self._alive_one[entry_id] = alive[0]
        elif alive:
            self._alive_many[entry_id] = alive
        slot.chosen = chosen

    def _publish(self, key: Key, slot: _Slot) -> None:
        """Publish the chosen copy under its own id, or a derived one when the id is shared."""
        chosen = slot.chosen
        published: Item | None = None
        if chosen is not None:
            shared = key[1] in self._alive_many
            published = chosen if not shared else self._twin(key, slot, chosen)
        if published is slot.published:
            return
        old = slot.published
        if old is not None:
            self._items.remove(old)
        if isinstance(old, Event):
            self._starts.remove(old)
            del self._spans[id(old)]
        slot.published = published
        if published is not None:
            self._items.insert(published)
        if isinstance(published, Event):
            self._starts.insert(published)
            self._spans[id(published)] = span_of(published)

    def _twin(self, key: Key, slot: _Slot, chosen: Item) -> Item:
        old = slot.published
        if slot.twin_of is chosen and old is not None and old is not chosen:
            return old  # the same twin as before: its pieces are kept
        slot.twin_of = chosen
        return _with_id(chosen, shared_id(key[0], chosen.id))

    def _relay(self, key: Key, slot: _Slot, tomb: Tombstone | None) -> None:
        place = None
        if tomb is not None:
            first = min(self._positions[url] for url, _ in slot.tombs)
            place = (tomb.deleted, tomb.id, -first)  # ties: the first source's key first
        was = slot.tomb_place[0] if slot.tomb_place is not None else None
        if tomb is slot.relayed and place == was:
            return
        if slot.tomb_place is not None:
            self._tombs.remove(slot.tomb_place)
        slot.relayed, slot.tomb_place = tomb, None
        if tomb is not None and place is not None:
            slot.tomb_place = (place, tomb)
            self._tombs.insert(slot.tomb_place)


def _first_best(
    values: Held[_V], positions: dict[str, int], rank: Callable[[_V, str], Any]
) -> _V | None:
    """Return the value of highest rank; on a tie, the one of the source told first."""
    best: _V | None = None
    best_rank: Any = None
    best_place = 0
    for url, value in values:
        mine = rank(value, url)
        place = positions[url]
        if best is None or mine > best_rank or (mine == best_rank and place < best_place):
            best, best_rank, best_place = value, mine, place
    return best


class _Ordered(Generic[_V]):
    """Values in ascending order of `key(value)`, an equal key before the older ones.

    The keys are worked out where a bisection looks, not kept: kept, the items' (updated, id)
    and the events' (UTC start, id) were 7 MB at 50,000 entries (tracemalloc).
    Between `begin_bulk` and `end_bulk` values are gathered unordered and sorted once: the
    same order as inserting them one by one, in O(n log n) instead of a list insert each.
    """

    def __init__(self, key: Callable[[_V], Any]) -> None:
        self.key = key  # of a value that does not change while it is in the order
        self.values: list[_V] = []
        self._bulk: dict[int, _V] | None = None  # id(value) -> value

    def insert(self, value: _V) -> None:
        if self._bulk is not None:
            self._bulk[id(value)] = value
            return
        self.values.insert(bisect_left(self.values, self.key(value), key=self.key), value)

    def remove(self, value: _V) -> None:
        if self._bulk is not None:
            del self._bulk[id(value)]
            return
        # While a change is settled two values may share a key for a moment (an id published
        # plainly by one origin before another's copy of it has left): remove this very value.
        index = bisect_left(self.values, self.key(value), key=self.key)
        while self.values[index] is not value:
            index += 1
        del self.values[index]

    def begin_bulk(self) -> None:
        assert not self.values, "a bulk insert starts from nothing"
        self._bulk = {}

    def end_bulk(self) -> None:
        gathered = list(self._bulk.values()) if self._bulk is not None else []
        self._bulk = None
        # Stable: equal keys keep the gathered order, reversed, as one-by-one inserts leave them.
        gathered.reverse()
        gathered.sort(key=self.key)
        self.values = gathered
