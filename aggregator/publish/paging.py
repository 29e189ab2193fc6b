"""The merged feed as RFC 5005 §3 pages: the newest changes first, the rest behind `next` links.

A region reads a cluster's merged feed as a source. Whole, it grew with the cluster (1.2 MB at
1,000 entries, 58 MB at 50,000), and the region read all of it after every change
(bench/latency_bench.py: 7.55 s p95 from a village to the region, most of it reading the
cluster's 1.1 MB feed at about 1 ms an entry). So `/feed.atom` is the first page: the
PAGE_SIZE newest changes, entries and tombstones alike, newest first (an entry's change is its
`updated`, a tombstone's its `when`). `next` leads to the older changes, one page at a time,
after a cursor: the key of the last change on the page before. A cursor, not a page number,
so that a change during a walk (which moves one entry to the front or turns it into a
tombstone at the front) never shifts an unread change onto a page already read.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice
from urllib.parse import quote

from aggregator.reader.merge import Merged
from klynge.errors import BadRequest
from klynge.model import Item, Tombstone

# Changes per page. A page of 100 merged entries is about 120 KB and a region reads it in about
# 0.1 s (1 ms an entry, design.md), which a burst of edits never fills; a first walk over
# 50,000 entries is 500 pages.
PAGE_SIZE = 100
CURSOR_MAX = 600  # characters: a time and an atom:id (at most 500, klynge.model)

# A change's place in the order: (microseconds, atom:id), newest first, then the greater id
# (the merged view's own order, aggregator.reader.merge.merge_entries).
Place = tuple[int, str]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class Page:
    """One page of the merged feed: its tombstones, its entries and the cursor of the next."""

    tombstones: tuple[Tombstone, ...]
    items: tuple[Item, ...]
    next_cursor: str  # "" on the last page


class ChangeOrder:
    """The merged view's changes in page order, found once per view (the builder's thread)."""

    def __init__(self) -> None:
        self._view: Merged | None = None
        self._changes: list[Item | Tombstone] = []  # oldest first, for bisection

    def page(self, merged: Merged, cursor: str = "") -> Page:
        """Return the page after `cursor` ("" for the first page); raise BadRequest if bad."""
        if not cursor:
            return self.first(merged)
        self._order(merged)
        # The changes older than the cursor end at `end`; the page is the newest of them. A
        # change's place is worked out where the bisection looks: kept, one per change was
        # 4.4 MB at 50,000 entries (tracemalloc).
        end = bisect_left(self._changes, parse_cursor(cursor), key=place_of)
        start = max(0, end - PAGE_SIZE)
        chosen = self._changes[start:end][::-1]
        following = cursor_of(place_of(chosen[-1])) if chosen and start > 0 else ""
        return _page(chosen, following)

    @staticmethod
    def first(merged: Merged) -> Page:
        """Return the first page: the newest PAGE_SIZE changes, without ordering all of them.

        The items and the tombstones are each newest first already (merge_entries), so
        merging the two as they run gives the order a sort of both gives, a page at a time:
        after a change at 50,000 entries this costs one page, not a sort of every change.
        """
        newest = heapq.merge(merged.items, merged.tombstones, key=place_of, reverse=True)
        chosen = list(islice(newest, PAGE_SIZE + 1))
        following = cursor_of(place_of(chosen[PAGE_SIZE - 1])) if len(chosen) > PAGE_SIZE else ""
        return _page(chosen[:PAGE_SIZE], following)

    def _order(self, merged: Merged) -> None:
        if merged is self._view:
            return
        # Both are sorted newest first already (merge_entries), which Timsort sorts in one pass.
        changes = sorted([*merged.items, *merged.tombstones], key=place_of, reverse=True)
        changes.reverse()  # oldest first; equal places stay in page order, read backwards
        self._view = merged
        self._changes = changes


def _page(chosen: list[Item | Tombstone], following: str) -> Page:
    items = tuple(c for c in chosen if not isinstance(c, Tombstone))
    tombs = tuple(c for c in chosen if isinstance(c, Tombstone))
    return Page(tombs, items, following)


def place_of(change: Item | Tombstone) -> Place:
    """Return a change's place in the page order: its time (`updated`, `when`) and id."""
    when = change.deleted if isinstance(change, Tombstone) else change.updated
    # Whole microseconds, exactly (a float timestamp may round two neighbours together), so
    # this order is the datetimes' order that the merge keeps.
    return ((when - _EPOCH) // _MICROSECOND, change.id)


def cursor_of(place: Place) -> str:
    """Return the cursor text of a change's place: `<microseconds>~<atom:id>`."""
    micros, entry_id = place
    return f"{micros}~{entry_id}"


def parse_cursor(text: str) -> Place:
    """Return the place a cursor names; raise BadRequest for text no page link carries."""
    micros, _, entry_id = text.partition("~")
    if len(text) > CURSOR_MAX or not entry_id or not micros.lstrip("-").isdigit():
        raise BadRequest("the feed page cursor `after` is not one this feed's links give")
    return (int(micros), entry_id)


def page_url(feed_url: str, cursor: str) -> str:
    """Return the URL of the page after `cursor` (the feed itself for "")."""
    return f"{feed_url}?after={quote(cursor, safe='')}" if cursor else feed_url
