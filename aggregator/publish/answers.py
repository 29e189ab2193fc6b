"""Rendered pages and JSON answers, kept per data version, request and minute, with ETag/304.

Measured (issue 15): `/` and `/calendar?view=month` cost 254 / 356 ms at 20,000 entries, and
`/api/events` for a month 0.5 s, every time, though the data changes every few seconds at most.
An answer depends on the merged view (kept by identity: a new merge is a new object), the
path and query, the language, and the time; the time counts to the minute, so a notice that
expires or a day that begins shows within a minute, as a `max-age=60` cache would show it.
Only 200 answers with a body are kept; errors are rendered anew. Only answers of the newest
view are kept: each holds its view, and a big tier's old views must not stay alive. A strong
ETag (a hash of the body) lets a client that has the answer get a 304 without any rendering.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from aggregator.publish.parts import Parts, PartsPayload
from aggregator.reader.merge import Merged

ANSWERS = 256  # answers kept (least recently used dropped); a page is ~50-300 kB at 20k
KEPT_HEADERS = ("Content-Type", "Content-Language", "Vary", "X-Content-Type-Options",
                "Referrer-Policy", "Refresh")  # fmt: skip

BIG = 256 * 1024  # bodies from this size on are hashed in a worker thread
Key = tuple[str, str, datetime]  # path and query, language, minute


@dataclass(frozen=True)
class Answer:
    """A kept answer: the merged view it was rendered from, its body, headers and ETag."""

    merged: Merged
    parts: Parts
    headers: tuple[tuple[str, str], ...]


class Answers:
    """Keeps rendered answers per data version; `answer` renders only on a miss."""

    def __init__(self, limit: int = ANSWERS) -> None:
        self.limit = limit
        self.renders = 0  # answers rendered since start (tests, benchmarks)
        self._kept: OrderedDict[Key, Answer] = OrderedDict()

    async def answer(
        self,
        request: web.Request,
        key: Key,
        current: Callable[[], Awaitable[Merged]],
        render: Callable[[], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """Return the kept answer for `key` if the merged view is unchanged, else render it."""
        merged = await current()
        if self._kept and next(iter(self._kept.values())).merged is not merged:
            self._kept.clear()  # a new view: the old answers, and the old view, can go
        kept = self._kept.get(key)
        if kept is None or kept.merged is not merged:
            response = await render()
            self.renders += 1
            if await current() is not merged:
                return response  # the data changed while rendering: not kept
            kept = await self._keep(key, merged, response)
            if kept is None:
                return response  # not kept: an error, or a stream
        self._kept.move_to_end(key)
        return respond(request, kept)

    async def _keep(self, key: Key, merged: Merged, response: web.StreamResponse) -> Answer | None:
        if response.status != 200 or not isinstance(response, web.Response):
            return None
        body = response.body
        if isinstance(body, PartsPayload):
            parts = body.parts  # /api/events: its ETag was made with it, off the loop
        elif isinstance(body, bytes) and len(body) < BIG:
            parts = Parts.of([body])
        elif isinstance(body, bytes):
            parts = await asyncio.to_thread(Parts.of, [body])  # hashing would hold the loop
        else:
            return None
        if self._kept and next(iter(self._kept.values())).merged is not merged:
            self._kept.clear()  # another request kept answers of a newer or older view meanwhile
        headers = tuple((h, response.headers[h]) for h in KEPT_HEADERS if h in response.headers)
        self._kept[key] = answer = Answer(merged, parts, headers)
        while len(self._kept) > self.limit:
            self._kept.popitem(last=False)
        return answer


def respond(request: web.Request, answer: Answer) -> web.Response:
    """Answer with the kept body, or 304 when the client already has this ETag."""
    etag = answer.parts.etag
    headers = dict(answer.headers) | {"ETag": etag}
    tags = request.headers.get("If-None-Match", "")
    if etag in {part.strip().removeprefix("W/") for part in tags.split(",")}:
        headers.pop("Content-Type", None)
        return web.Response(status=304, headers=headers)
    return web.Response(body=answer.parts.body(headers.get("Content-Type", "")), headers=headers)


def key_of(request: web.Request, lang: str, now: datetime) -> Key:
    """Return the key of a request's answer: path and query, language, and the minute."""
    return (request.path_qs, lang, now.replace(second=0, microsecond=0))
