"""Merging: bind entries to the source that served them, apply a fetch, merge all sources.

Pure functions over frozen values; no I/O. The rules are design.md's: entries are keyed by id
and bound to their origin; `atom:source` is believed only from sources of kind `aggregator`;
one copy per entry (newest `updated`, then highest `sequence`); tombstones remove their
origin's entry and are relayed; an upcoming entry that vanished from a good fetch is removed,
unless the fetch removes more than half of the source's upcoming entries.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from klynge.model import Event, FeedSource, Item, Notice, Tombstone, clean_text, is_http_url

_Sourced = TypeVar("_Sourced", bound=Event | Notice | Tombstone)
TOMBSTONE_DAYS = 30  # design.md: tombstones stay in a feed for 30 days
PAST_DAYS = 90  # design.md: calendars keep about 90 days of past events


@dataclass(frozen=True)
class Content:
    """What one source has given us: its entries (bound to their origin) and tombstones."""

    origin: FeedSource | None = None
    entries: Mapping[str, Item] = field(default_factory=dict)
    first_seen: Mapping[str, datetime] = field(default_factory=dict)
    tombstones: Mapping[str, Tombstone] = field(default_factory=dict)
    held: frozenset[str] = frozenset()  # ids whose removal waits for a confirming fetch
    flag: str = ""  # why a removal is held back, in words

    def upcoming(self, now: datetime) -> int:
        """Return how many entries are still upcoming at `now`."""
        return sum(1 for item in self.entries.values() if is_upcoming(item, now))


@dataclass(frozen=True)
class Merged:
    """The merged cluster: one copy of every entry, and the tombstones to relay."""

    items: tuple[Item, ...] = ()
    tombstones: tuple[Tombstone, ...] = ()

    @property
    def events(self) -> list[Event]:
        """Return the merged events."""
        return [i for i in self.items if isinstance(i, Event)]

    @property
    def notices(self) -> list[Notice]:
        """Return the merged notices."""
        return [i for i in self.items if isinstance(i, Notice)]


def safe_source(source: FeedSource) -> FeedSource:
    """Return a FeedSource with plain-text title/author and only an http(s) self link."""
    return FeedSource(
        id=clean_text(source.id)[:500] or "urn:klynge:unknown",
        title=clean_text(source.title)[:200],
        updated=source.updated if source.updated and source.updated.tzinfo else None,
        self_url=source.self_url if is_http_url(source.self_url) else "",
        author=clean_text(source.author)[:200],
    )


def origin_of(item: Item | Tombstone) -> str:
    """Return the id of the feed an entry or tombstone originally came from."""
    return item.source.id if item.source else ""


def bind(
    items: Iterable[Item],
    tombstones: Iterable[Tombstone],
    *,
    origin: FeedSource,
    trust_source: bool,
) -> tuple[list[Item], list[Tombstone]]:
    """Bind entries and tombstones to the serving source (or their atom:source if trusted)."""

    def provenance(claimed: FeedSource | None) -> FeedSource:
        if trust_source and claimed is not None:
            return safe_source(claimed)
        return origin

    bound = [_with_source(i, provenance(i.source)) for i in items]
    tombs = [_with_source(t, provenance(t.source)) for t in tombstones]
    return bound, tombs


def _with_source(value: _Sourced, source: FeedSource) -> _Sourced:
    """Return a copy of a validated entry or tombstone with another `source`.

    `dataclasses.replace` would validate the whole entry again (nh3, the RRULE): measured at
    about 2 ms an entry, the biggest cost of a refresh. Only the provenance changes here.
    """
    if value.source == source:
        return value
    twin = copy.copy(value)
    object.__setattr__(twin, "source", source)
    return twin


def is_upcoming(item: Item, now: datetime) -> bool:
    """Tell whether an event has not ended or a notice has not expired at `now`."""
    if isinstance(item, Event):
        return item.series_end() > now
    return item.expires is None or item.expires > now


def _newest(a: Item, b: Item) -> Item:
    return b if (b.updated, b.sequence) > (a.updated, a.sequence) else a


def _buried(item: Item, tomb: Tombstone | None) -> bool:
    """Tell whether a tombstone deletes this copy: same origin, deleted at or after its edit."""
    return tomb is not None and origin_of(tomb) == origin_of(item) and tomb.deleted >= item.updated


def apply_fetch(
    old: Content,
    items: Sequence[Item],
    tombstones: Sequence[Tombstone],
    *,
    origin: FeedSource,
    now: datetime,
) -> Content:
    """Return a source's content after a good fetch of bound `items` and `tombstones`."""
    tombs = _keep_tombstones({**old.tombstones, **{t.id: t for t in tombstones}}, now)
    fresh: dict[str, Item] = {}
    for item in items:
        if not _buried(item, tombs.get(item.id)):
            fresh[item.id] = _newest(fresh[item.id], item) if item.id in fresh else item
    vanished = [
        i for i in old.entries if i not in fresh and not _buried(old.entries[i], tombs.get(i))
    ]
    held, flag = _hold_back(old, vanished, now)
    past = {i: old.entries[i] for i in vanished if _recently_ended(old.entries[i], now)}
    entries = {**past, **fresh, **{i: old.entries[i] for i in held}}
    first_seen = {i: old.first_seen.get(i, now) for i in entries}
    return Content(origin, entries, first_seen, tombs, held, flag)


def _recently_ended(item: Item, now: datetime) -> bool:
    """Tell whether an event ended within PAST_DAYS: kept when it leaves its village's feed.

    A village feed keeps 30 days of past events, our calendar about 90 (design.md,
    "iCalendar output"): events that drop out of a subscribed file vanish from calendars.
    """
    if not isinstance(item, Event):
        return False
    return now - timedelta(days=PAST_DAYS) < item.series_end() <= now


def _hold_back(old: Content, vanished: list[str], now: datetime) -> tuple[frozenset[str], str]:
    """Return the vanished upcoming ids to keep for now (a suspected mass removal) and why."""
    if old.held:
        return frozenset(), ""  # this second fetch confirms the removal
    gone = [i for i in vanished if is_upcoming(old.entries[i], now)]
    total = old.upcoming(now)
    if not gone or len(gone) * 2 <= total:
        return frozenset(), ""
    flag = (
        f"This fetch would remove {len(gone)} of {total} upcoming entries; "
        "they are kept until the next fetch confirms the removal."
    )
    return frozenset(gone), flag


def _keep_tombstones(tombs: Mapping[str, Tombstone], now: datetime) -> dict[str, Tombstone]:
    cutoff = now - timedelta(days=TOMBSTONE_DAYS)
    return {i: t for i, t in tombs.items() if t.deleted >= cutoff}


def merge_entries(contents: Iterable[Content]) -> Merged:
    """Merge every source's content into one copy per entry, newest edit first."""
    contents = list(contents)
    owners = _owners(contents)
    tombs = _relayed_tombstones(contents)
    chosen: dict[str, tuple[tuple[datetime, int, bool], Item]] = {}
    for content in contents:
        direct_id = content.origin.id if content.origin else ""
        for entry_id, item in content.entries.items():
            if origin_of(item) != owners[entry_id]:
                continue  # another origin had this id first: no feed can take over an entry
            # Newest edit, then highest sequence; on a tie the origin's own feed beats a relay.
            rank = (item.updated, item.sequence, origin_of(item) == direct_id)
            if entry_id not in chosen or rank > chosen[entry_id][0]:
                chosen[entry_id] = (rank, item)
    items = [i for _, i in chosen.values() if not _buried(i, tombs.get((origin_of(i), i.id)))]
    items.sort(key=lambda i: (i.updated, i.id), reverse=True)
    alive = {(origin_of(i), i.id) for i in items}  # revived after the tombstone (an undo)
    relayed = sorted(
        (t for key, t in tombs.items() if key not in alive),
        key=lambda t: (t.deleted, t.id),
        reverse=True,
    )
    return Merged(tuple(items), tuple(relayed))


def _owners(contents: Sequence[Content]) -> dict[str, str]:
    """Return, for every entry id, the origin that served it first."""
    seen: dict[str, tuple[datetime, str]] = {}
    for content in contents:
        for entry_id, item in content.entries.items():
            claim = (content.first_seen[entry_id], origin_of(item))
            if entry_id not in seen or claim < seen[entry_id]:
                seen[entry_id] = claim
    return {entry_id: claim[1] for entry_id, claim in seen.items()}


def _relayed_tombstones(contents: Sequence[Content]) -> dict[tuple[str, str], Tombstone]:
    tombs: dict[tuple[str, str], Tombstone] = {}
    for content in contents:
        for tomb in content.tombstones.values():
            key = (origin_of(tomb), tomb.id)
            if key not in tombs or tomb.deleted > tombs[key].deleted:
                tombs[key] = tomb
    return tombs
