"""What can go wrong with an outbound request, as `klynge.messages` codes and one error type."""

from __future__ import annotations

import errno

import aiohttp

from klynge.errors import KlyngeError
from klynge.messages import Message, Param, define

NOT_HTTP = define("http.url", "only http and https URLs can be fetched, not %(url)r")
TIMEOUT = define("http.timeout", "timed out after %(seconds)s s")
CONNECT = define("http.connect", "could not connect")  # the cause says why
NETWORK = define("http.network", "network error")  # the cause says which
DNS = define("http.dns", "the host name %(host)s was not found")
CERTIFICATE = define("http.certificate", "the TLS certificate is not valid (%(detail)s)")
TLS = define("http.tls", "the TLS handshake failed")
REFUSED = define("http.refused", "connection refused")
RESET = define("http.reset", "connection reset by the server")
HOST_UNREACHABLE = define("http.host_unreachable", "host unreachable")
NETWORK_UNREACHABLE = define("http.network_unreachable", "network unreachable")
OS_TIMEOUT = define("http.os_timeout", "timed out")
OS_ERROR = define("http.os_error", "%(detail)s")  # the operating system's own words
DISCONNECTED = define(
    "http.disconnected", "the server closed the connection without a complete answer"
)
TRUNCATED = define(
    "http.truncated",
    "the connection closed before the whole body arrived (truncated response)",
)
MALFORMED_BODY = define("http.malformed_body", "the server sent a malformed body (%(detail)s)")
INVALID_RESPONSE = define(
    "http.invalid_response", "the server sent an invalid HTTP response (%(detail)s)"
)
INVALID_URL = define("http.invalid_url", "the URL is not valid")
FAILED = define("http.failed", "the request failed (%(kind)s: %(detail)s)")
STATUS = define("http.status", "HTTP %(status)s %(phrase)s")
STATUS_BARE = define("http.status_bare", "HTTP %(status)s")  # a status with no known phrase
# The reason phrases a source most often answers with, so that a Danish page says them in
# Danish (RFC 9110 §15); any other status keeps the standard English phrase.
PHRASES = {
    400: define("http.phrase.400", "Bad Request"),
    401: define("http.phrase.401", "Unauthorized"),
    403: define("http.phrase.403", "Forbidden"),
    404: define("http.phrase.404", "Not Found"),
    405: define("http.phrase.405", "Method Not Allowed"),
    406: define("http.phrase.406", "Not Acceptable"),
    408: define("http.phrase.408", "Request Timeout"),
    410: define("http.phrase.410", "Gone"),
    429: define("http.phrase.429", "Too Many Requests"),
    500: define("http.phrase.500", "Internal Server Error"),
    501: define("http.phrase.501", "Not Implemented"),
    502: define("http.phrase.502", "Bad Gateway"),
    503: define("http.phrase.503", "Service Unavailable"),
    504: define("http.phrase.504", "Gateway Timeout"),
}
NO_LOCATION = define("http.no_location", "HTTP %(status)s redirect without a Location header")
BAD_LOCATION = define("http.bad_location", "the server redirected to an invalid URL %(location)r")
REDIRECT_NOT_HTTP = define(
    "http.redirect_not_http",
    "the server redirected to a URL that is not http(s): %(location)r",
)
REDIRECTS = define("http.redirects", "too many redirects (more than %(limit)s)")
TOO_LARGE = define("http.too_large", "the response is larger than %(limit)s")
TOO_LARGE_DECLARED = define(
    "http.too_large_declared", "the response is larger than %(limit)s (it declares %(size)s)"
)
TOO_LARGE_DECODED = define(
    "http.too_large_decoded", "the response is larger than %(limit)s when decompressed"
)
BAD_CODING = define("http.bad_coding", "the body is not valid %(coding)s (%(detail)s)")
CODING_CUT = define("http.coding_cut", "the body is not valid %(coding)s: it ends too early")
CODING_TRAILER = define(
    "http.coding_trailer", "the body is not valid %(coding)s: data after the end"
)
CODING_REFUSED = define(
    "http.coding_refused",
    "the server used a compression we do not accept (%(coding)s); we accept gzip and deflate",
)


class HttpError(KlyngeError):
    """A request failed; `problem` says why as a Message, `server_status` any HTTP status."""

    status = 502
    code = "http"

    def __init__(self, problem: Message, *, server_status: int | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.server_status = server_status


def fail(code: str, cause: Message | None = None, **params: Param) -> HttpError:
    """Return an HttpError for the message `code` with `params` and an optional cause."""
    return HttpError(Message(code, params, cause))


def describe(exc: Exception) -> Message:
    """Describe a client, OS or protocol failure as a Message."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return Message(CONNECT, cause=Message(DNS, {"host": exc.host}))
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        detail = {"detail": str(exc.certificate_error)}
        return Message(CONNECT, cause=Message(CERTIFICATE, detail))
    if isinstance(exc, aiohttp.ClientConnectorSSLError):
        return Message(CONNECT, cause=Message(TLS))
    if isinstance(exc, aiohttp.ClientConnectorError):
        return Message(CONNECT, cause=_os_problem(exc.os_error))
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return Message(DISCONNECTED)
    if isinstance(exc, aiohttp.ClientPayloadError):
        if "not completed" in str(exc):
            return Message(TRUNCATED)
        return Message(MALFORMED_BODY, {"detail": printable(str(exc), 80)})
    if isinstance(exc, aiohttp.ClientResponseError):
        return Message(INVALID_RESPONSE, {"detail": printable(exc.message, 80)})
    if isinstance(exc, aiohttp.InvalidURL):
        return Message(INVALID_URL)
    if isinstance(exc, OSError):
        return Message(NETWORK, cause=_os_problem(exc))
    return Message(FAILED, {"kind": type(exc).__name__, "detail": printable(str(exc), 80)})


_ERRNO_CODES = {
    errno.ECONNREFUSED: REFUSED,
    errno.ECONNRESET: RESET,
    errno.EHOSTUNREACH: HOST_UNREACHABLE,
    errno.ENETUNREACH: NETWORK_UNREACHABLE,
    errno.ETIMEDOUT: OS_TIMEOUT,
}


def _os_problem(err: OSError) -> Message:
    """Name an OS-level network error; asyncio's "Multiple exceptions" hides the errno."""
    if err.errno in _ERRNO_CODES:
        return Message(_ERRNO_CODES[err.errno])
    text = str(err)
    for number, code in _ERRNO_CODES.items():
        if f"[Errno {number}]" in text:
            return Message(code)
    detail = printable(err.strerror or text, 80).lower() or type(err).__name__
    return Message(OS_ERROR, {"detail": detail})


def size_words(n: int) -> str:
    """Say a byte count the way people read it: 5 MB, 100 kB, 512 bytes."""
    for unit, factor in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= factor:
            return f"{round(n / factor, 1):g} {unit}"
    return f"{n} bytes"


def printable(text: str, limit: int = 200) -> str:
    """Shorten server-supplied text and drop control characters before anyone shows it."""
    clean = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"
