"""The aggregator's fetcher against real, often hostile, aiohttp servers on loopback."""

from __future__ import annotations

import asyncio
import gzip
import socket
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

import klynge
from aggregator.reader.fetcher import Fetcher, FetchError, FetchLimits, FetchResult

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ServerFactory = Callable[..., Awaitable[TestServer]]
Serve = Callable[..., Awaitable[TestServer]]

FEED = b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Hvidbjerg</title></feed>'
SMALL = FetchLimits(
    connect_timeout=2,
    total_timeout=5,
    max_compressed=1_000_000,
    max_decompressed=2_000_000,
    max_redirects=3,
)
MB50 = 50_000_000


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    f = Fetcher(SMALL)
    yield f
    await f.close()


@pytest.fixture
def serve(aiohttp_server: ServerFactory) -> Serve:
    async def start(**routes: Handler) -> TestServer:
        app = web.Application()
        for name, handler in routes.items():
            app.router.add_route("*", f"/{name}", handler)
        return await aiohttp_server(app)

    return start


def url(server: TestServer, path: str) -> str:
    return str(server.make_url(f"/{path}"))


async def fail(fetcher: Fetcher, target: str, **kwargs: Any) -> str:
    with pytest.raises(FetchError) as caught:
        await fetcher.fetch(target, **kwargs)
    return caught.value.message


async def finished(done: asyncio.Event) -> None:
    """Wait (bounded) until a streaming handler has stopped, so its byte count is final."""
    await asyncio.wait_for(done.wait(), timeout=10)


# --- ordinary fetches ------------------------------------------------------------------


async def test_200_returns_body_validators_and_content_type(serve: Serve, fetcher: Fetcher) -> None:
    async def feed(request: web.Request) -> web.Response:
        return web.Response(
            body=FEED,
            content_type="application/atom+xml",
            charset="utf-8",
            headers={"ETag": '"v1"', "Last-Modified": "Thu, 26 Nov 2026 10:00:00 GMT"},
        )

    server = await serve(feed=feed)
    result = await fetcher.fetch(url(server, "feed"))
    assert result == FetchResult(
        not_modified=False,
        body=FEED,
        etag='"v1"',
        last_modified="Thu, 26 Nov 2026 10:00:00 GMT",
        final_url=url(server, "feed"),
        status=200,
        content_type="application/atom+xml; charset=utf-8",
    )


async def test_sends_klynge_user_agent_and_only_gzip_deflate(
    serve: Serve, fetcher: Fetcher
) -> None:
    seen: dict[str, str] = {}

    async def feed(request: web.Request) -> web.Response:
        seen.update(request.headers)
        return web.Response(body=FEED)

    server = await serve(feed=feed)
    await fetcher.fetch(url(server, "feed"))
    assert seen["User-Agent"] == klynge.USER_AGENT
    assert seen["User-Agent"].startswith("Klynge/")
    assert seen["Accept-Encoding"] == "gzip, deflate"
    assert "If-None-Match" not in seen and "If-Modified-Since" not in seen
    assert "Cookie" not in seen


async def test_304_with_etag(serve: Serve, fetcher: Fetcher) -> None:
    seen: list[str] = []

    async def feed(request: web.Request) -> web.Response:
        seen.append(request.headers.get("If-None-Match", ""))
        if request.headers.get("If-None-Match") == '"v7"':
            return web.Response(status=304, headers={"ETag": '"v7"'})
        return web.Response(body=FEED, headers={"ETag": '"v7"'})

    server = await serve(feed=feed)
    first = await fetcher.fetch(url(server, "feed"))
    again = await fetcher.fetch(url(server, "feed"), etag=first.etag)
    assert (first.not_modified, first.body, first.etag) == (False, FEED, '"v7"')
    assert (again.not_modified, again.body, again.etag, again.status) == (True, b"", '"v7"', 304)
    assert seen == ["", '"v7"']


async def test_304_with_last_modified_keeps_our_validator(serve: Serve, fetcher: Fetcher) -> None:
    stamp = "Wed, 25 Nov 2026 08:30:00 GMT"

    async def feed(request: web.Request) -> web.Response:
        if request.headers.get("If-Modified-Since") == stamp:
            return web.Response(status=304)  # a lazy server that repeats no validator
        return web.Response(body=FEED, headers={"Last-Modified": stamp})

    server = await serve(feed=feed)
    first = await fetcher.fetch(url(server, "feed"))
    again = await fetcher.fetch(url(server, "feed"), last_modified=first.last_modified)
    assert first.last_modified == stamp and first.body == FEED
    assert again.not_modified and again.body == b""
    assert again.last_modified == stamp and again.etag == ""


@pytest.mark.parametrize("status", [404, 500, 503])
async def test_http_errors_in_words(serve: Serve, fetcher: Fetcher, status: int) -> None:
    async def feed(request: web.Request) -> web.Response:
        return web.Response(status=status, text="<html>oops</html>")

    server = await serve(feed=feed)
    words = {404: "Not Found", 500: "Internal Server Error", 503: "Service Unavailable"}
    assert await fail(fetcher, url(server, "feed")) == f"HTTP {status} {words[status]}"


async def test_unknown_status_uses_the_servers_reason_cleaned(
    serve: Serve, fetcher: Fetcher
) -> None:
    async def feed(request: web.Request) -> web.Response:
        return web.Response(status=599, reason="Village\tflooded")

    server = await serve(feed=feed)
    assert await fail(fetcher, url(server, "feed")) == "HTTP 599 Village flooded"


async def test_fetch_error_is_a_klynge_error_with_json_shape(
    serve: Serve, fetcher: Fetcher
) -> None:
    async def feed(request: web.Request) -> web.Response:
        return web.Response(status=500)

    server = await serve(feed=feed)
    with pytest.raises(klynge.errors.KlyngeError) as caught:
        await fetcher.fetch(url(server, "feed"))
    message = "HTTP 500 Internal Server Error"
    assert caught.value.to_json() == {
        "error": {
            "code": "fetch",
            "message": message,
            "detail": {
                "code": "http.status",
                "params": {
                    "status": 500,
                    "phrase": {
                        "code": "http.phrase.500",
                        "params": {},
                        "message": "Internal Server Error",
                    },
                },
                "message": message,
            },
        }
    }


# --- compression -----------------------------------------------------------------------


def _compressed(coding: str, data: bytes) -> bytes:
    if coding == "gzip":
        return gzip.compress(data)
    if coding == "deflate":
        return zlib.compress(data)
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)  # what some servers send as "deflate"
    return raw.compress(data) + raw.flush()


@pytest.mark.parametrize("coding", ["gzip", "deflate", "raw-deflate"])
async def test_compressed_bodies_are_decoded(serve: Serve, fetcher: Fetcher, coding: str) -> None:
    body = FEED * 1000
    packed = _compressed(coding, body)

    async def feed(request: web.Request) -> web.StreamResponse:
        name = "deflate" if coding == "raw-deflate" else coding
        resp = web.StreamResponse(headers={"Content-Encoding": name})
        await resp.prepare(request)
        for i in range(0, len(packed), 7):  # tiny chunks: the decoder must cope with any split
            await resp.write(packed[i : i + 7])
        return resp

    server = await serve(feed=feed)
    result = await fetcher.fetch(url(server, "feed"))
    assert result.body == body and len(packed) < len(body) // 10


async def test_multi_member_gzip_is_decoded(serve: Serve, fetcher: Fetcher) -> None:
    async def feed(request: web.Request) -> web.Response:
        body = gzip.compress(b"<feed>") + gzip.compress(b"</feed>")
        return web.Response(body=body, headers={"Content-Encoding": "gzip"})

    server = await serve(feed=feed)
    assert (await fetcher.fetch(url(server, "feed"))).body == b"<feed></feed>"


async def test_invalid_gzip_in_words(serve: Serve, fetcher: Fetcher) -> None:
    async def feed(request: web.Request) -> web.Response:
        return web.Response(body=b"this is not gzip at all", headers={"Content-Encoding": "gzip"})

    server = await serve(feed=feed)
    assert (await fail(fetcher, url(server, "feed"))).startswith("the body is not valid gzip")


async def test_cut_gzip_stream_in_words(serve: Serve, fetcher: Fetcher) -> None:
    async def feed(request: web.Request) -> web.Response:
        whole = gzip.compress(FEED * 100)
        return web.Response(body=whole[: len(whole) // 2], headers={"Content-Encoding": "gzip"})

    server = await serve(feed=feed)
    words = await fail(fetcher, url(server, "feed"))
    assert words == "the body is not valid gzip: it ends too early"


async def test_unsupported_compression_refused(serve: Serve, fetcher: Fetcher) -> None:
    async def feed(request: web.Request) -> web.Response:
        return web.Response(body=b"\x0b\x02\x80", headers={"Content-Encoding": "br"})

    server = await serve(feed=feed)
    words = await fail(fetcher, url(server, "feed"))
    assert (
        words == "the server used a compression we do not accept (br); we accept gzip and deflate"
    )


async def test_small_gzip_bomb_refused_at_decompressed_cap(serve: Serve, fetcher: Fetcher) -> None:
    bomb = gzip.compress(bytes(10_000_000), 9)

    async def feed(request: web.Request) -> web.Response:
        return web.Response(body=bomb, headers={"Content-Encoding": "gzip"})

    server = await serve(feed=feed)
    assert len(bomb) < 20_000  # 10 MB of zeros really is a bomb
    words = await fail(fetcher, url(server, "feed"))
    assert words == "the response is larger than 2 MB when decompressed"


async def test_streamed_1gb_gzip_bomb_refused_without_inflating_it(serve: Serve) -> None:
    """The server builds a 1 GB bomb chunk by chunk; we stop at 1 MB and never hold more."""
    generated = 0
    done = asyncio.Event()

    async def bomb(request: web.Request) -> web.StreamResponse:
        nonlocal generated
        resp = web.StreamResponse(headers={"Content-Encoding": "gzip"})
        await resp.prepare(request)
        packer = zlib.compressobj(9, wbits=16 + zlib.MAX_WBITS)
        zeros = bytes(1_000_000)
        try:
            for _ in range(1000):
                generated += len(zeros)
                await resp.write(packer.compress(zeros))
                await asyncio.sleep(0)  # let the client read; a real server is elsewhere
            await resp.write(packer.flush())
        except (ConnectionError, RuntimeError):
            pass  # the client hung up: that is the point
        finally:
            done.set()
        return resp

    server = await serve(bomb=bomb)
    limits = FetchLimits(total_timeout=30, max_compressed=5_000_000, max_decompressed=1_000_000)
    fetcher = Fetcher(limits)
    tracemalloc.start()
    try:
        words = await fail(fetcher, url(server, "bomb"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        await fetcher.close()
    await finished(done)
    assert words == "the response is larger than 1 MB when decompressed"
    # Server and client share this process: 1 MB zero blocks plus at most ~1 MB inflated.
    assert peak < 8_000_000, f"peak {peak} bytes"
    assert generated < 100_000_000, f"server made {generated} bytes before we hung up"


# --- size caps on the wire -------------------------------------------------------------


def _streamer(sent: list[int], done: asyncio.Event, *, declare: bool) -> Handler:
    async def big(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        if declare:
            resp.content_length = MB50
        await resp.prepare(request)
        chunk = b"<entry>" + bytes(65_529)
        try:
            while sent[0] < MB50:
                await resp.write(chunk)
                sent[0] += len(chunk)
                await asyncio.sleep(0)
        except (ConnectionError, RuntimeError):
            pass
        finally:
            done.set()
        return resp

    return big


@pytest.mark.parametrize("declare", [True, False], ids=["content-length", "chunked"])
async def test_50mb_body_refused_without_transferring_it(
    serve: Serve, fetcher: Fetcher, declare: bool
) -> None:
    sent, done = [0], asyncio.Event()
    server = await serve(big=_streamer(sent, done, declare=declare))
    words = await fail(fetcher, url(server, "big"))
    await finished(done)
    if declare:
        assert words == "the response is larger than 1 MB (it declares 50 MB)"
    else:
        assert words == "the response is larger than 1 MB"
    # Loopback socket buffers may absorb a few MB after we hang up, never all 50 MB.
    assert sent[0] < MB50 // 4, f"server sent {sent[0]} bytes"


async def test_body_at_the_cap_is_accepted(serve: Serve, fetcher: Fetcher) -> None:
    async def feed(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * SMALL.max_compressed)

    server = await serve(feed=feed)
    assert len((await fetcher.fetch(url(server, "feed"))).body) == SMALL.max_compressed


async def test_truncated_body_in_words(serve: Serve, fetcher: Fetcher) -> None:
    async def cut(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        resp.content_length = 10_000
        await resp.prepare(request)
        await resp.write(FEED)
        assert request.transport is not None
        request.transport.close()  # hang up 9,900 bytes short
        return resp

    server = await serve(cut=cut)
    words = await fail(fetcher, url(server, "cut"))
    assert words == "the connection closed before the whole body arrived (truncated response)"


# --- time ------------------------------------------------------------------------------


async def test_trickling_server_is_cut_off_at_the_total_deadline(serve: Serve) -> None:
    sent, done = [0], asyncio.Event()

    async def trickle(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        try:
            for byte in FEED[:40]:  # bounded: 40 bytes at 5 bytes a second is 8 s
                await resp.write(bytes([byte]))
                sent[0] += 1
                await asyncio.sleep(0.2)
        except (ConnectionError, RuntimeError):
            pass
        finally:
            done.set()
        return resp

    server = await serve(trickle=trickle)
    fetcher = Fetcher(FetchLimits(connect_timeout=1, total_timeout=1))
    try:
        words = await fail(fetcher, url(server, "trickle"))
    finally:
        await fetcher.close()
    await finished(done)
    assert words == "timed out after 1 s"
    assert sent[0] < 20  # a per-read timeout alone would have waited for all 40


# --- redirects -------------------------------------------------------------------------


def _hop(target: str) -> Handler:
    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(target)

    return redirect


async def test_three_redirects_followed(serve: Serve, fetcher: Fetcher) -> None:
    async def final(request: web.Request) -> web.Response:
        return web.Response(body=FEED)

    server = await serve(r3=_hop("/r2"), r2=_hop("r1"), r1=_hop("/final"), final=final)
    result = await fetcher.fetch(url(server, "r3"))
    assert result.body == FEED and result.final_url == url(server, "final")


async def test_four_redirects_refused(serve: Serve, fetcher: Fetcher) -> None:
    hits: list[str] = []

    async def final(request: web.Request) -> web.Response:
        hits.append("final")
        return web.Response(body=FEED)

    server = await serve(
        r4=_hop("/r3"), r3=_hop("/r2"), r2=_hop("/r1"), r1=_hop("/final"), final=final
    )
    assert await fail(fetcher, url(server, "r4")) == "too many redirects (more than 3)"
    assert hits == []


async def test_redirect_loop_refused(serve: Serve, fetcher: Fetcher) -> None:
    hits = [0]

    async def loop(request: web.Request) -> web.Response:
        hits[0] += 1
        raise web.HTTPMovedPermanently("/loop")

    server = await serve(loop=loop)
    assert await fail(fetcher, url(server, "loop")) == "too many redirects (more than 3)"
    assert hits[0] == 4


@pytest.mark.parametrize("target", ["ftp://example.org/feed.xml", "file:///etc/passwd"])
async def test_redirect_to_other_scheme_refused(
    serve: Serve, fetcher: Fetcher, target: str
) -> None:
    server = await serve(away=_hop(target))
    words = await fail(fetcher, url(server, "away"))
    assert words == f"the server redirected to a URL that is not http(s): {target!r}"


async def test_redirect_without_location_in_words(serve: Serve, fetcher: Fetcher) -> None:
    async def bare(request: web.Request) -> web.Response:
        return web.Response(status=302)

    server = await serve(bare=bare)
    assert await fail(fetcher, url(server, "bare")) == "HTTP 302 redirect without a Location header"


# --- refusals before any traffic and dead hosts ----------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "ftp://example.org/feed",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "",
        "http://",
        "feed.xml",
    ],
)
async def test_non_http_urls_refused(fetcher: Fetcher, target: str) -> None:
    words = await fail(fetcher, target)
    assert words == f"only http and https URLs can be fetched, not {target!r}"


async def test_connection_refused_in_words(fetcher: Fetcher) -> None:
    with socket.socket() as closed:  # bound, never listening: held, so no one else takes it
        closed.bind(("127.0.0.1", 0))
        words = await fail(fetcher, f"http://127.0.0.1:{closed.getsockname()[1]}/feed")
    assert words == "could not connect: connection refused"


async def test_connect_timeout_in_words() -> None:
    """A listener whose accept queue is full drops our SYN: the connect deadline must fire."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = [socket.socket() for _ in range(3)]
    for filler in fillers:
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
    fetcher = Fetcher(FetchLimits(connect_timeout=0.5, total_timeout=5))
    try:
        words = await fail(fetcher, f"http://127.0.0.1:{port}/feed")
    finally:
        await fetcher.close()
        for sock in [*fillers, listener]:
            sock.close()
    assert words == "could not connect: timed out after 0.5 s"


async def test_garbage_instead_of_http_in_words(fetcher: Fetcher) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        words = await fail(fetcher, f"http://127.0.0.1:{port}/feed")
    finally:
        server.close()
        await server.wait_closed()
    assert words.startswith("the server sent an invalid HTTP response (")


async def test_server_hanging_up_without_answer_in_words(fetcher: Fetcher) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        words = await fail(fetcher, f"http://127.0.0.1:{port}/feed")
    finally:
        server.close()
        await server.wait_closed()
    assert words == "the server closed the connection without a complete answer"


# --- ping and lifecycle ----------------------------------------------------------------


async def test_ping_posts_publish_form(serve: Serve, fetcher: Fetcher) -> None:
    got: dict[str, str] = {}

    async def hub(request: web.Request) -> web.Response:
        got.update({k: str(v) for k, v in (await request.post()).items()})
        got["ua"] = request.headers["User-Agent"]
        return web.Response(status=204)

    server = await serve(ping=hub)
    await fetcher.ping(url(server, "ping"), "http://hvidbjerg.example/feed.atom")
    assert got == {
        "hub.mode": "publish",
        "hub.url": "http://hvidbjerg.example/feed.atom",
        "ua": klynge.USER_AGENT,
    }


async def test_ping_errors_in_words(serve: Serve, fetcher: Fetcher) -> None:
    server = await serve()
    with pytest.raises(FetchError) as caught:
        await fetcher.ping(url(server, "nowhere"), "http://x.example/feed.atom")
    assert caught.value.message == "HTTP 404 Not Found"
    with pytest.raises(FetchError) as caught:
        await fetcher.ping("ftp://x.example/", "http://x.example/feed.atom")
    assert caught.value.message == "only http and https URLs can be fetched, not 'ftp://x.example/'"


async def test_close_then_fetch_again(serve: Serve) -> None:
    async def feed(request: web.Request) -> web.Response:
        return web.Response(body=FEED)

    server = await serve(feed=feed)
    fetcher = Fetcher(SMALL)
    await fetcher.close()  # closing an unused fetcher is fine
    assert (await fetcher.fetch(url(server, "feed"))).body == FEED
    await fetcher.close()
    assert (await fetcher.fetch(url(server, "feed"))).body == FEED
    await fetcher.close()
