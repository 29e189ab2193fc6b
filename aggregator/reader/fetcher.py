"""The aggregator's only door to the outside: polite, bounded HTTP requests to sources.

Every limit here exists because a source is a stranger's server: it may be slow, huge, a gzip
bomb, a redirect loop or simply gone. The bounded request itself (one deadline, streamed size
caps, few redirects, conditional GET, problems as messages) is `klynge.http`'s; this module
holds the aggregator's policy: what a source is asked for, how many connections one host gets,
and what a fetch means. Whatever happens, callers get a `FetchResult` or a `FetchError` whose
message says in words what went wrong (shown on /status).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import klynge
from klynge.errors import KlyngeError
from klynge.http import Client, HttpError, Limits

# Politeness: a village node is a Raspberry Pi; several sources may share one host.
CONNECTIONS_PER_HOST = 2
CONNECTIONS = 50
PING_TIMEOUT = 5.0
ACCEPT = (
    "application/atom+xml, application/rss+xml;q=0.9, text/calendar;q=0.9, "
    "application/xml;q=0.8, text/xml;q=0.8, */*;q=0.5"
)


# A fetch's timeouts, body caps and redirects are the client's; the connections per host are
# the fetcher's politeness and are set by it (`Fetcher.__init__`).
FetchLimits = Limits
DEFAULT_LIMITS = FetchLimits()


@dataclass(frozen=True)
class FetchResult:
    """The outcome of a successful fetch; `body` is decompressed and empty when not modified."""

    not_modified: bool
    body: bytes
    etag: str
    last_modified: str
    final_url: str
    status: int
    content_type: str = ""  # the Content-Type header as sent (with any charset parameter)


class FetchError(KlyngeError):
    """A source could not be fetched; `message` says why in words for the /status page."""

    status = 502
    code = "fetch"


class Fetcher:
    """Fetches sources over HTTP(S) with conditional GET, timeouts, size caps and few redirects."""

    def __init__(
        self, limits: FetchLimits = DEFAULT_LIMITS, user_agent: str = klynge.USER_AGENT
    ) -> None:
        self.limits = limits
        self.user_agent = user_agent
        polite = replace(limits, connections=CONNECTIONS, connections_per_host=CONNECTIONS_PER_HOST)
        self._http = Client(polite, user_agent=user_agent)

    async def fetch(self, url: str, *, etag: str = "", last_modified: str = "") -> FetchResult:
        """GET `url` conditionally and return its decompressed body; raise FetchError in words."""
        async with _in_words():
            answer = await self._http.get(
                url, etag=etag, last_modified=last_modified, accept=ACCEPT
            )
        return FetchResult(
            not_modified=answer.not_modified,
            body=answer.body,
            etag=answer.etag,
            last_modified=answer.last_modified,
            final_url=answer.url,
            status=answer.status,
            content_type=answer.content_type,
        )

    async def ping(self, url: str, feed_url: str) -> None:
        """POST a WebSub-style publish ping for `feed_url` to `url`; raise FetchError in words."""
        form = {"hub.mode": "publish", "hub.url": feed_url}
        async with _in_words():
            await self._http.post_form(
                url, form, timeout=min(PING_TIMEOUT, self.limits.total_timeout)
            )

    async def close(self) -> None:
        """Close the HTTP session and its connections; the fetcher may be used again after."""
        await self._http.close()


@contextlib.asynccontextmanager
async def _in_words() -> AsyncIterator[None]:
    """Turn the client's HttpError into the FetchError the refresh and /status expect."""
    try:
        yield
    except HttpError as e:
        raise FetchError(e.problem) from e
