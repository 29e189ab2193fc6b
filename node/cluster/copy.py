"""The node's cached copy of its cluster's upcoming events, for clash warnings (issue 13).

Fetched from each configured aggregator's `/api/events` with `klynge.http` (conditional GET,
caps, a short deadline), refreshed on a schedule, once after each burst of the node's own pings
(when they have been quiet for `QUIET_AFTER_PINGS` seconds) and when a form finds it older than
`[clash] fresh_seconds`; kept in `DIR/cluster.json` so that it survives a restart. An answer is
parsed off the event loop (a cluster's events are up to a few MB of JSON). When an aggregator
is down the last copy stays in use and its age is shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from klynge import __version__
from klynge.http import Client, HttpError, Limits
from klynge.messages import Message, define
from klynge.model import zone
from node.cluster.events import ClusterEvent, events_of, row_of
from node.cluster.health import base_of
from node.config import NodeConfig

log = logging.getLogger("node.cluster")
LIMITS = Limits(
    connect_timeout=3, total_timeout=8, max_compressed=4_000_000, max_decompressed=16_000_000
)
FILE_NAME = "cluster.json"
# After our ping the aggregator fetches our feed, then we fetch its events: once a burst of
# edits (a volunteer saving a form a few times) has gone quiet, not once per ping.
QUIET_AFTER_PINGS = 3.0

COPY_NOT_JSON = define(
    "cluster.copy_not_json", "its /api/events is not the JSON of a Klynge aggregator"
)


@dataclass
class Part:
    """What one aggregator last gave us, with its validators for the next conditional GET."""

    events: list[ClusterEvent] = field(default_factory=list)
    etag: str = ""
    last_modified: str = ""
    fetched: datetime | None = None  # the last successful answer (200 or 304)
    error: Message | None = None  # the last attempt's failure, if it failed


class ClusterCopy:
    """The cluster's upcoming events, fetched politely and kept on disk."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.path = config.data_dir / FILE_NAME
        self.aggregators = tuple(base_of(url) for url in config.aggregators)
        agent = f"Klynge-node/{__version__} (+{config.public_url})"
        self._http = Client(LIMITS, user_agent=agent)
        self.parts = {url: Part() for url in self.aggregators}
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.Task[None] | None = None
        self._burst: asyncio.Task[None] | None = None  # waits for our pings to go quiet
        self._quiet_at = 0.0  # loop time when the pings of this burst count as quiet
        self.quiet = QUIET_AFTER_PINGS  # tests shorten it
        self.fetches = 0
        self.load()

    # --- reading -------------------------------------------------------------------------

    def events(self) -> list[ClusterEvent]:
        """Return every aggregator's events, one copy per id and start."""
        seen: dict[tuple[str, str], ClusterEvent] = {}
        for part in self.parts.values():
            for event in part.events:
                seen.setdefault((event.id, event.start.isoformat()), event)
        return list(seen.values())

    def fetched(self) -> datetime | None:
        """Return when the copy was last fetched from any aggregator (None: never)."""
        times = [p.fetched for p in self.parts.values() if p.fetched is not None]
        return max(times) if times else None

    def failing(self) -> bool:
        """Tell whether the last attempt at some aggregator failed."""
        return any(p.error is not None for p in self.parts.values())

    def age(self) -> timedelta | None:
        """Return how old the copy is by the node's clock."""
        fetched = self.fetched()
        return None if fetched is None else max(self.config.clock.now() - fetched, timedelta())

    # --- fetching ------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Fetch from every aggregator at once, then save the copy."""
        await asyncio.gather(*(self._fetch(url) for url in self.aggregators))
        self.fetches += 1
        await asyncio.get_running_loop().run_in_executor(None, self.save)

    def refresh_soon(self, delay: float = 0.0) -> None:
        """Start a refresh in the background unless one is under way."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._later(delay))

    def refresh_if_old(self) -> None:
        """Start a refresh if the copy is older than `[clash] fresh_seconds` (or missing)."""
        age = self.age()
        if age is None or age.total_seconds() >= self.config.clash.fresh_seconds:
            self.refresh_soon()

    def after_ping(self) -> None:
        """Refresh once our pings have been quiet for a while: the aggregator has them by then."""
        loop = asyncio.get_running_loop()
        self._quiet_at = loop.time() + self.quiet
        if self._burst is None or self._burst.done():
            self._burst = loop.create_task(self._after_burst())

    async def _after_burst(self) -> None:
        loop = asyncio.get_running_loop()
        while (left := self._quiet_at - loop.time()) > 0:
            await asyncio.sleep(left)  # a later ping moved the moment on
        if self._task is not None and not self._task.done():
            await asyncio.shield(self._task)  # it may have read the aggregator before our ping
        self.refresh_soon()

    async def idle(self) -> None:
        """Wait for a burst's refresh to start and for a refresh under way (tests)."""
        if self._burst is not None:
            await asyncio.shield(self._burst)
        if self._task is not None:
            await asyncio.shield(self._task)

    def start(self) -> None:
        """Refresh now and then every `[clash] refresh_minutes`."""
        if self.aggregators:
            self._loop = asyncio.get_running_loop().create_task(self._schedule())

    async def close(self) -> None:
        """Stop refreshing and close the HTTP session."""
        for task in (self._loop, self._burst, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._http.close()

    async def _schedule(self) -> None:
        while True:
            self.refresh_soon()
            await asyncio.sleep(self.config.clash.refresh_minutes * 60)

    async def _later(self, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        try:
            await self.refresh()
        except Exception:  # a broken copy must never break the node
            log.exception("could not refresh the cluster copy")

    def _query(self) -> str:
        today = self.config.clock.now().astimezone(zone(self.config.timezone)).date()
        last = today + timedelta(days=self.config.clash.horizon_days)
        return f"from={today - timedelta(days=1)}&to={last}"

    async def _fetch(self, aggregator: str) -> None:
        part = self.parts[aggregator]
        try:
            response = await self._http.get(
                f"{aggregator}/api/events?{self._query()}",
                etag=part.etag,
                last_modified=part.last_modified,
                accept="application/json",
            )
        except HttpError as e:
            log.info("cluster copy from %s: %s", aggregator, e.problem.english())
            part.error = e.detail
            return
        if not response.not_modified:
            try:
                part.events = await asyncio.to_thread(_events_in, response.body)
            except (ValueError, TypeError, KeyError):
                part.error = Message(COPY_NOT_JSON)
                return
            part.etag, part.last_modified = response.etag, response.last_modified
        part.fetched, part.error = self.config.clock.now(), None

    # --- the file ------------------------------------------------------------------------

    def save(self) -> None:
        """Write the copy atomically (temp file, fsync, rename)."""
        data = {url: _part_json(part) for url, part in self.parts.items()}
        _write_atomically(self.path, json.dumps({"aggregators": data}, ensure_ascii=False))

    def load(self) -> None:
        """Read the last copy back; a damaged or foreign file is ignored (fetched anew)."""
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))["aggregators"]
        except FileNotFoundError:
            return
        except (OSError, ValueError, TypeError, KeyError):
            log.warning("ignoring the damaged cluster copy %s", self.path)
            return
        if not isinstance(raw, dict):
            return
        for url, part in self.parts.items():
            _read_part(part, raw.get(url))


def _events_in(body: bytes) -> list[ClusterEvent]:
    """Return the events of an aggregator's /api/events answer (in a thread: CPU-bound)."""
    return events_of(json.loads(body)["events"])


def _part_json(part: Part) -> dict[str, Any]:
    return {
        "etag": part.etag,
        "last_modified": part.last_modified,
        "fetched": part.fetched.isoformat() if part.fetched else None,
        "events": [row_of(e) for e in part.events],
    }


def _read_part(part: Part, raw: object) -> None:
    if not isinstance(raw, dict):
        return
    part.events = events_of(raw.get("events"))
    part.etag = raw["etag"] if isinstance(raw.get("etag"), str) else ""
    modified = raw.get("last_modified")
    part.last_modified = modified if isinstance(modified, str) else ""
    part.fetched = _aware(raw.get("fetched"))


def _aware(value: object) -> datetime | None:
    try:
        when = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return when if when is not None and when.tzinfo is not None else None


def _write_atomically(path: Path, text: str) -> None:
    temp = path.with_name(path.name + ".tmp")
    with open(temp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
