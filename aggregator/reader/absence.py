"""What an entry missing from a fetch means: a deletion in a complete feed, nothing in a page.

design.md: a village feed is complete, so an upcoming entry that vanished from it is deleted
(aggregator.reader.merge.apply_fetch, guarded against mass removal). Such a deletion is then
stored and relayed as a tombstone of our own (`with_inferred_tombstones`): the merged feed is
paged (aggregator.publish.paging), and a reader of its pages learns of deletions only from
tombstones. A page of a paged feed is not complete: what it holds is applied on top of the
stored content (`apply_page`), and only a tombstone or time removes an entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from aggregator.reader.merge import PAST_DAYS, Content, apply_fetch, is_upcoming, same_entry
from klynge.model import Event, FeedSource, Item, Tombstone


def apply_page(
    old: Content,
    items: Sequence[Item],
    tombstones: Sequence[Tombstone],
    *,
    origin: FeedSource,
    now: datetime,
) -> Content:
    """Return a source's content after reading pages of a paged feed: nothing vanishes.

    The stored entries stay unless a tombstone deletes them or time does: a notice that
    expired, an event that ended more than PAST_DAYS ago (the rules a complete feed applies
    when such an entry leaves it).
    """
    kept = [item for item in old.entries.values() if _current(item, now)]
    return apply_fetch(old, [*kept, *items], tombstones, origin=origin, now=now)


def _current(item: Item, now: datetime) -> bool:
    if is_upcoming(item, now):
        return True
    return isinstance(item, Event) and item.series_end() > now - timedelta(days=PAST_DAYS)


def with_inferred_tombstones(old: Content, new: Content, now: datetime) -> Content:
    """Return `new` with a tombstone for each upcoming entry that left it without one."""
    made = {
        entry_id: Tombstone(entry_id, max(now, item.updated), item.source)
        for entry_id, item in old.entries.items()
        if entry_id not in new.entries
        and is_upcoming(item, now)
        and not _buried(item, new.tombstones.get(entry_id))
    }
    return replace(new, tombstones={**new.tombstones, **made}) if made else new


def _buried(item: Item, tomb: Tombstone | None) -> bool:
    return tomb is not None and tomb.deleted >= item.updated


def reuse_unchanged(items: Sequence[Item], old: Content) -> list[Item]:
    """Return `items` with each one the same as its stored copy (`same_entry`) as that copy.

    The outputs keep each entry's rendered pieces by identity (aggregator.publish.pieces): an
    unchanged entry that stays the same object is not rendered again. A region re-reading a
    cluster's page would otherwise render all of it after every change.
    """
    return [_stored_if_equal(item, old.entries.get(item.id)) for item in items]


def _stored_if_equal(item: Item, stored: Item | None) -> Item:
    return stored if stored is not None and same_entry(item, stored) else item


def revived(old: Content, items: Sequence[Item], tombstones: Sequence[Tombstone]) -> Content:
    """Return `old` without the stored tombstones of entries a read lists again.

    A feed (or a page) that lists an entry and sends no tombstone for it says that it lives:
    a tombstone we inferred when it vanished once, one its feed no longer sends, or one an
    aggregator sent while its host hid the entry, is stale.
    """
    listed = {item.id for item in items} - {tomb.id for tomb in tombstones}
    stale = listed & old.tombstones.keys()
    if not stale:
        return old
    tombs = {i: t for i, t in old.tombstones.items() if i not in stale}
    return replace(old, tombstones=tombs)
