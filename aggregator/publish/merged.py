"""The merged view of the cluster: every source's content merged once per change, off the loop.

The refresher tells the view of each source's new content (`changed`); the view merges again
on the next read, in a worker thread, and tells the documents (`on_change`) to be rebuilt.
The merge is kept up to date one source at a time (aggregator.reader.merge_index), so a
change costs that source's entries, not a merge of every source.
Moderation (`moderate`) leaves hidden entries and paused sources out of the merge, so they
leave every output at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from aggregator.reader.merge import Content, Merged, visible
from aggregator.reader.merge_index import MergeIndex, Told


async def _at_once() -> None:
    return None


class MergedView:
    """The cluster's merged entries, merged again after a source's content changed."""

    def __init__(
        self,
        *,
        ready: Callable[[], Awaitable[None]] = _at_once,
        settle: Callable[[], None] = lambda: None,
    ) -> None:
        self.ready = ready  # awaited before a merge: the stored contents are being loaded
        self.settle = settle  # called after each merge, in its thread (aggregator.tuning)
        self.on_change: Callable[[], None] = lambda: None
        self._contents: dict[str, Content] = {}
        self._positions: dict[str, int] = {}  # the order sources were first told (the merge's)
        self._told = 0
        self._index = MergeIndex()
        self._merged: Merged | None = None
        self._merging: tuple[int, asyncio.Future[Merged]] | None = None
        self._generation = 0  # counts changes, so that a merge of older contents is not kept
        self._merger = ThreadPoolExecutor(1, thread_name_prefix="klynge-merge")
        self._hidden: frozenset[str] = frozenset()  # entry ids the host hid
        self._paused: frozenset[str] = frozenset()  # source URLs the host paused
        self._since: dict[str, datetime] = {}  # when each hidden entry was hidden

    def changed(self, url: str, content: Content) -> None:
        """Take a source's new content: the next read merges again, the documents go stale."""
        self._contents[url] = content
        if url not in self._positions:
            self._positions[url] = self._told
            self._told += 1
        self._tell(url)
        self._stale()

    def removed(self, url: str) -> None:
        """Forget a source that is no longer polled: its entries leave the outputs."""
        if self._contents.pop(url, None) is not None:
            self._tell(url)
            del self._positions[url]
            self._stale()

    def moderate(
        self,
        hidden: frozenset[str],
        paused: frozenset[str],
        since: Mapping[str, datetime] | None = None,
    ) -> None:
        """Leave these entries and these sources' entries out from the next merge on.

        `since` tells when each entry was hidden: it leaves the merged feed as a tombstone.
        """
        since = dict(since or {})
        if (hidden, paused, since) != (self._hidden, self._paused, self._since):
            was = self._paused
            self._hidden, self._paused, self._since = hidden, paused, since
            for url in (was ^ paused) & self._contents.keys():
                self._tell(url)
            self._stale()

    def _tell(self, url: str) -> None:
        """Tell the index what this source gives the merge now (nothing when paused or gone)."""
        content = self._contents.get(url)
        given = None if url in self._paused else content
        self._index.tell(Told(url, given, self._positions[url]))

    def _stale(self) -> None:
        self._merged = None
        self._generation += 1
        self.on_change()

    def contents(self) -> list[Content]:
        """Return each source's content but the paused ones', in the order first told."""
        return [c for url, c in self._contents.items() if url not in self._paused]

    def merged(self) -> Merged:
        """Return the merged entries, merging here if needed (tests, CLI, benchmarks)."""
        if self._merged is None:
            self._merged = self._merge(self._hidden, self._since)
        return self._merged

    def _merge(self, hidden: frozenset[str], since: Mapping[str, datetime]) -> Merged:
        merged = visible(self._index.merged(), hidden, since).warm()
        self.settle()
        return merged

    async def current(self) -> Merged:
        """Return the merged entries, merging in a worker thread when something changed.

        A merge after one change costs that source's entries and a copy of the view: off the loop.
        """
        await self.ready()
        if self._merged is not None:
            return self._merged
        generation = self._generation
        if self._merging is None or self._merging[0] != generation:
            loop = asyncio.get_running_loop()
            future = loop.run_in_executor(self._merger, self._merge, self._hidden, self._since)
            self._merging = (generation, future)
        merged = await asyncio.shield(self._merging[1])
        if generation == self._generation:
            self._merged = merged
        return merged

    def close(self) -> None:
        """Stop the merging thread."""
        self._merger.shutdown(wait=True, cancel_futures=True)
