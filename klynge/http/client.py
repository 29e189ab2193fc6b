"""The outbound client: one session, one deadline per request, few redirects, conditional GET."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from types import TracebackType

import aiohttp
from yarl import URL

import klynge
from klynge.http.body import ACCEPT_ENCODING, read_capped
from klynge.http.problems import (
    BAD_LOCATION,
    CONNECT,
    NO_LOCATION,
    NOT_HTTP,
    PHRASES,
    REDIRECT_NOT_HTTP,
    REDIRECTS,
    STATUS,
    STATUS_BARE,
    TIMEOUT,
    HttpError,
    describe,
    fail,
    printable,
)
from klynge.messages import Message
from klynge.model import is_http_url

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class Limits:
    """Timeouts (seconds), body caps (bytes), redirects and connections of one client."""

    connect_timeout: float = 10
    total_timeout: float = 30
    max_compressed: int = 5_000_000
    max_decompressed: int = 20_000_000
    max_redirects: int = 3
    connections: int = 20
    connections_per_host: int = 4


@dataclass(frozen=True)
class Response:
    """A final answer: a 2xx with its decoded body, or a 304 (empty body) to keep ours."""

    status: int
    body: bytes
    etag: str
    last_modified: str
    url: str  # after redirects
    content_type: str = ""  # the Content-Type header as sent (with any charset parameter)

    @property
    def not_modified(self) -> bool:
        """Say whether the server answered 304 Not Modified."""
        return self.status == 304


def open_session(limits: Limits, user_agent: str = klynge.USER_AGENT) -> aiohttp.ClientSession:
    """Return a session with our User-Agent, timeouts and connection limits, keeping no cookies."""
    timeout = aiohttp.ClientTimeout(
        total=limits.total_timeout,
        sock_connect=limits.connect_timeout,
        sock_read=limits.total_timeout,
    )
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(
            limit=limits.connections, limit_per_host=limits.connections_per_host
        ),
        timeout=timeout,
        headers={"User-Agent": user_agent},
        # Servers must not track us, and one server's cookies must not reach another.
        cookie_jar=aiohttp.DummyCookieJar(),
        # We decompress ourselves to count wire bytes and cap the output.
        auto_decompress=False,
    )


class Client:
    """Bounded outbound requests over one lazily opened session; errors raise HttpError."""

    def __init__(self, limits: Limits = Limits(), *, user_agent: str = klynge.USER_AGENT) -> None:
        self.limits = limits
        self.user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def get(
        self,
        url: str,
        *,
        etag: str = "",
        last_modified: str = "",
        accept: str = "",
        timeout: float | None = None,
    ) -> Response:
        """GET `url` conditionally (RFC 9110 §13.1) and return the final decoded answer."""
        headers = {"Accept-Encoding": ACCEPT_ENCODING}
        if accept:
            headers["Accept"] = accept
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        async with self._guarded(timeout or self.limits.total_timeout):
            return await self._follow(url, headers, etag, last_modified)

    async def post_form(
        self, url: str, form: Mapping[str, str], *, timeout: float | None = None
    ) -> int:
        """POST a urlencoded form without following redirects; return the 2xx status."""
        _check_url(url)
        async with self._guarded(timeout or self.limits.total_timeout):
            session = self._client()
            async with session.post(url, data=dict(form), allow_redirects=False) as resp:
                if not 200 <= resp.status < 300:
                    raise _status_error(resp)
                return resp.status

    async def close(self) -> None:
        """Close the session and its connections; the client may be used again after."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        """Return the session, opening it inside the running loop on first use."""
        if self._session is None or self._session.closed:
            self._session = open_session(self.limits, self.user_agent)
        return self._session

    @contextlib.asynccontextmanager
    async def _guarded(self, seconds: float) -> AsyncIterator[None]:
        """Enforce one deadline and turn every network failure into an HttpError."""
        try:
            async with asyncio.timeout(seconds):
                yield
        except HttpError:
            raise
        except aiohttp.ConnectionTimeoutError as e:
            wait = min(self.limits.connect_timeout, seconds)
            raise fail(CONNECT, Message(TIMEOUT, {"seconds": wait})) from e
        except TimeoutError as e:
            raise fail(TIMEOUT, seconds=seconds) from e
        except Exception as e:  # a hostile server must never crash the caller
            raise HttpError(describe(e)) from e

    async def _follow(
        self, url: str, headers: dict[str, str], etag: str, last_modified: str
    ) -> Response:
        """Request `url`, following at most max_redirects redirects to http(s) URLs."""
        _check_url(url)
        session = self._client()
        for _ in range(self.limits.max_redirects + 1):
            async with session.get(url, headers=headers, allow_redirects=False) as resp:
                if resp.status not in REDIRECT_STATUSES:
                    return await self._answer(resp, etag, last_modified)
                url = _redirect_target(resp)
        raise fail(REDIRECTS, limit=self.limits.max_redirects)

    async def _answer(
        self, resp: aiohttp.ClientResponse, etag: str, last_modified: str
    ) -> Response:
        """Turn a final response into a Response, reading the body within the caps."""
        headers = resp.headers
        if resp.status == 304:
            # RFC 9110 §15.4.5: a 304 repeats the validators; keep ours if it does not.
            return _response(resp, b"", headers.get("ETag", etag), last_modified)
        if not 200 <= resp.status < 300:
            raise _status_error(resp)
        try:
            body = await read_capped(resp, self.limits.max_compressed, self.limits.max_decompressed)
        except BaseException:
            resp.close()  # drop the connection rather than drain a hostile body
            raise
        return _response(resp, body, headers.get("ETag", ""), "")


def _response(resp: aiohttp.ClientResponse, body: bytes, etag: str, modified: str) -> Response:
    return Response(
        status=resp.status,
        body=body,
        etag=etag,
        last_modified=resp.headers.get("Last-Modified", modified),
        url=str(resp.url),
        content_type=resp.headers.get("Content-Type", "").strip(),
    )


def _check_url(url: str) -> None:
    """Refuse anything but an absolute http(s) URL with a host."""
    if not is_http_url(url):
        raise fail(NOT_HTTP, url=printable(url))


def _redirect_target(resp: aiohttp.ClientResponse) -> str:
    """Return the absolute http(s) URL a redirect points to, or raise HttpError."""
    location = resp.headers.get("Location", "")
    if not location:
        raise fail(NO_LOCATION, status=resp.status)
    try:
        target = str(resp.url.join(URL(location)))
    except ValueError as e:
        raise fail(BAD_LOCATION, location=printable(location)) from e
    if not is_http_url(target):
        raise fail(REDIRECT_NOT_HTTP, location=printable(location))
    return target


def _status_error(resp: aiohttp.ClientResponse) -> HttpError:
    """Say an HTTP error status the standard way, e.g. "HTTP 500 Internal Server Error"."""
    try:
        phrase = HTTPStatus(resp.status).phrase
    except ValueError:
        phrase = printable(resp.reason or "", 60)
    if not phrase:
        return HttpError(Message(STATUS_BARE, {"status": resp.status}), server_status=resp.status)
    known = PHRASES.get(resp.status)
    problem = Message(
        STATUS, {"status": resp.status, "phrase": Message(known) if known else phrase}
    )
    return HttpError(problem, server_status=resp.status)
