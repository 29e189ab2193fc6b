"""The cluster's view of our feed: what each aggregator we ping says about reading it.

Each aggregator publishes its sources' health at `/api/sources` (design.md); the admin status
page shows our row from each: when it last fetched our feed, whether that fetch was accepted,
and the problems it found. The answers are untrusted: fetched with `klynge.http` (small caps,
a short deadline, all aggregators at once), checked field by field, and cached for a minute
so that reloading the page does not fetch again.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from klynge import __version__
from klynge.http import Client, HttpError, Limits
from klynge.messages import Message, define
from klynge.model import zone
from node.config import NodeConfig, ping_url

LIMITS = Limits(
    connect_timeout=3, total_timeout=5, max_compressed=2_000_000, max_decompressed=8_000_000
)
CACHE_SECONDS = 60.0
MAX_PROBLEMS = 20
MAX_TEXT = 500

NOT_LISTED = define("cluster.not_listed", "this aggregator does not list our feed %(feed)s")
NOT_JSON = define("cluster.not_json", "its /api/sources is not the JSON of a Klynge aggregator")


@dataclass(frozen=True)
class ClusterView:
    """One aggregator's view of our feed, or why it could not be read."""

    aggregator: str  # its base URL
    listed: bool = False
    health: str = ""  # new, ok, failing, stale (the aggregator's words)
    last_attempt: datetime | None = None  # in the node's zone
    last_success: datetime | None = None
    accepted: bool = False
    last_error: str = ""
    summary: str = ""
    problems: tuple[str, ...] = field(default_factory=tuple)
    error: Message | None = None  # the aggregator could not be asked, or does not list us


def base_of(aggregator: str) -> str:
    """Return an aggregator's base URL from its configured base or /ping URL."""
    return ping_url(aggregator).removesuffix("/ping")


class Cluster:
    """Asks the aggregators how they read our feed; answers kept for CACHE_SECONDS."""

    def __init__(self, config: NodeConfig) -> None:
        self.feed_url = config.feed_url
        self.timezone = config.timezone
        self.aggregators = tuple(base_of(url) for url in config.aggregators)
        agent = f"Klynge-node/{__version__} (+{config.public_url})"
        self._http = Client(LIMITS, user_agent=agent)
        self._cache: dict[str, tuple[float, ClusterView]] = {}

    async def views(self) -> list[ClusterView]:
        """Return each aggregator's view of our feed (fresh or at most a minute old)."""
        return list(await asyncio.gather(*(self._view(url) for url in self.aggregators)))

    async def _view(self, aggregator: str) -> ClusterView:
        now = asyncio.get_running_loop().time()
        cached = self._cache.get(aggregator)
        if cached is not None and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        view = await self._ask(aggregator)
        self._cache[aggregator] = (now, view)
        return view

    async def _ask(self, aggregator: str) -> ClusterView:
        try:
            response = await self._http.get(f"{aggregator}/api/sources", accept="application/json")
        except HttpError as e:
            return ClusterView(aggregator, error=e.detail)
        try:
            rows = json.loads(response.body)["sources"]
            if not isinstance(rows, list):
                raise TypeError("sources is not a list")
        except (ValueError, TypeError, KeyError):
            return ClusterView(aggregator, error=Message(NOT_JSON))
        return view_of(aggregator, rows, self.feed_url, self.timezone)

    async def close(self) -> None:
        """Close the HTTP session."""
        await self._http.close()


def view_of(aggregator: str, rows: list[Any], feed_url: str, tz: str) -> ClusterView:
    """Return our row of an aggregator's /api/sources as a view, checked field by field."""
    wanted = feed_url.rstrip("/")
    row = next(
        (r for r in rows if isinstance(r, dict) and _text(r.get("url")).rstrip("/") == wanted),
        None,
    )
    if row is None:
        return ClusterView(aggregator, error=Message(NOT_LISTED, {"feed": feed_url}))
    problems = row.get("problems")
    return ClusterView(
        aggregator,
        listed=True,
        health=_text(row.get("health")),
        last_attempt=_when(row.get("last_attempt"), tz),
        last_success=_when(row.get("last_success"), tz),
        accepted=row.get("failures") == 0 and bool(row.get("last_success")),
        last_error=_text(row.get("last_error")),
        summary=_text(row.get("summary")),
        problems=_texts(problems),
    )


def _when(value: object, tz: str) -> datetime | None:
    try:
        when = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return when.astimezone(zone(tz)) if when is not None and when.tzinfo else None


def _texts(value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(_text(v) for v in value if isinstance(v, str))[:MAX_PROBLEMS]


def _text(value: object) -> str:
    return value[:MAX_TEXT] if isinstance(value, str) else ""
