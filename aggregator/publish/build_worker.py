"""The published documents are built in one long-lived child process, which returns bytes.

Building the feed and calendar of 20,000 entries makes hundreds of megabytes of short-lived
objects (feedgen/lxml, icalendar) and seconds of CPU under the GIL: in the serving process
that stalled the event loop and left the heap bloated, which took process-wide knobs (the
switch interval, gc.disable, malloc_trim, one malloc arena) to hide. In a child none of that
reaches the web server, and no knob is needed. `bench/serve_bench.py` measures both designs.

The child keeps the last merged view it was sent. A new view travels as a delta: each entry
the child already holds (the merge keeps unchanged entries as the same objects) goes as its
slot number, only new or changed entries are pickled. A full view of 20,000 entries costs
about 0.9 s to pickle and 0.6 s to unpickle (`python -m bench.serve_bench` prints it); a
change in one village costs that village's entries. The child is started from the same
forkserver as the parse worker (which never runs threads, so forking it is safe); one that
dies or overruns is replaced by the next build.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any

from aggregator.child import Child
from aggregator.config import AggregatorConfig
from aggregator.publish.documents import Key, build, warm_up
from aggregator.reader import parse_worker
from aggregator.reader.merge import Merged
from klynge.model import Item, Tombstone

log = logging.getLogger("klynge.aggregator")

BUILD_TIMEOUT = 300.0  # seconds; 20,000 entries take a few here, a Pi core is 3-5x slower
PRELOAD = [*parse_worker.PRELOAD, "aggregator.publish.build_worker"]

# What the parent sends for a view: per entry the child's slot number or the entry itself.
Refs = list[int | Item]
# What to build: the configuration, the document's key and the serving process's `now`.
Job = tuple[AggregatorConfig, Key, datetime]


class BuildFailed(Exception):
    """A document could not be built; `message` says why, in words."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class DocumentWorker:
    """Builds documents in one child process, one at a time; the child keeps the last view."""

    def __init__(self, *, timeout: float = BUILD_TIMEOUT) -> None:
        self.timeout = timeout
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        self._child = Child(context, serve_builds, (), "klynge-build")
        self._view: Merged | None = None  # the view the child holds
        self._slots: dict[int, int] = {}  # id() of each entry the child holds -> its slot
        self._lock = asyncio.Lock()
        # The pipe and the child belong to this thread: blocking I/O never runs on the loop.
        self._io = ThreadPoolExecutor(1, thread_name_prefix="klynge-build-io")
        self._closed = False
        self._started_with = 0  # the child whose view `_view` is
        self._kills = 0  # children killed on purpose (overrun, shutdown): not restarted then

    @property
    def started(self) -> int:
        """Return how many children were started so far (a restart after a death counts)."""
        return self._child.started

    @property
    def pid(self) -> int | None:
        """Return the child's process id, if one runs."""
        return self._child.pid

    async def start(self) -> None:
        """Start the child now (else the first build does)."""
        async with self._lock:
            await asyncio.get_running_loop().run_in_executor(self._io, self._connection)

    async def build(
        self, config: AggregatorConfig, merged: Merged, key: Key, now: datetime
    ) -> bytes:
        """Return the document `key` built from `merged` in the child; raise BuildFailed."""
        async with self._lock:
            if self._closed:
                raise BuildFailed("the aggregator is stopping")
            loop = asyncio.get_running_loop()
            reply = loop.run_in_executor(self._io, self._call, (config, key, now), merged)
            try:
                status, value = await asyncio.wait_for(asyncio.shield(reply), self.timeout)
            except TimeoutError:
                self._signal_kill()  # the I/O thread then sees the pipe close and cleans up
                await asyncio.gather(reply, return_exceptions=True)
                raise BuildFailed(f"building took more than {self.timeout:g} s") from None
        if status != "ok":
            raise BuildFailed(str(value))
        return value  # type: ignore[no-any-return]

    def _call(self, job: Job, merged: Merged) -> tuple[str, Any]:
        kills = self._kills
        reply = self._exchange(job, merged, kills)
        if reply[0] == "died" and kills == self._kills and not self._closed:
            log.warning("the document builder stopped unexpectedly; starting a new one")
            reply = self._exchange(job, merged, kills)  # a fresh child, sent the whole view
        return reply

    def _exchange(self, job: Job, merged: Merged, kills: int) -> tuple[str, Any]:
        try:
            conn = self._connection()
            if kills != self._kills:  # timed out or closed before the child was there
                raise EOFError
            view = self._delta(merged)
            conn.send((job, view))
            self._holds(merged)
            reply: tuple[str, Any] = conn.recv()
        except (EOFError, OSError):
            self._reap()
            return ("died", "the document builder stopped unexpectedly")
        return reply

    def _delta(self, merged: Merged) -> tuple[Refs, tuple[Tombstone, ...]] | None:
        if merged is self._view:
            return None
        slots = self._slots
        refs: Refs = [slots.get(id(item), item) for item in merged.items]
        return refs, merged.tombstones

    def _holds(self, merged: Merged) -> None:
        # Holding the view keeps its entries alive, so their id()s cannot be reused.
        if merged is not self._view:
            self._view = merged
            self._slots = {id(item): n for n, item in enumerate(merged.items)}

    def _connection(self) -> Connection:
        conn = self._child.connection()
        if self._child.started != self._started_with:  # a new child holds nothing
            self._started_with = self._child.started
            self._view, self._slots = None, {}
        return conn

    def _signal_kill(self) -> None:
        self._kills += 1
        self._child.kill()

    def _reap(self) -> None:
        self._child.reap()
        self._view, self._slots = None, {}  # a new child holds nothing

    async def close(self) -> None:
        """Kill the child, whatever it is doing, and stop the I/O thread (without waiting)."""
        self._closed = True
        self._signal_kill()
        with contextlib.suppress(RuntimeError):
            self._io.submit(self._reap)  # after a running build, which the kill ends at once
        self._io.shutdown(wait=False)


def serve_builds(conn: Connection) -> None:
    """Answer build requests from `conn` until it closes (the child process's main function)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the parent, which kills us
    warm_up()
    held: tuple[Item, ...] = ()
    tombstones: tuple[Tombstone, ...] = ()
    while True:
        try:
            (config, key, now), view = conn.recv()
        except (EOFError, OSError):
            return
        if view is not None:
            refs, tombstones = view
            held = tuple(held[r] if isinstance(r, int) else r for r in refs)
        conn.send(_answer((config, key, now), Merged(held, tombstones)))


def _answer(job: Job, merged: Merged) -> tuple[str, Any]:
    # Errors travel as words: an exception object may not survive pickling.
    config, key, now = job
    try:
        return ("ok", build(config, merged, key, now))
    except Exception as e:  # a bug must cost this document, not the child
        log.exception("building %s failed", "/".join(key))
        return ("error", f"{type(e).__name__}: {e}")
