"""Outbound HTTP for node and aggregator: one bounded client whose problems are Messages.

This package is the only code that makes outbound requests to other people's servers. (Two
synchronous commands that talk only to our own services on loopback use urllib: `klynge
healthcheck`, for its start-up cost, see there, and the `klynge demo` launcher.) Every server we
call is someone else's: it may be slow, huge, a gzip bomb, a redirect loop or simply gone.
`Client` therefore

* gives each request one deadline over connect, every redirect and the whole body, because a
  per-read timeout alone lets a server that sends a byte a second hold us forever;
* caps the body on the wire (at once when `Content-Length` says more) and after decompression,
  while it streams, so a gzip bomb stops at the cap (`body`); it asks only for gzip and deflate;
* follows at most `max_redirects` redirects, to http(s) URLs only; POSTs follow none;
* limits connections in all and per host, keeps no cookies, and sends `klynge.USER_AGENT`
  unless the caller names itself otherwise;
* makes `get` a conditional GET (RFC 9110 §13.1): `etag` and `last_modified` in, and on a 304 a
  `Response` with `not_modified` and the validators to keep (the server's new ones, else ours).

Whatever goes wrong raises `HttpError`, whose `problem` is a `klynge.messages.Message` with an
`http.*` code (`problems`), e.g. `http.timeout`, `http.connect` (with the reason as its cause),
`http.status` (and `server_status`), `http.redirects`, `http.too_large`. Callers own their
policy: which URLs, how often, what an answer means, what is worth a retry.
"""

from klynge.http.client import Client, Limits, Response, open_session
from klynge.http.problems import HttpError

__all__ = ["Client", "HttpError", "Limits", "Response", "open_session"]
