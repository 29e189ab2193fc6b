"""Each merged entry's rendered Atom entry and VEVENT bytes, kept until the entry changes.

A document is its head joined with the pieces of its entries (klynge.atom.writer.join_feed,
klynge.ical.writer.calendar_chunks), so after one village changes only that village's entries
are rendered again: at 20,000 entries a change costs its 50 entries and a join, not seconds
of feedgen and icalendar work. The merge keeps an unchanged entry as the same object
(aggregator.reader.merge), so a piece is found by the entry's identity; the cache holds
the entry too, so its id() cannot be reused while the piece is kept.

Only the document builder's one thread uses a cache (aggregator.publish.outputs).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Generic, TypeVar, cast

from aggregator.publish.paging import ChangeOrder
from aggregator.publish.piece_files import Kept, PieceFiles
from aggregator.reader.merge import Merged, origin_of
from klynge.atom.writer import FeedMeta, write_parts
from klynge.ical.writer import vevent_piece
from klynge.model import Event, Item, When
from klynge.recurrence import Occurrence
from klynge.render_guard import each_entry, rendered

CHUNK = 200  # entries rendered per feedgen document: bounds the lxml tree a build holds
# The feed around a chunk of entries is thrown away: only its entries are kept.
_META = FeedMeta(
    id="urn:klynge:pieces",
    title="pieces",
    self_url="urn:klynge:pieces",
    updated=datetime(2026, 1, 1, tzinfo=UTC),
)

_Entry = TypeVar("_Entry", bound=Item)
_Piece = TypeVar("_Piece")
_Value = TypeVar("_Value")


class Held(Generic[_Entry, _Value]):
    """What is kept for each entry, by the entry's identity, with the entry itself."""

    def __init__(self) -> None:
        self._held: dict[int, tuple[_Entry, _Value]] = {}

    def __len__(self) -> int:
        """Return how many entries something is kept for."""
        return len(self._held)

    def keep_only(self, entries: Sequence[_Entry]) -> None:
        """Forget what is kept for entries that are no longer merged."""
        kept = {id(e) for e in entries}
        self.forget([key for key in self._held if key not in kept])

    def forget(self, gone: Iterable[int]) -> None:
        """Forget what is kept for these entries (by id()), where anything is."""
        for key in gone:
            self._held.pop(key, None)


class PieceCache(Held[_Entry, _Piece | None]):
    """Rendered pieces by entry identity; an entry that cannot be rendered is kept as None."""

    def __init__(self, render: Callable[[Sequence[_Entry]], dict[int, _Piece]]) -> None:
        super().__init__()
        self.render = render  # returns {id(entry): piece} for the entries that rendered
        self.rendered = 0  # entries rendered since start, for tests and the benchmark

    def pieces(self, entries: Sequence[_Entry]) -> list[tuple[_Entry, _Piece]]:
        """Return (entry, piece) in order, rendering the entries not seen before."""
        missing = [entry for entry in entries if id(entry) not in self._held]
        if missing:
            made = self._make(missing)
            self._held.update((id(e), (e, made.get(id(e)))) for e in missing)
            self._made(missing)
        # The held pairs themselves: no tuple is made per entry (50,000 here).
        held = map(self._held.__getitem__, map(id, entries))
        return cast(list[tuple[_Entry, _Piece]], [pair for pair in held if pair[1] is not None])

    def unkept(self, entries: Sequence[_Entry]) -> list[tuple[_Entry, _Piece]]:
        """Return (entry, piece) in order like `pieces`, keeping none of those rendered now."""
        made = self._make([entry for entry in entries if id(entry) not in self._held])
        out = []
        for entry in entries:
            pair = self._held.get(id(entry))
            piece = pair[1] if pair is not None else made.get(id(entry))
            if piece is not None:
                out.append((entry, piece))
        return out

    def _make(self, missing: Sequence[_Entry]) -> dict[int, _Piece]:
        self.rendered += len(missing)
        return self.render(missing) if missing else {}

    def _made(self, missing: Sequence[_Entry]) -> None:
        """Hook: the pieces of `missing` are held now."""


class FiledPieces(PieceCache[Event, Kept]):
    """The VEVENT pieces, also kept on disk per village (aggregator.publish.piece_files).

    An event not held yet is looked for in the files first; after rendering, the file of
    each village with a newly rendered event is written again with all its events' pieces.
    """

    def __init__(self, files: PieceFiles) -> None:
        super().__init__(vevents)
        self.files = files
        self._touched: set[str] = set()  # the origins of the events rendered by _make
        # The held events of each origin, so that a village's file is written from its own
        # events, not from a walk of every held piece (~50 ms a change at 50,000 entries).
        self._origins: dict[str, dict[int, Event]] = {}

    def _make(self, missing: Sequence[Event]) -> dict[int, Kept]:
        made = self.files.take(missing)
        rest = [event for event in missing if id(event) not in made]
        if rest:
            made.update(super()._make(rest))
        self._touched = {origin_of(event) for event in rest}
        return made

    def _made(self, missing: Sequence[Event]) -> None:
        for event in missing:
            self._origins.setdefault(origin_of(event), {})[id(event)] = event
        for origin in self._touched:
            held = map(self._held.__getitem__, self._origins[origin])
            self.files.save(origin, [(event, piece) for event, piece in held if piece is not None])

    def forget(self, gone: Iterable[int]) -> None:
        """Forget the pieces of these events (by id()), where held, and their places by origin."""
        for key in gone:
            pair = self._held.pop(key, None)
            if pair is not None:
                origin = origin_of(pair[0])
                events = self._origins[origin]
                del events[key]
                if not events:
                    del self._origins[origin]


def atom_entries(items: Sequence[Item]) -> dict[int, bytes]:
    """Return each item's `<entry>` bytes by id(), rendered CHUNK entries at a time."""
    made: dict[int, bytes] = {}
    for chunk in _chunks(items, CHUNK):
        _, pieces = write_parts(_META, chunk)
        made.update((id(item), piece) for item, piece in pieces)
    return made


def vevents(events: Sequence[Event]) -> dict[int, Kept]:
    """Return each event's VEVENT piece and series end by id() (the calendar's cut-off)."""
    made = each_entry(events, lambda e: (id(e), (*vevent_piece(e), e.series_end())), "the calendar")
    return dict(made)


def _chunks(items: Sequence[Item], size: int) -> Iterator[Sequence[Item]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


# An occurrence's date: its start, and in a series its original start.
_Date = tuple[When, When | None]
# An event's rows by date: (date, row) while one date was asked for, as for almost every
# event; a dict once a series has more (a dict each was 2 MB at 50,000 entries, tracemalloc).
_Dated = tuple[_Date, bytes] | dict[_Date, bytes]


class Rows(Held[Event, _Dated]):
    """Each occurrence's /api/events JSON row as bytes, kept until its event changes.

    A row is a function of the event and the date (its start and, in a series, its
    original start), so it is rendered once per event version and date asked for; a row
    that cannot be rendered is logged and left out each time (klynge.render_guard).
    """

    def __init__(self, render: Callable[[Occurrence], bytes]) -> None:
        super().__init__()
        self.render = render
        self.rendered = 0  # rows rendered since start, for tests and the benchmark

    def rows(self, found: Sequence[Occurrence]) -> list[bytes]:
        """Return the rows of these occurrences in order, rendering those not kept."""
        out = []
        for occurrence in found:
            event = occurrence.event
            date = (occurrence.start, occurrence.original)
            kept = self._held.get(id(event))
            row = _row_at(kept[1], date) if kept is not None else None
            if row is None:
                row = self._render(occurrence)
                if row is None:
                    continue
                dated = _with_row(kept[1], date, row) if kept is not None else (date, row)
                self._held[id(event)] = (event, dated)
            out.append(row)
        return out

    def _render(self, occurrence: Occurrence) -> bytes | None:
        made = rendered([occurrence], self.render, "/api/events")
        self.rendered += 1
        return made[0] if made else None


class Pieces:
    """The Atom, iCalendar and JSON pieces of the merged view's entries."""

    def __init__(
        self, row: Callable[[Occurrence], bytes] | None = None, *, kept_in: Path | None = None
    ) -> None:
        self.atom: PieceCache[Item, bytes] = PieceCache(atom_entries)
        self.ics: PieceCache[Event, Kept] = (
            FiledPieces(PieceFiles(kept_in)) if kept_in is not None else PieceCache(vevents)
        )
        self.changes = ChangeOrder()  # the merged feed's page order (aggregator.publish.paging)
        self.rows = Rows(row or _no_row)
        self._view: Merged | None = None  # the view the pieces were last taken for

    def keep_only(self, items: Sequence[Item], events: Sequence[Event]) -> None:
        """Forget the pieces of entries that left the merged view."""
        self.atom.keep_only(items)
        self.ics.keep_only(events)
        self.rows.keep_only(events)

    def take(self, merged: Merged) -> None:
        """Keep the pieces for `merged` from now on: those of entries that left it are forgotten.

        Every piece held is of an entry of the view taken before, so the entries that left are
        that view's minus this one's, not a walk of every held piece per cache (at 50,000
        entries ~0.1 s a change).
        """
        old, self._view = self._view, merged
        if old is merged:
            return
        if old is None:
            self.keep_only(merged.items, merged.events)
            return
        # Python loops, not set(map(id, ...)): one C call over 50,000 entries holds the GIL
        # for 15-35 ms on a big heap (cache misses), a stall of the event loop.
        kept = {id(item) for item in merged.items}
        gone = [key for item in old.items if (key := id(item)) not in kept]
        self.atom.forget(gone)
        self.ics.forget(gone)
        self.rows.forget(gone)


def _row_at(dated: _Dated, date: _Date) -> bytes | None:
    if isinstance(dated, dict):
        return dated.get(date)
    return dated[1] if dated[0] == date else None


def _with_row(dated: _Dated, date: _Date, row: bytes) -> _Dated:
    if isinstance(dated, dict):
        dated[date] = row
        return dated
    return {dated[0]: dated[1], date: row}


def _no_row(occurrence: Occurrence) -> bytes:
    raise ValueError("these pieces render no JSON rows")
