"""`klynge healthcheck` against real servers on loopback."""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web
from aiohttp.test_utils import TestServer

PY = sys.executable


async def _run(url: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        PY,
        "-m",
        "klynge.cli",
        "healthcheck",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=20)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def _server(status: int, delay: float = 0.0) -> TestServer:
    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(delay)
        return web.json_response({"status": "ok"}, status=status)

    app = web.Application()
    app.router.add_get("/healthz", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    return server


async def test_healthy_server_exits_zero() -> None:
    server = await _server(200)
    try:
        code, out = await _run(str(server.make_url("/healthz")))
    finally:
        await server.close()
    assert code == 0
    assert "HTTP 200" in out


async def test_error_status_exits_one() -> None:
    server = await _server(503)
    try:
        code, out = await _run(str(server.make_url("/healthz")))
    finally:
        await server.close()
    assert code == 1
    assert "HTTP 503" in out


async def test_slow_server_times_out() -> None:
    server = await _server(200, delay=6)
    try:
        code, out = await _run(str(server.make_url("/healthz")))
    finally:
        await server.close()
    assert code == 1
    assert "did not answer" in out


async def test_closed_port_and_bad_url() -> None:
    code, out = await _run("http://127.0.0.1:9/healthz")
    assert code == 1 and "did not answer" in out
    code, out = await _run("ftp://example.org/")
    assert code == 1 and "not an http(s) URL" in out
