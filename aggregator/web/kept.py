"""The hook that serves a page or JSON answer from aggregator.publish.answers when it can."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import wraps

from aiohttp import web

from aggregator.keys import ANSWERS, CONFIG, MERGED
from aggregator.publish.answers import key_of
from klynge.web import request_lang

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def kept(handler: Handler) -> Handler:
    """Wrap a handler whose answer depends only on the data, the URL, the language and time."""

    @wraps(handler)
    async def serve(request: web.Request) -> web.StreamResponse:
        key = key_of(request, request_lang(request), request.app[CONFIG].clock.now())
        answers = request.app[ANSWERS]
        return await answers.answer(
            request, key, request.app[MERGED].current, lambda: handler(request)
        )

    return serve
