"""Undo for deleting from the volunteer pages: deleted entries kept for 10 minutes, and restore.

A restored entry keeps its id, gets a higher sequence and an `updated` later than its
tombstone, and its tombstone leaves the feed. Aggregators that already applied the tombstone
take the entry back, because a tombstone buries only copies updated at or before its `when`
(aggregator/reader/merge.py `_buried`, docs/feed-format.md).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from aiohttp import web

from klynge.model import Item, Tombstone
from node.serialize import short_id

UNDO_MINUTES = 10
SHELF_SIZE = 200  # enough for every volunteer of a village; the oldest go first


@dataclass(frozen=True)
class Deleted:
    """An entry deleted from the volunteer pages, with its tombstone and who deleted it."""

    item: Item
    tombstone: Tombstone
    username: str


class UndoShelf:
    """Deleted entries that may still be restored (in memory: undo is for the next minutes)."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self._shelf: OrderedDict[str, Deleted] = OrderedDict()

    def put(self, item: Item, tombstone: Tombstone, username: str) -> None:
        """Keep a deleted entry for undo."""
        self._shelf[short_id(item.id)] = Deleted(item, tombstone, username)
        while len(self._shelf) > SHELF_SIZE:
            self._shelf.popitem(last=False)

    def get(self, uuid: str) -> Deleted | None:
        """Return the deleted entry with this uuid while it may still be restored."""
        found = self._shelf.get(uuid.lower())
        limit = timedelta(minutes=UNDO_MINUTES)
        if found is None or self.clock() - found.tombstone.deleted > limit:
            return None
        return found

    def forget(self, uuid: str) -> None:
        """Drop an entry from the shelf (after it was restored)."""
        self._shelf.pop(uuid.lower(), None)


UNDO = web.AppKey("node_undo_shelf", UndoShelf)


def restored(deleted: Deleted, now: datetime) -> Item:
    """Return the entry as it comes back: same id, sequence raised, updated after its tombstone."""
    updated = max(now, deleted.tombstone.deleted + timedelta(seconds=1), deleted.item.updated)
    return replace(deleted.item, sequence=deleted.item.sequence + 1, updated=updated)
