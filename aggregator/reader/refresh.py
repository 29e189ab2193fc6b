"""Refreshing sources: fetch, parse in a bounded child process, merge, store, invalidate.

Politeness and thrift: a 304 or a byte-identical body costs no parsing and no store write;
a failing source keeps its last good entries and backs off exponentially (at most 6 hours);
store writes are coalesced, so a pass over many changed sources is one file write.
Untrusted work (parsing and validating a body) runs in `aggregator.reader.parse_worker`: a body that
takes too long or too much memory costs that source one fetch, never the aggregator.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from aggregator.config import AggregatorConfig, Source
from aggregator.reader.fetcher import Fetcher, FetchError
from aggregator.reader.merge import Content, Merged, apply_fetch, bind, merge_entries
from aggregator.reader.parse_worker import JobFailed, ParseOverrun, ParseWorker
from aggregator.reader.state import SourceState, backoff
from aggregator.store.sources import Store, state_record
from klynge.atom.reader import read_feed
from klynge.errors import FeedError, StorageError
from klynge.ical.reader import read_calendar
from klynge.model import Event, FeedSource, Item, Tombstone, as_utc
from klynge.recurrence import occurrences

log = logging.getLogger("klynge.aggregator")

PARALLEL_FETCHES = 8  # a pass fetches this many sources at once (hosts are limited by the fetcher)
FLUSH_DELAY = 2.0  # seconds: writes of sources refreshed close together share one file write


@dataclass(frozen=True)
class Parsed:
    """A parsed source body, whatever its format."""

    items: tuple[Item, ...]
    tombstones: tuple[Tombstone, ...]
    meta: FeedSource | None  # the feed's own identity (None for .ics)
    problems: tuple[str, ...]
    limited: str = ""  # why only part of the body was read (the entry limit), in words


@dataclass(frozen=True)
class Outcome:
    """The result of refreshing one source, for the CLI and logs."""

    url: str
    ok: bool
    changed: bool
    words: str


class Refresher:
    """Refreshes sources and keeps their state; all methods run on the event loop."""

    def __init__(
        self,
        config: AggregatorConfig,
        store: Store,
        fetcher: Fetcher,
        *,
        on_change: Callable[[], None] = lambda: None,
        worker: ParseWorker | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.fetcher = fetcher
        self.on_change = on_change
        # Told when loading the stored states failed on a bad record (the app stops then).
        self.on_load_error: Callable[[StorageError], None] = lambda _error: None
        self.states: dict[str, SourceState] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._dirty: set[str] = set()
        self._flush_task: asyncio.Task[int] | None = None
        # Untrusted bodies are parsed in a child process, bounded in time and memory; what
        # is parsed is then bound and applied in one thread (CPU-bound: more threads would
        # only contend for the GIL); another owns the store, because TinyDB is not thread-safe.
        limits = config.limits
        self.worker = worker or ParseWorker(
            timeout=limits.parse_timeout, memory_mb=limits.parse_memory_mb
        )
        self._parser: Executor = ThreadPoolExecutor(1, thread_name_prefix="klynge-parse")
        self._writer: Executor = ThreadPoolExecutor(1, thread_name_prefix="klynge-store")
        self._merger: Executor = ThreadPoolExecutor(1, thread_name_prefix="klynge-merge")
        self._merged: Merged | None = None
        self._merging: tuple[int, asyncio.Future[Merged]] | None = None
        self._generation = 0
        self._closed = False
        self._loading: asyncio.Task[None] | None = None

    def start_loading(self) -> None:
        """Load the stored states in the background; refreshes and merges wait for it.

        With 20,000 stored entries loading takes seconds: the app answers /healthz (and shows
        the sources as new) meanwhile, instead of nothing at all.
        """
        self._loading = asyncio.get_running_loop().create_task(self.load())

    async def ready(self) -> None:
        """Return once the stored states are loaded; raise what the loading raised."""
        if self._loading is not None:
            await asyncio.shield(self._loading)

    @property
    def loading(self) -> bool:
        """Tell whether the stored states are still being loaded."""
        return self._loading is not None and not self._loading.done()

    async def load(self) -> None:
        """Load stored states (off the loop) and add fresh ones for new sources."""
        loop = asyncio.get_running_loop()
        try:
            stored = await loop.run_in_executor(self._writer, self.store.load)
        except StorageError as e:
            self.on_load_error(e)
            raise
        for source in self.config.sources:
            self.states[source.url] = stored.get(source.url) or SourceState(source.url)
        self._changed()

    async def close(self) -> None:
        """Stop the parsing child at once, write pending changes, stop the threads (once)."""
        if self._closed:
            return
        self._closed = True
        await self.worker.close()  # a parse stuck in a loop must not hold the shutdown
        if self._loading is not None:
            (failed,) = await asyncio.gather(self._loading, return_exceptions=True)
            if failed is not None:
                self._dirty.clear()  # nothing was loaded: writing would duplicate documents
        if self._flush_task is not None and not self._flush_task.done():
            self._flush_task.cancel()
            await asyncio.gather(self._flush_task, return_exceptions=True)
        await self.flush()
        self._parser.shutdown(wait=True, cancel_futures=True)
        self._merger.shutdown(wait=True, cancel_futures=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._writer, self.store.close)
        self._writer.shutdown(wait=True)

    # --- the merged view -----------------------------------------------------------------

    def merged(self) -> Merged:
        """Return the merged entries of all sources, merging here if needed (tests, CLI)."""
        if self._merged is None:
            self._merged = merge_entries(self.contents())
        return self._merged

    async def current(self) -> Merged:
        """Return the merged entries, merging in a worker thread when something changed.

        Merging 20,000 entries takes a few hundred milliseconds: never on the event loop.
        """
        await self.ready()
        if self._merged is not None:
            return self._merged
        generation = self._generation
        if self._merging is None or self._merging[0] != generation:
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(self._merger, merge_entries, self.contents())
            self._merging = (generation, future)
        merged = await asyncio.shield(self._merging[1])
        if generation == self._generation:
            self._merged = merged
        return merged

    def contents(self) -> list[Content]:
        """Return each configured source's content, in configuration order."""
        return [self.states[s.url].content for s in self.config.sources if s.url in self.states]

    def _changed(self) -> None:
        self._merged = None
        self._generation += 1
        self.on_change()

    # --- refreshing ----------------------------------------------------------------------

    async def refresh_all(self, *, due_only: bool = False) -> list[Outcome]:
        """Refresh every source (or only those due), a few at a time, then write once."""
        await self.ready()
        gate = asyncio.Semaphore(PARALLEL_FETCHES)
        now = self.config.clock.now()

        async def one(source: Source) -> Outcome:
            async with gate:
                return await self.refresh_source(source)

        chosen = [s for s in self.config.sources if not due_only or self.state(s).due(now)]
        outcomes = await asyncio.gather(*(one(s) for s in chosen))
        await self.flush()
        return list(outcomes)

    async def refresh_source(self, source: Source) -> Outcome:
        """Fetch one source conditionally and merge what changed; a source's faults never raise."""
        await self.ready()
        lock = self._locks.setdefault(source.url, asyncio.Lock())
        async with lock:
            state = self.state(source)
            now = self.config.clock.now()
            state.last_attempt = now
            try:
                return await self._refresh(source, state, now)
            except (FetchError, ParseOverrun) as e:
                return self._failed(state, e.message, now)
            except JobFailed as e:
                log.error("parsing %s failed: %s", source.url, e.message)
                return self._failed(state, f"could not be read ({e.message})", now)
            except FeedError as e:
                return self._failed(state, f"not a usable feed: {e.message}", now)
            except Exception as e:  # a bug or an unforeseen input must not stop the others
                log.exception("refreshing %s failed", source.url)
                return self._failed(state, f"could not be read ({type(e).__name__}: {e})", now)

    def state(self, source: Source) -> SourceState:
        """Return a source's state, creating it for a new source (a stand-in while loading)."""
        if self.loading:
            return self.states.get(source.url) or SourceState(source.url)
        return self.states.setdefault(source.url, SourceState(source.url))

    async def _refresh(self, source: Source, state: SourceState, now: datetime) -> Outcome:
        result = await self.fetcher.fetch(
            source.url, etag=state.etag, last_modified=state.last_modified
        )
        if result.not_modified:
            return self._unchanged(state, now, "not modified (304)")
        digest = hashlib.blake2b(result.body, digest_size=16).hexdigest()
        if digest == state.body_hash:
            return self._unchanged(state, now, "unchanged")
        limit = self.config.limits.max_entries
        parsed = await self.worker.run(
            parse_body, result.body, source, self.config.timezone, now, limit
        )
        loop = asyncio.get_running_loop()
        # Binding and applying are CPU-bound too, but on validated values: in a thread.
        done = await loop.run_in_executor(
            self._parser, partial(settle, parsed, source, state.content, now)
        )
        changed = done.changed or bool(state.failures) or done.problems != state.problems
        changed = changed or parsed.limited != state.limited
        state.limited = parsed.limited
        # While a removal is held back, forget the validators: the next fetch must be a full
        # GET so that it can confirm (or undo) the removal.
        held = bool(done.content.held)
        state.etag, state.last_modified = ("", "") if held else (result.etag, result.last_modified)
        state.body_hash = "" if held else digest
        state.content, state.problems = done.content, done.problems
        self._succeeded(state, now)
        if changed:
            self._mark(state.url)
            self._changed()
        words = f"{len(done.content.entries)} entries"
        return Outcome(
            source.url, True, changed, words + (f"; {done.content.flag}" if held else "")
        )

    def _unchanged(self, state: SourceState, now: datetime, words: str) -> Outcome:
        recovered = bool(state.failures)
        self._succeeded(state, now)
        if recovered:
            self._mark(state.url)
        return Outcome(state.url, True, False, words)

    def _succeeded(self, state: SourceState, now: datetime) -> None:
        state.last_success, state.last_error, state.failures = now, "", 0
        state.next_check = now + self.config.poll_interval

    def _failed(self, state: SourceState, words: str, now: datetime) -> Outcome:
        first = state.failures == 0 or words != state.last_error
        state.failures += 1
        state.last_error = words
        wait = backoff(state.failures, self.config.poll_interval, self.config.limits.max_backoff)
        state.next_check = now + wait
        if first:  # persist the change of health, not every repeat of the same failure
            self._mark(state.url)
        return Outcome(state.url, False, False, f"error: {words}")

    # --- writing -------------------------------------------------------------------------

    def _mark(self, url: str) -> None:
        self._dirty.add(url)

    def schedule_flush(self, delay: float = FLUSH_DELAY) -> None:
        """Write pending changes after `delay` seconds, together with any that follow."""
        if self._flush_task is None or self._flush_task.done():
            self._flush_task = asyncio.get_running_loop().create_task(self._flush_later(delay))

    async def _flush_later(self, delay: float) -> int:
        await asyncio.sleep(delay)
        return await self.flush()

    async def flush(self) -> int:
        """Write every source changed since the last flush, in one file write; return how many."""
        await self.ready()
        if not self._dirty:
            return 0
        urls, self._dirty = sorted(self._dirty), set()
        snapshot = [_snapshot(self.states[u]) for u in urls if u in self.states]
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, partial(_save, self.store, snapshot))


def _snapshot(state: SourceState) -> SourceState:
    # Scalars are copied now; the content is immutable, so serialising it later is safe.
    return SourceState(**{k: getattr(state, k) for k in state.__dataclass_fields__})


def _save(store: Store, states: Iterable[SourceState]) -> int:
    return store.save([state_record(s) for s in states])


@dataclass(frozen=True)
class Ingested:
    """A source's new content after a good fetch, and whether it differs from the old."""

    content: Content
    problems: tuple[str, ...]
    changed: bool


def ingest(body: bytes, source: Source, timezone: str, old: Content, now: datetime) -> Ingested:
    """Parse a body, bind its entries to their origin and apply it to the old content."""
    return settle(parse_body(body, source, timezone, now), source, old, now)


def settle(parsed: Parsed, source: Source, old: Content, now: datetime) -> Ingested:
    """Bind parsed entries to their origin and apply them to the source's old content."""
    origin = origin_for(source, parsed.meta)
    items, tombs = bind(
        parsed.items, parsed.tombstones, origin=origin, trust_source=source.kind == "aggregator"
    )
    content = apply_fetch(old, items, tombs, origin=origin, now=now)
    return Ingested(content, parsed.problems, content != old)


def origin_for(source: Source, meta: FeedSource | None) -> FeedSource:
    """Return the provenance stamped on a source's entries: its own feed identity.

    The feed's id is the feed's claim; the self link is the URL this aggregator polls, which
    no publisher can choose. Entries are told apart by both (aggregator.reader.merge.origin_of), so
    a feed that copies another village's feed id still never merges with that village's
    entries, whichever of the two is polled first.
    """
    feed_id = meta.id if meta and meta.id else source.url
    return FeedSource(
        id=feed_id,
        title=source.name or (meta.title if meta else "") or source.url,
        updated=meta.updated if meta else None,
        self_url=source.url,
        author=meta.author if meta else "",
    )


def parse_body(
    body: bytes, source: Source, timezone: str, now: datetime, max_entries: int | None = None
) -> Parsed:
    """Parse a fetched body as the source's kind says (untrusted: runs in the parse worker)."""
    if source.kind == "ics":
        events, words = read_calendar(
            body, default_timezone=timezone, now=now, max_events=max_entries
        )
        limited = next((w for w in words if w.startswith("The calendar has ")), "")
        kept, dropped = _expandable(events)
        return Parsed(kept, (), None, (*words, *dropped), limited)
    feed = read_feed(body, url=source.url, default_timezone=timezone, max_entries=max_entries)
    if not feed.complete:
        # A truncated or malformed document: what feedparser recovers may itself be cut short
        # and lacks atom:source and tombstones, so none of it is used.
        cause = next((p.message for p in feed.problems if p.field == "feed"), "")
        raise FeedError(f"the document is not well-formed XML, so it was ignored. {cause}".strip())
    meta = FeedSource(
        id=feed.meta.id,
        title=feed.meta.title,
        updated=feed.meta.updated,
        self_url=feed.meta.self_url,
        author=feed.meta.author,
    )
    cut = [p for p in feed.problems if p.field == "entries" and not p.entry_id]
    problems = tuple(_problem_words(p) for p in feed.problems if p not in cut)
    items, dropped = _expandable(feed.items)
    limited = cut[0].message if cut else ""
    return Parsed(items, feed.tombstones, meta, (*problems, *dropped), limited)


def _expandable(items: Iterable[Item]) -> tuple[tuple[Item, ...], list[str]]:
    """Drop the events whose repeat rule the outputs could not expand or write, saying why.

    Run in the parse worker, so a rule that costs too much costs this one fetch; what passes
    here can be expanded by every page and written into every output.
    """
    kept: list[Item] = []
    dropped: list[str] = []
    for item in items:
        words = _rule_trouble(item)
        if words:
            dropped.append(f"entry {item.id} (rrule): {words}")
        else:
            kept.append(item)
    return tuple(kept), dropped


def _rule_trouble(item: Item) -> str:
    if not isinstance(item, Event) or not item.rrule:
        return ""
    first = as_utc(item.start, item.timezone)
    try:
        occurrences(item, first, first + timedelta(days=1), limit=1)
    except (ValueError, TypeError, OverflowError) as e:
        return f"the repeat rule cannot be expanded ({e}), so it was ignored"
    return ""


def _problem_words(problem: Any) -> str:
    where = f"entry {problem.entry_id}" if problem.entry_id else "the feed"
    field = f" ({problem.field})" if problem.field else ""
    return f"{where}{field}: {problem.message}"
