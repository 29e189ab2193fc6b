"""Refreshing sources: fetch, parse in a bounded child process, merge, mark.

Politeness and thrift: a 304 or a byte-identical body costs no parsing and no store write;
a failing source keeps its last good entries and backs off exponentially (at most 6 hours);
a source whose state or entries changed is written at once, to its own file, in the store's
thread (aggregator.store.sources). What a fetch does to a source's health is `SourceState`'s;
who is told of new content is the caller's (`on_change`: the merged view,
aggregator.publish.merged).
Untrusted work (parsing and validating a body) runs in `aggregator.reader.parse_worker`: a body that
takes too long or too much memory costs that source one fetch, never the aggregator.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial

from aggregator.config import AggregatorConfig, Source
from aggregator.reader.absence import (
    apply_page,
    reuse_unchanged,
    revived,
    with_inferred_tombstones,
)
from aggregator.reader.carpools import without_ended_carpools
from aggregator.reader.fetcher import Fetcher, FetchError, FetchResult
from aggregator.reader.merge import Content, apply_fetch, bind
from aggregator.reader.parse import Parsed, parse_body
from aggregator.reader.parse_worker import JobFailed, ParseOverrun, ParseWorker
from aggregator.reader.state import Polling, SourceState
from aggregator.reader.walk import WHOLE_WALK_EVERY, joined, walk
from aggregator.store.sources import Store
from klynge.errors import FeedError, StorageError
from klynge.messages import Message, define
from klynge.model import FeedSource

log = logging.getLogger("klynge.aggregator")

PARALLEL_FETCHES = 8  # a pass fetches this many sources at once (hosts are limited by the fetcher)

# What a refresh says (CLI, logs, /status; Danish in aggregator/locale).
NOT_MODIFIED = define("refresh.not_modified", "not modified (304)")
UNCHANGED = define("refresh.unchanged", "unchanged")
ENTRIES = define("refresh.entries", "%(n)s entry", "%(n)s entries", count="n")
ENTRIES_HELD = define(
    "refresh.entries_held", "%(n)s entry; %(flag)s", "%(n)s entries; %(flag)s", count="n"
)
ERROR = define("refresh.error", "error")
NOT_USABLE = define("refresh.not_usable", "not a usable feed")
COULD_NOT_READ = define("refresh.could_not_read", "could not be read (%(detail)s)")


@dataclass(frozen=True)
class Outcome:
    """The result of refreshing one source, for the CLI and logs."""

    url: str
    ok: bool
    changed: bool
    message: Message

    @property
    def words(self) -> str:
        """Return the outcome in English (the CLI and logs speak English)."""
        return self.message.english()


class Refresher:
    """Refreshes sources and keeps their state; all methods run on the event loop."""

    def __init__(
        self,
        config: AggregatorConfig,
        store: Store,
        fetcher: Fetcher,
        *,
        on_change: Callable[[str, Content], None] = lambda _url, _content: None,
        worker: ParseWorker | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.fetcher = fetcher
        self.on_change = on_change  # told of a source's new content (url, content)
        self.polling = Polling(config.poll_interval, config.limits.max_backoff)
        # Told when loading the stored states failed on a bad record (the app stops then).
        self.on_load_error: Callable[[StorageError], None] = lambda _error: None
        self.on_remove: Callable[[str], None] = lambda _url: None  # told of a removed source
        self.paused: frozenset[str] = frozenset()  # sources the host paused: not fetched
        self.states: dict[str, SourceState] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._writing: dict[str, asyncio.Future[None]] = {}  # a source's write in the store thread
        # Untrusted bodies are parsed in a child process, bounded in time and memory; what
        # is parsed is then bound and applied in one thread (CPU-bound: more threads would
        # only contend for the GIL); another owns the store, because TinyDB is not thread-safe.
        limits = config.limits
        self.worker = worker or ParseWorker(
            timeout=limits.parse_timeout, memory_mb=limits.parse_memory_mb
        )
        self._parser: Executor = ThreadPoolExecutor(1, thread_name_prefix="klynge-parse")
        self._writer: Executor = ThreadPoolExecutor(1, thread_name_prefix="klynge-store")
        self._closed = False
        self._loading: asyncio.Task[None] | None = None
        # When each source was last read whole (aggregator.reader.walk.WHOLE_WALK_EVERY); the
        # stored entries count as read whole at the start.
        self._started = config.clock.now()
        self._walked: dict[str, datetime] = {}

    def start_loading(self) -> None:
        """Load the stored states in the background; refreshes and merges wait for it.

        With 20,000 stored entries loading takes seconds: the app answers /healthz (and shows
        the sources as new) meanwhile, instead of nothing at all.
        """
        self._loading = asyncio.get_running_loop().create_task(self.load())
        # A failure is told through on_load_error (and raised again to whoever awaits
        # `ready`): when it comes before anyone awaits, asyncio must not log it as unretrieved.
        self._loading.add_done_callback(lambda task: task.cancelled() or task.exception())

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
            urls = [source.url for source in self.config.sources]
            stored = await loop.run_in_executor(self._writer, self.store.load, urls)
        except StorageError as e:
            self.on_load_error(e)
            raise
        for source in self.config.sources:
            self.states[source.url] = stored.get(source.url) or SourceState(source.url)
            self.on_change(source.url, self.states[source.url].content)

    async def add_source(self, source: Source) -> None:
        """Start polling a new source; one that was a source before gets its stored entries."""
        await self.ready()
        loop = asyncio.get_running_loop()
        stored = await loop.run_in_executor(self._writer, self.store.load, [source.url])
        self.config = replace(self.config, sources=(*self.config.sources, source))
        self.states[source.url] = stored.get(source.url) or SourceState(source.url)
        self.on_change(source.url, self.states[source.url].content)

    def remove_source(self, url: str) -> None:
        """Stop polling a source; its entries leave the outputs (its file stays, as documented)."""
        sources = tuple(s for s in self.config.sources if s.url != url)
        self.config = replace(self.config, sources=sources)
        self.states.pop(url, None)
        self.on_remove(url)

    async def close(self) -> None:
        """Stop the parsing child at once, finish the writes under way, stop the threads (once)."""
        if self._closed:
            return
        self._closed = True
        await self.worker.close()  # a parse stuck in a loop must not hold the shutdown
        if self._loading is not None:
            await asyncio.gather(self._loading, return_exceptions=True)
        await asyncio.gather(*self._writing.values(), return_exceptions=True)
        self._parser.shutdown(wait=True, cancel_futures=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._writer, self.store.close)
        self._writer.shutdown(wait=True)

    # --- refreshing ----------------------------------------------------------------------

    async def refresh_all(self, *, due_only: bool = False) -> list[Outcome]:
        """Refresh every source (or only those due), a few at a time."""
        await self.ready()
        gate = asyncio.Semaphore(PARALLEL_FETCHES)
        now = self.config.clock.now()
        await self._drop_ended_carpools(now)

        async def one(source: Source) -> Outcome:
            async with gate:
                return await self.refresh_source(source)

        chosen = [
            s
            for s in self.config.sources
            if s.url not in self.paused and (not due_only or self.state(s).due(now))
        ]
        outcomes = await asyncio.gather(*(one(s) for s in chosen))
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
            except (FetchError, ParseOverrun) as e:  # the last good entries are kept
                return self._failed(state, e.detail, now)
            except JobFailed as e:
                log.error("parsing %s failed: %s", source.url, e.message)
                return self._failed(state, Message(COULD_NOT_READ, {"detail": e.message}), now)
            except FeedError as e:
                return self._failed(state, Message(NOT_USABLE, cause=e.detail), now)
            except Exception as e:  # a bug or an unforeseen input must not stop the others
                log.exception("refreshing %s failed", source.url)
                detail = f"{type(e).__name__}: {e}"
                return self._failed(state, Message(COULD_NOT_READ, {"detail": detail}), now)
            finally:
                await self._written(source.url)  # on disk before the outcome is told

    async def _drop_ended_carpools(self, now: datetime) -> None:
        """Drop ended carpool posts from every source, answering or not (reader.carpools)."""
        for url, state in list(self.states.items()):
            fresh = without_ended_carpools(state.content, now)
            if fresh is not None:
                state.content = fresh
                self._mark(url)
                await self._written(url)
                if self.config.source(url) is not None:
                    self.on_change(url, fresh)

    def state(self, source: Source) -> SourceState:
        """Return a source's state, creating it for a new source (a stand-in while loading)."""
        if self.loading:
            return self.states.get(source.url) or SourceState(source.url)
        return self.states.setdefault(source.url, SourceState(source.url))

    async def _refresh(self, source: Source, state: SourceState, now: datetime) -> Outcome:
        # The daily walk over every page asks for the first page whole, changed or not.
        whole = now - self._walked.get(source.url, self._started) >= WHOLE_WALK_EVERY
        etag, modified = ("", "") if whole else (state.etag, state.last_modified)
        result = await self.fetcher.fetch(source.url, etag=etag, last_modified=modified)
        if result.not_modified:
            return self._unchanged(state, result, now, Message(NOT_MODIFIED))
        digest = hashlib.blake2b(result.body, digest_size=16).hexdigest()
        if digest == state.body_hash and not whole:
            return self._unchanged(state, result, now, Message(UNCHANGED))
        parsed = await self._parse(result.body, source, now)
        if parsed.paged:
            parsed = await self._walk(parsed, source, result, state.content, now, whole=whole)
        if whole:
            self._walked[source.url] = now
        loop = asyncio.get_running_loop()
        # Binding and applying are CPU-bound too, but on validated values: in a thread.
        done = await loop.run_in_executor(
            self._parser, partial(settle, parsed, source, state.content, now)
        )
        held = bool(done.content.held)
        changed = self._took(state, done, parsed.limited, result, digest, now)
        if changed:
            self._mark(state.url)
        if done.changed and self.config.source(state.url) is not None:  # not removed meanwhile
            self.on_change(state.url, done.content)
        count = {"n": len(done.content.entries)}
        flag = done.content.flag
        words = (
            Message(ENTRIES_HELD, {**count, "flag": flag})
            if held and flag
            else Message(ENTRIES, count)
        )
        return Outcome(source.url, True, done.changed, words)

    async def _parse(self, body: bytes, source: Source, now: datetime) -> Parsed:
        limit = self.config.limits.max_entries
        return await self.worker.run(parse_body, body, source, self.config.timezone, now, limit)

    async def _walk(
        self,
        first: Parsed,
        source: Source,
        result: FetchResult,
        old: Content,
        now: datetime,
        *,
        whole: bool,
    ) -> Parsed:
        """Read the pages after the first while they hold news (aggregator.reader.walk)."""
        pages = await walk(
            first,
            result.final_url,
            old,
            self.fetcher.fetch,
            lambda body: self._parse(body, source, now),
            whole=whole,
        )
        return joined(pages)

    def _took(
        self,
        state: SourceState,
        done: Ingested,
        limited: Message | None,
        result: FetchResult,
        digest: str,
        now: datetime,
    ) -> bool:
        content, problems = done.content, done.problems
        if content.held:
            return state.held_back(
                now, self.polling, content=content, problems=problems, limited=limited
            )
        return state.succeeded(
            now,
            self.polling,
            content=content,
            problems=problems,
            limited=limited,
            etag=result.etag,
            last_modified=result.last_modified,
            body_hash=digest,
        )

    def _unchanged(
        self, state: SourceState, result: FetchResult, now: datetime, words: Message
    ) -> Outcome:
        news = state.not_modified(
            now, self.polling, etag=result.etag, last_modified=result.last_modified
        )
        if news:
            self._mark(state.url)
        return Outcome(state.url, True, False, words)

    def _failed(self, state: SourceState, words: Message, now: datetime) -> Outcome:
        if state.failed(words, now, self.polling):
            self._mark(state.url)  # a change of health, not every repeat of the same failure
            log.warning("%s is failing: %s", state.url, words.english())
        return Outcome(state.url, False, False, Message(ERROR, cause=words))

    # --- writing -------------------------------------------------------------------------

    def _mark(self, url: str) -> None:
        """Start writing the source's state and entries now, in the store's one thread."""
        loop = asyncio.get_running_loop()
        snapshot = _snapshot(self.states[url])
        self._writing[url] = loop.run_in_executor(self._writer, self.store.save, snapshot)

    async def _written(self, url: str) -> None:
        """Wait for the source's write, if one was started; a failed write is logged."""
        future = self._writing.pop(url, None)
        if future is None:
            return
        try:
            await future
        except StorageError as e:
            # The disk is full or gone: the source stays served from memory, and its next
            # change is written again (what a restart misses meanwhile, a fetch brings back).
            log.error("could not store %s: %s", url, e.message)


def _snapshot(state: SourceState) -> SourceState:
    # Scalars are copied now; the content is immutable, so serialising it later is safe.
    return replace(state)


@dataclass(frozen=True)
class Ingested:
    """A source's new content after a good fetch, and whether it differs from the old."""

    content: Content
    problems: tuple[Message, ...]
    changed: bool


def ingest(body: bytes, source: Source, timezone: str, old: Content, now: datetime) -> Ingested:
    """Parse a body, bind its entries to their origin and apply it to the old content."""
    return settle(parse_body(body, source, timezone, now), source, old, now)


def settle(parsed: Parsed, source: Source, old: Content, now: datetime) -> Ingested:
    """Bind parsed entries to their origin and apply them to the source's old content."""
    origin = origin_for(source, parsed.meta)
    bound, tombs = bind(
        parsed.items, parsed.tombstones, origin=origin, trust_source=source.kind == "aggregator"
    )
    items = reuse_unchanged(bound, old)
    # An entry a read lists without a tombstone lives (a publisher never lists both).
    base = revived(old, items, tombs)
    if parsed.paged:
        content = apply_page(base, items, tombs, origin=origin, now=now)
    else:
        fetched = apply_fetch(base, items, tombs, origin=origin, now=now)
        content = with_inferred_tombstones(old, fetched, now)
    changed = content != old
    # The old object when nothing changed: SourceState then sees "no change" by identity.
    return Ingested(content.warm() if changed else old, parsed.problems, changed)


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
