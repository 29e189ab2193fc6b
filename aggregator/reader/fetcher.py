"""The aggregator's only door to the outside: polite, bounded HTTP requests to sources.

Every limit here exists because a source is a stranger's server: it may be slow, huge, a gzip
bomb, a redirect loop or simply gone. Whatever happens, callers get a `FetchResult` or a
`FetchError` whose message (a code with parameters, below) says what went wrong on /status.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from http import HTTPStatus

import aiohttp
from yarl import URL

import klynge
from klynge.errors import KlyngeError
from klynge.messages import Message, define
from klynge.model import is_http_url

REDIRECTS = frozenset({301, 302, 303, 307, 308})
CHUNK = 64 * 1024
# Politeness: a village node is a Raspberry Pi; several sources may share one host.
CONNECTIONS_PER_HOST = 2
CONNECTIONS = 50
PING_TIMEOUT = 5.0
# We do not advertise br/zstd: zlib is in the standard library and lets us cap the output.
ACCEPT_ENCODING = "gzip, deflate"
ACCEPT = (
    "application/atom+xml, application/rss+xml;q=0.9, text/calendar;q=0.9, "
    "application/xml;q=0.8, text/xml;q=0.8, */*;q=0.5"
)


# What can go wrong, in English; Danish in aggregator/locale. A cause follows after ": ".
CONNECT = define("fetch.connect", "could not connect")
NETWORK = define("fetch.network", "network error")
TIMED_OUT_AFTER = define("fetch.timed_out_after", "timed out after %(seconds)s s")
TOO_MANY_REDIRECTS = define("fetch.too_many_redirects", "too many redirects (more than %(limit)s)")
TOO_LARGE_DECLARED = define(
    "fetch.too_large_declared", "the response is larger than %(cap)s (it declares %(size)s)"
)
TOO_LARGE = define("fetch.too_large", "the response is larger than %(cap)s")
TOO_LARGE_DECODED = define(
    "fetch.too_large_decoded", "the response is larger than %(cap)s when decompressed"
)
BAD_CODING = define("fetch.bad_coding", "the body is not valid %(coding)s (%(detail)s)")
CODING_ENDS_EARLY = define(
    "fetch.coding_ends_early", "the body is not valid %(coding)s: it ends too early"
)
CODING_TRAILING = define(
    "fetch.coding_trailing", "the body is not valid %(coding)s: data after the end"
)
UNKNOWN_CODING = define(
    "fetch.unknown_coding",
    "the server used a compression we do not accept (%(coding)s); we accept gzip and deflate",
)
NOT_HTTP = define("fetch.not_http", "only http and https URLs can be fetched, not '%(url)s'")
REDIRECT_NO_LOCATION = define(
    "fetch.redirect_no_location", "HTTP %(status)s redirect without a Location header"
)
REDIRECT_INVALID = define(
    "fetch.redirect_invalid", "the server redirected to an invalid URL '%(url)s'"
)
REDIRECT_NOT_HTTP = define(
    "fetch.redirect_not_http", "the server redirected to a URL that is not http(s): '%(url)s'"
)
HTTP_STATUS = define("fetch.http_status", "HTTP %(status)s %(reason)s")
HTTP_STATUS_BARE = define("fetch.http_status_bare", "HTTP %(status)s")
HOST_NOT_FOUND = define("fetch.host_not_found", "the host name %(host)s was not found")
BAD_CERTIFICATE = define("fetch.bad_certificate", "the TLS certificate is not valid (%(detail)s)")
TLS_FAILED = define("fetch.tls_failed", "the TLS handshake failed")
DISCONNECTED = define(
    "fetch.disconnected", "the server closed the connection without a complete answer"
)
TRUNCATED = define(
    "fetch.truncated",
    "the connection closed before the whole body arrived (truncated response)",
)
MALFORMED_BODY = define("fetch.malformed_body", "the server sent a malformed body (%(detail)s)")
INVALID_RESPONSE = define(
    "fetch.invalid_response", "the server sent an invalid HTTP response (%(detail)s)"
)
INVALID_URL = define("fetch.invalid_url", "the URL is not valid")
REQUEST_FAILED = define("fetch.request_failed", "the request failed (%(detail)s)")
REFUSED = define("fetch.refused", "connection refused")
RESET = define("fetch.reset", "connection reset by the server")
HOST_UNREACHABLE = define("fetch.host_unreachable", "host unreachable")
NETWORK_UNREACHABLE = define("fetch.network_unreachable", "network unreachable")
TIMED_OUT = define("fetch.timed_out", "timed out")
OS_ERROR = define("fetch.os_error", "%(reason)s")


@dataclass(frozen=True)
class FetchLimits:
    """Timeouts (seconds), body caps (bytes) and the redirect limit of one fetch."""

    connect_timeout: float = 10
    total_timeout: float = 30
    max_compressed: int = 5_000_000
    max_decompressed: int = 20_000_000
    max_redirects: int = 3


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
    """A source could not be fetched; `detail` says why, for the /status page."""

    status = 502
    code = "fetch"


class Fetcher:
    """Fetches sources over HTTP(S) with conditional GET, timeouts, size caps and few redirects."""

    def __init__(
        self, limits: FetchLimits = FetchLimits(), user_agent: str = klynge.USER_AGENT
    ) -> None:
        self.limits = limits
        self.user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    async def fetch(self, url: str, *, etag: str = "", last_modified: str = "") -> FetchResult:
        """GET `url` conditionally and return its decompressed body; raise FetchError in words."""
        headers = {"Accept": ACCEPT, "Accept-Encoding": ACCEPT_ENCODING}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        # One deadline over connect, every redirect and the whole body: sock_read alone lets a
        # server that sends one byte a second keep us forever.
        async with self._guarded(self.limits.total_timeout):
            return await self._follow(url, headers, etag, last_modified)

    async def ping(self, url: str, feed_url: str) -> None:
        """POST a WebSub-style publish ping for `feed_url` to `url`; raise FetchError in words."""
        _check_url(url)
        seconds = min(PING_TIMEOUT, self.limits.total_timeout)
        form = {"hub.mode": "publish", "hub.url": feed_url}
        async with self._guarded(seconds):
            session = self._client()
            async with session.post(url, data=form, allow_redirects=False) as resp:
                if not 200 <= resp.status < 300:
                    raise FetchError(_status_words(resp))

    async def close(self) -> None:
        """Close the HTTP session and its connections; the fetcher may be used again after."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        """Return the session, creating it inside the running loop on first use."""
        if self._session is None or self._session.closed:
            limits = self.limits
            timeout = aiohttp.ClientTimeout(
                total=limits.total_timeout,
                sock_connect=limits.connect_timeout,
                sock_read=limits.total_timeout,
            )
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=CONNECTIONS, limit_per_host=CONNECTIONS_PER_HOST
                ),
                timeout=timeout,
                headers={"User-Agent": self.user_agent},
                # Sources must not track us, and one source's cookies must not reach another.
                cookie_jar=aiohttp.DummyCookieJar(),
                # We decompress ourselves to count wire bytes and cap the output.
                auto_decompress=False,
            )
        return self._session

    @contextlib.asynccontextmanager
    async def _guarded(self, seconds: float) -> AsyncIterator[None]:
        """Enforce a deadline and turn every network failure into a FetchError in words."""
        try:
            async with asyncio.timeout(seconds):
                yield
        except FetchError:
            raise
        except aiohttp.ConnectionTimeoutError as e:
            wait = min(self.limits.connect_timeout, seconds)
            timed_out = Message(TIMED_OUT_AFTER, {"seconds": f"{wait:g}"})
            raise FetchError(Message(CONNECT, cause=timed_out)) from e
        except TimeoutError as e:
            raise FetchError(Message(TIMED_OUT_AFTER, {"seconds": f"{seconds:g}"})) from e
        except Exception as e:  # a hostile server must never crash the caller
            raise FetchError(_error_words(e)) from e

    async def _follow(
        self, url: str, headers: dict[str, str], etag: str, last_modified: str
    ) -> FetchResult:
        """Request `url`, following at most max_redirects redirects to http(s) URLs."""
        _check_url(url)
        session = self._client()
        for _ in range(self.limits.max_redirects + 1):
            async with session.get(url, headers=headers, allow_redirects=False) as resp:
                if resp.status not in REDIRECTS:
                    return await self._result(resp, etag, last_modified)
                url = _redirect_target(resp)
        raise FetchError(Message(TOO_MANY_REDIRECTS, {"limit": self.limits.max_redirects}))

    async def _result(
        self, resp: aiohttp.ClientResponse, etag: str, last_modified: str
    ) -> FetchResult:
        """Turn a final response into a FetchResult, reading the body within the caps."""
        headers = resp.headers
        content_type = headers.get("Content-Type", "").strip()
        if resp.status == 304:
            # RFC 9110 §15.4.5: a 304 repeats the validators; keep ours if it does not.
            return FetchResult(
                not_modified=True,
                body=b"",
                etag=headers.get("ETag", etag),
                last_modified=headers.get("Last-Modified", last_modified),
                final_url=str(resp.url),
                status=304,
                content_type=content_type,
            )
        if not 200 <= resp.status < 300:
            raise FetchError(_status_words(resp))
        try:
            body = await self._read_body(resp)
        except BaseException:
            resp.close()  # drop the connection rather than drain a hostile body
            raise
        return FetchResult(
            not_modified=False,
            body=body,
            etag=headers.get("ETag", ""),
            last_modified=headers.get("Last-Modified", ""),
            final_url=str(resp.url),
            status=resp.status,
            content_type=content_type,
        )

    async def _read_body(self, resp: aiohttp.ClientResponse) -> bytes:
        """Stream the body, capping the bytes on the wire and the bytes after decompression."""
        cap = self.limits.max_compressed
        declared = resp.content_length
        if declared is not None and declared > cap:
            raise FetchError(
                Message(TOO_LARGE_DECLARED, {"cap": _size(cap), "size": _size(declared)})
            )
        decoder = _Decoder(resp.headers.get("Content-Encoding", ""), self.limits.max_decompressed)
        received = 0
        async for chunk in resp.content.iter_chunked(CHUNK):
            received += len(chunk)
            if received > cap:
                raise FetchError(Message(TOO_LARGE, {"cap": _size(cap)}))
            decoder.feed(chunk)
        return decoder.finish()


class _Decoder:
    """Decodes a Content-Encoding incrementally; the output never grows past `cap` + 1 bytes."""

    def __init__(self, content_encoding: str, cap: int) -> None:
        self.coding = _coding(content_encoding)
        self.cap = cap
        self.parts: list[bytes] = []
        self.size = 0
        self.fed = False
        self.pending = b""  # deflate only: the first bytes, until we can tell zlib from raw
        self.inflater: zlib._Decompress | None = None
        if self.coding == "gzip":
            self.inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def feed(self, data: bytes) -> None:
        """Decode one chunk from the wire."""
        if not data:
            return
        self.fed = True
        if self.coding == "identity":
            self._add(data)
            return
        if self.inflater is None:
            data = self._start_deflate(data)
        try:
            self._inflate(data)
        except zlib.error as e:
            detail = Message(BAD_CODING, {"coding": self.coding, "detail": str(e)})
            raise FetchError(detail) from e

    def finish(self) -> bytes:
        """Return the whole decoded body, checking the compressed stream was complete."""
        complete = self.inflater is not None and self.inflater.eof
        if self.fed and self.coding != "identity" and not complete:
            raise FetchError(Message(CODING_ENDS_EARLY, {"coding": self.coding}))
        return b"".join(self.parts)

    def _start_deflate(self, data: bytes) -> bytes:
        """Pick zlib-wrapped or raw deflate once two bytes are known (servers send both)."""
        data = self.pending + data
        if len(data) < 2:
            self.pending = data
            return b""
        self.pending = b""
        wrapped = data[0] & 0x0F == 8 and (data[0] * 256 + data[1]) % 31 == 0  # RFC 1950 §2.2
        self.inflater = zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        return data

    def _inflate(self, data: bytes) -> None:
        """Decompress `data` with max_length, so a bomb never allocates more than the cap."""
        while data and self.inflater is not None:
            if self.inflater.eof:
                data = self._next_member(data)
            self._add(self.inflater.decompress(data, self.cap - self.size + 1))
            data = self.inflater.unconsumed_tail or self.inflater.unused_data

    def _next_member(self, data: bytes) -> bytes:
        """Start the next member of a multi-member gzip body (RFC 1952 §2.2)."""
        if self.coding != "gzip":
            raise FetchError(Message(CODING_TRAILING, {"coding": self.coding}))
        self.inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        return data

    def _add(self, out: bytes) -> None:
        """Keep decoded bytes, refusing the body once it passes the cap."""
        self.size += len(out)
        if self.size > self.cap:
            code = TOO_LARGE if self.coding == "identity" else TOO_LARGE_DECODED
            raise FetchError(Message(code, {"cap": _size(self.cap)}))
        if out:
            self.parts.append(out)


def _coding(content_encoding: str) -> str:
    """Name the one compression we must undo: identity, gzip or deflate."""
    codings = [c.strip().lower() for c in content_encoding.split(",")]
    codings = [c for c in codings if c not in ("", "identity")]
    if not codings:
        return "identity"
    if len(codings) == 1 and codings[0] in ("gzip", "x-gzip", "deflate"):
        return "deflate" if codings[0] == "deflate" else "gzip"
    shown = _printable(content_encoding, 40)
    raise FetchError(Message(UNKNOWN_CODING, {"coding": shown}))


def _check_url(url: str) -> None:
    """Refuse anything but an absolute http(s) URL with a host."""
    if not is_http_url(url):
        raise FetchError(Message(NOT_HTTP, {"url": _printable(url)}))


def _redirect_target(resp: aiohttp.ClientResponse) -> str:
    """Return the absolute http(s) URL a redirect points to, or raise FetchError."""
    location = resp.headers.get("Location", "")
    if not location:
        raise FetchError(Message(REDIRECT_NO_LOCATION, {"status": resp.status}))
    try:
        target = str(resp.url.join(URL(location)))
    except ValueError as e:
        raise FetchError(Message(REDIRECT_INVALID, {"url": _printable(location)})) from e
    if not is_http_url(target):
        raise FetchError(Message(REDIRECT_NOT_HTTP, {"url": _printable(location)}))
    return target


def _status_words(resp: aiohttp.ClientResponse) -> Message:
    """Say an HTTP error status the standard way, e.g. "HTTP 500 Internal Server Error"."""
    try:
        phrase = HTTPStatus(resp.status).phrase
    except ValueError:
        phrase = _printable(resp.reason or "", 60)
    if not phrase:
        return Message(HTTP_STATUS_BARE, {"status": resp.status})
    return Message(HTTP_STATUS, {"status": resp.status, "reason": phrase})


def _error_words(exc: Exception) -> Message:
    """Describe a client, OS or protocol failure."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return Message(CONNECT, cause=Message(HOST_NOT_FOUND, {"host": str(exc.host)}))
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        bad = Message(BAD_CERTIFICATE, {"detail": str(exc.certificate_error)})
        return Message(CONNECT, cause=bad)
    if isinstance(exc, aiohttp.ClientConnectorSSLError):
        return Message(CONNECT, cause=Message(TLS_FAILED))
    if isinstance(exc, aiohttp.ClientConnectorError):
        return Message(CONNECT, cause=_os_words(exc.os_error))
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return Message(DISCONNECTED)
    if isinstance(exc, aiohttp.ClientPayloadError):
        if "not completed" in str(exc):
            return Message(TRUNCATED)
        return Message(MALFORMED_BODY, {"detail": _printable(str(exc), 80)})
    if isinstance(exc, aiohttp.ClientResponseError):
        return Message(INVALID_RESPONSE, {"detail": _printable(exc.message, 80)})
    if isinstance(exc, aiohttp.InvalidURL):
        return Message(INVALID_URL)
    if isinstance(exc, OSError):
        return Message(NETWORK, cause=_os_words(exc))
    detail = f"{type(exc).__name__}: {_printable(str(exc), 80)}"
    return Message(REQUEST_FAILED, {"detail": detail})


_ERRNO_WORDS = {
    errno.ECONNREFUSED: REFUSED,
    errno.ECONNRESET: RESET,
    errno.EHOSTUNREACH: HOST_UNREACHABLE,
    errno.ENETUNREACH: NETWORK_UNREACHABLE,
    errno.ETIMEDOUT: TIMED_OUT,
}


def _os_words(err: OSError) -> Message:
    """Name an OS-level network error; asyncio's "Multiple exceptions" hides the errno."""
    if err.errno in _ERRNO_WORDS:
        return Message(_ERRNO_WORDS[err.errno])
    text = str(err)
    for number, code in _ERRNO_WORDS.items():
        if f"[Errno {number}]" in text:
            return Message(code)
    reason = _printable(err.strerror or text, 80).lower() or type(err).__name__
    return Message(OS_ERROR, {"reason": reason})


def _size(n: int) -> str:
    """Say a byte count the way people read it: 5 MB, 100 kB, 512 bytes."""
    for unit, factor in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= factor:
            return f"{round(n / factor, 1):g} {unit}"
    return f"{n} bytes"


def _printable(text: str, limit: int = 200) -> str:
    """Shorten server-supplied text and drop control characters before it reaches /status."""
    clean = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"
