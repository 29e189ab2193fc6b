"""Merging: bind entries to the source that served them, apply a fetch, merge all sources.

Pure functions over frozen values; no I/O. The rules are design.md's: entries are keyed by
their origin and id, and bound to their origin; `atom:source` is believed only from sources of
kind `aggregator`; one copy per entry (newest `updated`, then highest `sequence`); tombstones
remove their origin's entry and are relayed; an upcoming entry that vanished from a good fetch
is removed, unless the fetch removes more than half of the source's upcoming entries.

An origin is a feed id together with the URL its entries were polled at (`origin_of`): a
village cannot choose the URL we poll it at, so copying another village's entry ids, or its
feed id, gives separate entries, never a takeover, whatever the polling order. Only an
`aggregator` source can relay a copy under another origin, and that copy merges with the
entry reached directly. The merge is a function of all sources' contents, never of their order.
"""

from __future__ import annotations

import copy
import re
import uuid
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import cached_property, lru_cache
from typing import TypeVar

from klynge.ical.writer import start_order
from klynge.messages import Message, define
from klynge.model import (
    Event,
    FeedSource,
    Item,
    Notice,
    Tombstone,
    as_utc,
    clean_text,
    is_http_url,
)

_Sourced = TypeVar("_Sourced", bound=Event | Notice | Tombstone)
TOMBSTONE_DAYS = 30  # design.md: tombstones stay in a feed for 30 days
PAST_DAYS = 90  # design.md: calendars keep about 90 days of past events
# Ids of entries that several origins publish under one atom:id are derived in this namespace.
SHARED_ID_NAMESPACE = uuid.UUID("6f1d7a52-3c1e-4b8e-9a47-0d5c2b6e8f13")
# The id of one date of an ICS series imported as its dates: `<series id>/<start in UTC>`.
_DATE_STAMP = re.compile(r"/\d{8}(?:T\d{6}Z?)?$")
HELD_BACK = define(
    "merge.held_back",
    "This fetch would remove %(gone)s of %(total)s upcoming entry; "
    "it is kept until the next fetch confirms the removal.",
    "This fetch would remove %(gone)s of %(total)s upcoming entries; "
    "they are kept until the next fetch confirms the removal.",
    count="total",
)


@dataclass(frozen=True)
class Content:
    """What one source has given us: its entries (bound to their origin) and tombstones."""

    origin: FeedSource | None = None
    entries: Mapping[str, Item] = field(default_factory=dict)
    first_seen: Mapping[str, datetime] = field(default_factory=dict)
    tombstones: Mapping[str, Tombstone] = field(default_factory=dict)
    held: frozenset[str] = frozenset()  # ids whose removal waits for a confirming fetch
    flag: Message | None = None  # why a removal is held back

    def upcoming(self, now: datetime) -> int:
        """Return how many entries are still upcoming at `now` (as is_upcoming tells)."""
        return len(self._ends) - bisect_right(self._ends, now)

    @cached_property
    def _ends(self) -> list[datetime]:
        # Sorted once per content: /api/sources and /status count each source's upcoming
        # entries on every request, on the event loop; a walk of every entry each time was
        # seconds of a region's start (50,000 entries, a client polling /api/sources).
        return sorted(ending(item) for item in self.entries.values())

    def warm(self) -> Content:
        """Sort the entries' ends now, in the calling thread (not the loop's); return self.

        Where a content is made: a start's load thread, a fetch's parse thread. The first
        count of each new content otherwise sorted on the event loop, 1.6 s of a start at
        50,000 entries (stop 27's profile).
        """
        _ = self._ends
        return self


# When an event's occurrences begin and end (UTC), and whether a date may lie outside that.
Span = tuple[datetime, datetime, bool]
NEVER = datetime.max.replace(tzinfo=UTC)  # the end of what never ends
_ALWAYS: Span = (datetime.min.replace(tzinfo=UTC), NEVER, True)


def span_of(event: Event) -> Span:
    """Return an event's span: its first start, its end, and whether dates may move.

    A series' end is not worked out here (`series_end` expands up to five years of a rule:
    milliseconds an event, seconds for a village of thousands): a series counts as open,
    and its window expands it from its start, as before.
    """
    try:
        movable = bool(event.rdates or event.changes)
        start = as_utc(event.start, event.timezone)
        if event.rrule is not None or movable:
            return start, NEVER, movable
        return start, as_utc(event.effective_end, event.timezone), False
    except Exception:  # expanding it will say what is wrong (klynge.render_guard); keep it
        return _ALWAYS


@dataclass(frozen=True)
class Merged:
    """The merged cluster: one copy of every entry, and the tombstones to relay.

    Both run newest first: items by (updated, id), tombstones by (deleted, id), descending
    (the merged feed's first page relies on it: aggregator.publish.paging).
    """

    items: tuple[Item, ...] = ()
    tombstones: tuple[Tombstone, ...] = ()
    # The events by start (klynge.ical.writer.start_order), when the merge kept that order.
    starts: tuple[Event, ...] | None = field(default=None, compare=False, repr=False)
    spans: tuple[Span, ...] | None = field(default=None, compare=False, repr=False)  # of starts

    # Each is worked out once per view, in the merging thread (MergedView): at 50,000 entries
    # one walk over the items costs milliseconds, and pages ask for these on the event loop.
    @cached_property
    def events(self) -> tuple[Event, ...]:
        """Return the merged events."""
        return tuple(i for i in self.items if isinstance(i, Event))

    @cached_property
    def notices(self) -> tuple[Notice, ...]:
        """Return the merged notices."""
        return tuple(i for i in self.items if isinstance(i, Notice))

    @cached_property
    def events_by_start(self) -> tuple[Event, ...]:
        """Return the merged events ordered by start, then id (as calendars list them)."""
        if self.starts is not None:
            return self.starts
        return tuple(sorted(self.events, key=start_order))

    @cached_property
    def start_spans(self) -> tuple[Span, ...]:
        """Return the span of each event of `events_by_start`, in that order."""
        if self.spans is not None and self.starts is not None:
            return self.spans
        return tuple(span_of(e) for e in self.events_by_start)

    def in_window(self, lo: datetime, hi: datetime) -> list[Event]:
        """Return the events that may have an occurrence in [lo, hi), in start order.

        A bisection skips the events that start after the window, the spans those that
        ended before it: pages and the JSON API expand only these (klynge.recurrence).
        """
        starts, spans = self.events_by_start, self.start_spans
        stop = bisect_right(spans, hi, key=lambda s: s[0])
        near = [e for e, s in zip(starts[:stop], spans[:stop], strict=True) if s[2] or s[1] >= lo]
        seen = {id(e) for e in near}
        return near + [e for e in self.movable if id(e) not in seen]

    @cached_property
    def movable(self) -> tuple[Event, ...]:
        """Return the events a date of which may lie outside their span (RDATE, changes)."""
        pairs = zip(self.events_by_start, self.start_spans, strict=True)
        return tuple(e for e, s in pairs if s[2])

    @cached_property
    def by_id(self) -> dict[str, Item]:
        """Return the merged entries by id."""
        return {i.id: i for i in self.items}

    @cached_property
    def village_titles(self) -> frozenset[str]:
        """Return the titles of the sources the entries come from."""
        return frozenset(i.source.title for i in self.items if i.source is not None)

    @cached_property
    def event_categories(self) -> frozenset[str]:
        """Return the categories the events use."""
        return frozenset(e.category for e in self.events if e.category)

    def warm(self) -> Merged:
        """Work out every derived value now (in the calling thread); return self."""
        for name in (
            "events",
            "notices",
            "events_by_start",
            "by_id",
            "village_titles",
            "event_categories",
        ):
            getattr(self, name)
        return self


def visible(
    merged: Merged, hidden: frozenset[str], since: Mapping[str, datetime] | None = None
) -> Merged:
    """Return the merged cluster without the entries the host hid (moderation).

    A hidden entry leaves as a tombstone dated when it was hidden (`since`), so that a reader
    of the paged merged feed, which infers nothing from absence, hears of it on the first page
    (aggregator.publish.paging).
    """
    if not hidden:
        return merged
    when = since or {}
    gone = [
        Tombstone(i.id, max(when.get(i.id, i.updated), i.updated), i.source)
        for i in merged.items
        if i.id in hidden
    ]
    tombs = sorted([*merged.tombstones, *gone], key=lambda t: (t.deleted, t.id), reverse=True)
    items = tuple(i for i in merged.items if i.id not in hidden)
    starts = (
        None if merged.starts is None else tuple(e for e in merged.starts if e.id not in hidden)
    )
    return Merged(items, tuple(tombs), starts)


def merge_visible(
    contents: Sequence[Content],
    hidden: frozenset[str],
    since: Mapping[str, datetime] | None = None,
) -> Merged:
    """Merge all sources' contents and leave out the hidden entries (tombstones from `since`)."""
    return visible(merge_entries(contents), hidden, since)


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
    """Return the key of the feed an entry or tombstone came from: its id and polled URL."""
    source = item.source
    return _origin(source) if source else ""


@lru_cache(maxsize=4096)
def _origin(source: FeedSource) -> str:
    # One string per feed, not per entry: the merge index keys every entry by it (5 MB at 50,000).
    return f"{source.id} {source.self_url}"


def shared_id(origin: str, entry_id: str) -> str:
    """Return the stable id under which one origin's copy of a shared atom:id is published."""
    return f"urn:uuid:{uuid.uuid5(SHARED_ID_NAMESPACE, f'{origin} {entry_id}')}"


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


def _with_id(item: Item, entry_id: str) -> Item:
    """Return a copy of a validated entry under another id (no second validation)."""
    twin = copy.copy(item)
    object.__setattr__(twin, "id", entry_id)
    return twin


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
    return ending(item) > now


def ending(item: Item) -> datetime:
    """Return when an item stops being upcoming: its series' end, or its notice's expiry."""
    if isinstance(item, Event):
        return item.series_end()
    return item.expires if item.expires is not None else NEVER


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
        i
        for i in old.entries
        if i not in fresh
        and not _buried(old.entries[i], tombs.get(i))
        and not _replaced(i, old.entries[i], fresh)
    ]
    held, flag = _hold_back(old, vanished, now)
    past = {i: old.entries[i] for i in vanished if _recently_ended(old.entries[i], now)}
    entries = {**past, **_unchanged_kept(old, fresh), **{i: old.entries[i] for i in held}}
    first_seen = {i: old.first_seen.get(i, now) for i in entries}
    return Content(origin, entries, first_seen, tombs, held, flag)


def _unchanged_kept(old: Content, fresh: dict[str, Item]) -> dict[str, Item]:
    """Return the fresh entries, each one the same as its old copy as that same old object.

    A fetch parses every entry of a feed anew; an entry kept as the same object keeps its
    rendered pieces (aggregator.publish.pieces), so one edited entry costs one entry, not
    its village's fifty.
    """
    kept = old.entries
    return {i: kept[i] if same_entry(item, kept.get(i)) else item for i, item in fresh.items()}


def same_entry(fresh: Item, stored: Item | None) -> bool:
    """Tell whether a fresh copy says what the stored copy says, but for its feed's `updated`.

    Every edit on a village moves its feed's `updated`, which each bound entry carries in its
    provenance (`bind`): compared whole, one edit would make all fifty entries new. Only that
    one field may differ: the same feed id and polled URL (the origin, `origin_of`), title and
    author, and an equal entry. Anything more lenient would keep a copy bound to another
    origin, and the merge would then hold the entry twice (once per origin).
    """
    if stored is None or stored.id != fresh.id:
        return False
    if stored == fresh:
        return True
    ours, theirs = fresh.source, stored.source
    if ours is None or theirs is None or ours.updated == theirs.updated:
        return False
    return ours == replace(theirs, updated=ours.updated) and _with_source(fresh, theirs) == stored


def _replaced(item_id: str, item: Item, fresh: Mapping[str, Item]) -> bool:
    """Tell whether a single date `<series id>/<start>` is now carried by its series.

    An .ics series imported as its dates before and as one series now (klynge.ical.reader;
    docs/aggregator.md, "ICS sources"): its dates are not deleted, so neither held nor kept.
    """
    if not isinstance(item, Event) or item.rrule is not None:
        return False
    head = item_id
    for _ in range(2):  # a date after RANGE=THISANDFUTURE carries two stamps
        match = _DATE_STAMP.search(head)
        if match is None:
            return False
        head = head[: match.start()]
        series = fresh.get(head)
        if isinstance(series, Event) and series.rrule is not None:
            return True
    return False


def _recently_ended(item: Item, now: datetime) -> bool:
    """Tell whether an event ended within PAST_DAYS: kept when it leaves its village's feed.

    A village feed keeps 30 days of past events, our calendar about 90 (design.md,
    "iCalendar output"): events that drop out of a subscribed file vanish from calendars.
    """
    if not isinstance(item, Event):
        return False
    return now - timedelta(days=PAST_DAYS) < item.series_end() <= now


def _hold_back(
    old: Content, vanished: list[str], now: datetime
) -> tuple[frozenset[str], Message | None]:
    """Return the vanished upcoming ids to keep for now (a suspected mass removal) and why."""
    if old.held:
        return frozenset(), None  # this second fetch confirms the removal
    gone = [i for i in vanished if is_upcoming(old.entries[i], now)]
    total = old.upcoming(now)
    if not gone or len(gone) * 2 <= total:
        return frozenset(), None
    return frozenset(gone), Message(HELD_BACK, {"gone": len(gone), "total": total})


def _keep_tombstones(tombs: Mapping[str, Tombstone], now: datetime) -> dict[str, Tombstone]:
    cutoff = now - timedelta(days=TOMBSTONE_DAYS)
    return {i: t for i, t in tombs.items() if t.deleted >= cutoff}


def merge_entries(contents: Iterable[Content]) -> Merged:
    """Merge every source's content into one copy per entry, newest edit first.

    Copies are one entry when they share origin and id. When several origins publish the same
    atom:id, each origin's entry is published under its own derived id (`shared_id`), so that
    pages, the ICS UID and the merged feed never confuse them, whichever was polled first.
    """
    contents = list(contents)
    tombs = _relayed_tombstones(contents)
    chosen: dict[tuple[str, str], tuple[tuple[datetime, int, bool], Item]] = {}
    for content in contents:
        direct = origin_of_content(content)
        for entry_id, item in content.entries.items():
            key = (origin_of(item), entry_id)
            # Newest edit, then highest sequence; on a tie the origin's own feed beats a relay.
            rank = (item.updated, item.sequence, key[0] == direct)
            if key not in chosen or rank > chosen[key][0]:
                chosen[key] = (rank, item)
    alive = [(k, i) for k, (_, i) in chosen.items() if not _buried(i, tombs.get(k))]
    keys = {k for k, _ in alive}  # revived after the tombstone (an undo)
    relayed = sorted(
        (t for key, t in tombs.items() if key not in keys),
        key=lambda t: (t.deleted, t.id),
        reverse=True,
    )
    publishers = Counter(entry_id for _, entry_id in keys)
    items = [
        _with_id(i, shared_id(origin, i.id)) if publishers[i.id] > 1 else i
        for (origin, _), i in alive
    ]
    items.sort(key=lambda i: (i.updated, i.id), reverse=True)
    return Merged(tuple(items), tuple(relayed))


def origin_of_content(content: Content) -> str:
    """Return the origin key of a source's own entries (as `origin_of` gives it)."""
    origin = content.origin
    return f"{origin.id} {origin.self_url}" if origin else ""


def _relayed_tombstones(contents: Sequence[Content]) -> dict[tuple[str, str], Tombstone]:
    tombs: dict[tuple[str, str], Tombstone] = {}
    for content in contents:
        for tomb in content.tombstones.values():
            key = (origin_of(tomb), tomb.id)
            if key not in tombs or tomb.deleted > tombs[key].deleted:
                tombs[key] = tomb
    return tombs
