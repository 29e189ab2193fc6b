"""deploy/nginx-cache.conf with a real nginx: outputs from the cache, 1 s fresh, pings passed on."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from test_deploy import DEPLOY, TEMP_PATHS, free_port, proxy, run, tool

BODY = b'<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom"/>'
ETAG = '"v1"'
SEEN: web.AppKey[list[tuple[str, str]]] = web.AppKey("seen", list)


async def feed(request: web.Request) -> web.Response:
    """Answer like the aggregator: a strong ETag, max-age 60, 304 on a match."""
    request.app[SEEN].append((request.path, request.headers.get("If-None-Match", "")))
    headers = {"ETag": ETAG, "Cache-Control": "public, max-age=60"}
    if request.headers.get("If-None-Match", "").removeprefix("W/") == ETAG:
        return web.Response(status=304, headers=headers)
    return web.Response(body=BODY, content_type="application/atom+xml", headers=headers)


async def page(request: web.Request) -> web.Response:
    """Answer like a page: its language from the cookie, Vary on it."""
    request.app[SEEN].append((request.path, request.cookies.get("lang", "")))
    lang = request.cookies.get("lang", "da")
    return web.Response(text=f"<html lang={lang}>", content_type="text/html",
                        headers={"Vary": "Accept-Language, Cookie"})  # fmt: skip


async def ping(request: web.Request) -> web.Response:
    """Accept a ping like the aggregator."""
    request.app[SEEN].append((request.path, (await request.read()).decode()))
    return web.Response(status=202, text="ok")


@pytest.fixture
async def aggregator(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> TestServer:
    """Start a stand-in for the aggregator on loopback."""
    app = web.Application()
    app[SEEN] = []
    app.router.add_get("/feed.atom", feed)
    app.router.add_get("/", page)
    app.router.add_post("/ping", ping)
    return await aiohttp_server(app, host="127.0.0.1")


def site_for_test(tmp_path: Path, port: int, upstream: int) -> Path:
    """Write an nginx.conf that includes the cache site, pointed at the stand-in."""
    site = (DEPLOY / "nginx-cache.conf").read_text()
    site = site.replace("127.0.0.1:8080", f"127.0.0.1:{upstream}")
    site = site.replace("/var/cache/nginx/klynge", str(tmp_path / "cache"))
    site = site.replace("    listen [::]:80;\n", "").replace(
        "listen 80;", f"listen 127.0.0.1:{port};"
    )
    (tmp_path / "site.conf").write_text(site)
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        # The workers write the cache: as the test's own user, who owns tmp_path.
        f"daemon off;\nuser {getpass.getuser()};\npid {tmp_path}/nginx.pid;\n"
        f"error_log stderr;\nevents {{}}\n"
        f"http {{\n include /etc/nginx/mime.types;\n access_log off;\n"
        + "".join(f" {kind}_temp_path {tmp_path}/{kind};\n" for kind in TEMP_PATHS)
        + f" include {tmp_path}/site.conf;\n}}\n"
    )
    return conf


async def test_nginx_serves_outputs_from_its_cache_for_one_second_then_revalidates(
    tmp_path: Path, aggregator: TestServer
) -> None:
    nginx = tool("nginx", "nginx")
    port = free_port()
    conf = site_for_test(tmp_path, port, aggregator.port)
    args = [nginx, "-p", str(tmp_path), "-e", "stderr", "-c", str(conf)]
    check = run([*args, "-t"])
    assert check.returncode == 0, check.stderr
    seen = aggregator.app[SEEN]
    async with proxy(args, port, tmp_path / "nginx.log") as base, aiohttp.ClientSession() as c:
        statuses = []
        for _ in range(5):
            async with c.get(f"{base}/feed.atom") as resp:
                assert resp.status == 200 and await resp.read() == BODY
                statuses.append(resp.headers["X-Cache-Status"])
        assert statuses[0] == "MISS" and set(statuses[1:]) == {"HIT"}, statuses
        assert seen == [("/feed.atom", "")]  # five residents, one request to the service
        async with c.get(f"{base}/feed.atom", headers={"If-None-Match": ETAG}) as resp:
            assert resp.status == 304  # answered by nginx from its copy
        assert len(seen) == 1
        await asyncio.sleep(1.5)  # past the one second of freshness
        for _ in range(40):  # the refresh runs in the background: bounded wait for it
            async with c.get(f"{base}/feed.atom") as resp:
                assert resp.status == 200 and await resp.read() == BODY
            if len(seen) > 1:
                break
            await asyncio.sleep(0.05)
        assert seen[1] == ("/feed.atom", ETAG)  # a conditional GET: the service answers 304
        # Pages: one copy per language cookie.
        for lang in ("da", "en", "da"):
            async with c.get(f"{base}/", headers={"Cookie": f"lang={lang}"}) as resp:
                assert await resp.text() == f"<html lang={lang}>"
        assert [s for s in seen if s[0] == "/"] == [("/", "da"), ("/", "en")]
        form = {"hub.mode": "publish", "hub.url": "https://osterby.example.dk/feed.atom"}
        for _ in range(2):
            async with c.post(f"{base}/ping", data=form) as resp:
                assert resp.status == 202
        assert [s for s in seen if s[0] == "/ping"] == [("/ping", "hub.mode=publish&hub.url="
                "https%3A%2F%2Fosterby.example.dk%2Ffeed.atom")] * 2  # fmt: skip
