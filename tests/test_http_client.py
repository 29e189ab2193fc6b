"""The shared outbound client `klynge.http` alone, against real aiohttp servers on loopback."""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

import klynge
from klynge.errors import KlyngeError
from klynge.http import Client, HttpError, Limits, Response
from klynge.http import problems as codes
from klynge.messages import CATALOGUE, Message

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Serve = Callable[..., Awaitable[TestServer]]

BODY = b'{"events": []}'
LIMITS = Limits(connect_timeout=2, total_timeout=5, max_compressed=100_000)
STAMP = "Thu, 26 Nov 2026 10:00:00 GMT"


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    async with Client(LIMITS) as c:
        yield c


@pytest.fixture
def serve(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> Serve:
    async def start(**routes: Handler) -> TestServer:
        app = web.Application()
        for name, handler in routes.items():
            app.router.add_route("*", f"/{name}", handler)
        return await aiohttp_server(app)

    return start


def url(server: TestServer, path: str) -> str:
    return str(server.make_url(f"/{path}"))


async def problem(request: Awaitable[Any]) -> Message:
    with pytest.raises(HttpError) as caught:
        await request
    return caught.value.problem


def dripping(sent: list[int], done: asyncio.Event, *, pause: float, size: int) -> Handler:
    """Send `size` one-byte writes `pause` seconds apart, stopping when the client hangs up."""

    async def drip(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        try:
            for _ in range(size):
                await resp.write(b"x" * (1 if pause else 65_536))
                sent[0] += 1
                await asyncio.sleep(pause)
        except (ConnectionError, RuntimeError):
            pass  # the client hung up: that is the point
        finally:
            done.set()
        return resp

    return drip


# --- ordinary answers -----------------------------------------------------------------


async def test_get_returns_body_validators_and_sends_our_user_agent(
    serve: Serve, client: Client
) -> None:
    seen: dict[str, str] = {}

    async def data(request: web.Request) -> web.Response:
        seen.update(request.headers)
        headers = {"ETag": '"v1"', "Last-Modified": STAMP, "Set-Cookie": "id=1"}
        return web.Response(body=BODY, content_type="application/json", headers=headers)

    server = await serve(data=data)
    answer = await client.get(url(server, "data"), accept="application/json")
    assert answer == Response(
        status=200,
        body=BODY,
        etag='"v1"',
        last_modified=STAMP,
        url=url(server, "data"),
        content_type="application/json",
    )
    assert not answer.not_modified
    assert seen["User-Agent"] == klynge.USER_AGENT
    assert (seen["Accept"], seen["Accept-Encoding"]) == ("application/json", "gzip, deflate")
    assert "If-None-Match" not in seen and "If-Modified-Since" not in seen
    seen.clear()
    # By a host name: a default cookie jar would keep the cookie for it (never for an address).
    await client.get(f"http://localhost:{server.port}/data")
    await client.get(f"http://localhost:{server.port}/data")
    assert "Cookie" not in seen  # the cookies set above were not kept


async def test_a_caller_can_name_itself(serve: Serve) -> None:
    seen: list[str] = []

    async def data(request: web.Request) -> web.Response:
        seen.append(request.headers["User-Agent"])
        return web.Response(body=BODY)

    server = await serve(data=data)
    async with Client(LIMITS, user_agent="Klynge-node/0.1.0 (+https://osterby.example.dk)") as c:
        await c.get(url(server, "data"))
    assert seen == ["Klynge-node/0.1.0 (+https://osterby.example.dk)"]


async def test_gzip_body_is_decoded(serve: Serve, client: Client) -> None:
    async def data(request: web.Request) -> web.Response:
        return web.Response(body=gzip.compress(BODY * 100), headers={"Content-Encoding": "gzip"})

    server = await serve(data=data)
    assert (await client.get(url(server, "data"))).body == BODY * 100


# --- conditional GET ------------------------------------------------------------------


async def test_304_returns_the_servers_new_validators(serve: Serve, client: Client) -> None:
    seen: dict[str, str] = {}
    newer = "Fri, 27 Nov 2026 08:00:00 GMT"

    async def data(request: web.Request) -> web.Response:
        seen.update(request.headers)
        return web.Response(status=304, headers={"ETag": '"v2"', "Last-Modified": newer})

    server = await serve(data=data)
    answer = await client.get(url(server, "data"), etag='"v1"', last_modified=STAMP)
    assert (seen["If-None-Match"], seen["If-Modified-Since"]) == ('"v1"', STAMP)
    assert answer.not_modified
    assert (answer.status, answer.body, answer.etag, answer.last_modified) == (
        304,
        b"",
        '"v2"',
        newer,
    )


async def test_304_without_validators_keeps_ours(serve: Serve, client: Client) -> None:
    async def data(request: web.Request) -> web.Response:
        return web.Response(status=304)

    server = await serve(data=data)
    answer = await client.get(url(server, "data"), etag='"v1"', last_modified=STAMP)
    assert (answer.not_modified, answer.etag, answer.last_modified) == (True, '"v1"', STAMP)


# --- size caps and the deadline -------------------------------------------------------


async def test_body_over_the_cap_stops_the_transfer(serve: Serve, client: Client) -> None:
    sent, done = [0], asyncio.Event()
    server = await serve(big=dripping(sent, done, pause=0, size=800))  # 50 MB in 64 kB writes
    found = await problem(client.get(url(server, "big")))
    await asyncio.wait_for(done.wait(), timeout=10)
    assert found == Message(codes.TOO_LARGE, {"limit": "100 kB", "limit_bytes": 100_000})
    assert found.english() == "the response is larger than 100 kB"
    assert sent[0] < 200, f"server wrote {sent[0]} blocks of 64 kB"


async def test_declared_length_over_the_cap_is_refused_before_reading(
    serve: Serve, client: Client
) -> None:
    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 150_000)

    server = await serve(big=big)
    found = await problem(client.get(url(server, "big")))
    assert found.code == codes.TOO_LARGE_DECLARED
    assert found.english() == "the response is larger than 100 kB (it declares 150 kB)"


async def test_gzip_bomb_stops_at_the_decompressed_cap(serve: Serve) -> None:
    async def bomb(request: web.Request) -> web.Response:
        return web.Response(
            body=gzip.compress(bytes(5_000_000), 9), headers={"Content-Encoding": "gzip"}
        )

    server = await serve(bomb=bomb)
    async with Client(Limits(max_decompressed=1_000_000)) as small:
        found = await problem(small.get(url(server, "bomb")))
    assert found.english() == "the response is larger than 1 MB when decompressed"


async def test_slow_drip_is_cut_off_at_the_total_deadline(serve: Serve) -> None:
    sent, done = [0], asyncio.Event()
    server = await serve(drip=dripping(sent, done, pause=0.2, size=40))  # 8 s in all
    async with Client(Limits(connect_timeout=1, total_timeout=1)) as quick:
        found = await problem(quick.get(url(server, "drip")))
    await asyncio.wait_for(done.wait(), timeout=10)
    assert found == Message(codes.TIMEOUT, {"seconds": 1})
    assert found.english() == "timed out after 1 s"
    assert sent[0] < 20  # each byte came within any per-read timeout: only the deadline stops it


# --- redirects ------------------------------------------------------------------------


async def test_redirect_loop_is_refused_after_the_limit(serve: Serve, client: Client) -> None:
    hits = [0]

    async def loop(request: web.Request) -> web.Response:
        hits[0] += 1
        raise web.HTTPFound("/loop")

    server = await serve(loop=loop)
    found = await problem(client.get(url(server, "loop")))
    assert found == Message(codes.REDIRECTS, {"limit": 3})
    assert found.english() == "too many redirects (more than 3)"
    assert hits[0] == 4  # the first request and three redirects


async def test_redirect_to_another_scheme_is_refused(serve: Serve, client: Client) -> None:
    async def away(request: web.Request) -> web.Response:
        raise web.HTTPFound("file:///etc/passwd")

    server = await serve(away=away)
    found = await problem(client.get(url(server, "away")))
    assert found == Message(codes.REDIRECT_NOT_HTTP, {"location": "file:///etc/passwd"})


# --- failures as messages -------------------------------------------------------------


async def test_connection_refused(client: Client) -> None:
    with socket.socket() as closed:  # bound, never listening: held, so no one else takes it
        closed.bind(("127.0.0.1", 0))
        target = f"http://127.0.0.1:{closed.getsockname()[1]}/data"
        with pytest.raises(HttpError) as caught:
            await client.get(target)
    error = caught.value
    assert error.problem == Message(codes.CONNECT, cause=Message(codes.REFUSED))
    assert error.server_status is None
    assert error.problem.english() == "could not connect: connection refused"
    assert error.problem.render("da") == "kunne ikke få forbindelse: forbindelsen blev afvist"


async def test_error_status_carries_the_status(serve: Serve, client: Client) -> None:
    async def gone(request: web.Request) -> web.Response:
        return web.Response(status=503)

    server = await serve(gone=gone)
    with pytest.raises(KlyngeError) as caught:  # an HttpError is a KlyngeError: a clear 502
        await client.get(url(server, "gone"))
    assert isinstance(caught.value, HttpError)
    assert caught.value.server_status == 503
    assert caught.value.problem.to_json() == {
        "code": "http.status",
        "params": {
            "status": 503,
            "phrase": {"code": "http.phrase.503", "params": {}, "message": "Service Unavailable"},
        },
        "message": "HTTP 503 Service Unavailable",
    }
    # The reason phrase is a message too, so a Danish page says it in Danish.
    assert caught.value.problem.render("da") == (
        "serveren svarede med fejlen HTTP 503 (tjenesten er utilgængelig)"
    )
    assert caught.value.to_json() == {
        "error": {
            "code": "http",
            "message": "HTTP 503 Service Unavailable",
            "detail": caught.value.problem.to_json(),
        }
    }


@pytest.mark.parametrize("target", ["ftp://example.org/feed", "javascript:alert(1)", "http://"])
async def test_non_http_urls_are_refused_without_traffic(client: Client, target: str) -> None:
    found = await problem(client.get(target))
    assert found == Message(codes.NOT_HTTP, {"url": target})
    found = await problem(client.post_form(target, {}))
    assert found.code == codes.NOT_HTTP


# --- POST and connections -------------------------------------------------------------


async def test_post_form_sends_the_form_and_follows_no_redirect(
    serve: Serve, client: Client
) -> None:
    got: list[dict[str, str]] = []

    async def ping(request: web.Request) -> web.Response:
        got.append({k: str(v) for k, v in (await request.post()).items()})
        return web.Response(status=202)

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/ping")

    server = await serve(ping=ping, moved=moved)
    form = {"hub.mode": "publish", "hub.url": "https://osterby.example.dk/feed.atom"}
    assert await client.post_form(url(server, "ping"), form) == 202
    assert got == [form]
    with pytest.raises(HttpError) as caught:
        await client.post_form(url(server, "moved"), form)
    assert caught.value.server_status == 302 and len(got) == 1


async def test_connections_per_host_are_limited(serve: Serve) -> None:
    busy, most = [0], [0]

    async def slow(request: web.Request) -> web.Response:
        busy[0] += 1
        most[0] = max(most[0], busy[0])
        await asyncio.sleep(0.05)
        busy[0] -= 1
        return web.Response(body=BODY)

    server = await serve(slow=slow)
    async with Client(Limits(connections_per_host=2)) as polite:
        answers = await asyncio.gather(*(polite.get(url(server, "slow")) for _ in range(6)))
    assert [a.body for a in answers] == [BODY] * 6
    assert most[0] == 2


def test_every_http_code_has_danish_words() -> None:
    http_codes = [code for code in CATALOGUE if code.startswith("http.")]
    assert codes.TIMEOUT in http_codes and len(http_codes) > 20
    for code in http_codes:
        if code == codes.OS_ERROR:  # the operating system's words, passed through
            continue
        assert Message(code).render("da") != CATALOGUE[code].singular, code
