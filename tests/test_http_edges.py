"""The services' HTTP edges as a stranger on the network meets them: real `klynge … serve`
processes on loopback, raw sockets that send half a request and then nothing (or a byte now
and then), hundreds of them at once, under a small open-files limit."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from clock_support import local_today
from node_support import KLYNGE, auth, make_node
from service_support import Running, service, wait_healthy

from klynge.cli import REQUEST_HEAD_TIMEOUT

pytestmark = pytest.mark.slow
# Closed within the timeout plus the time to notice (aiohttp's timer) and a loaded machine.
BOUND = REQUEST_HEAD_TIMEOUT + 3.0
HALF_REQUESTS = (
    b"",  # connects and says nothing
    b"GET /feed.atom HTT",  # half a request line
    b"GET /feed.atom HTTP/1.1\r\nHost: osterby.test\r\n",  # headers that never end
    b"POST /api/events HTTP/1.1\r\nHost: osterby.test\r\nContent-Le",
)
IDLE = 300  # connections held open at once, more than the service's soft limit of files
FILES = 256


async def held_open(running: Running, payload: bytes, dribble: bool) -> float:
    """Send `payload`, then a byte a second if `dribble`; return when the server closed it."""
    start = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", running.port)
    writer.write(payload)
    await writer.drain()
    try:
        while not reader.at_eof():
            if dribble:
                writer.write(b"X")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(reader.read(1024), timeout=1.0)
            if time.monotonic() - start > BOUND + 5:
                raise AssertionError(f"still open after {BOUND + 5} s: {payload!r}")
    except ConnectionResetError:
        pass
    finally:
        writer.close()
    return time.monotonic() - start


async def serves_meanwhile(running: Running, token: str | None) -> None:
    """The service still answers, and (a node) still writes its store, while held open."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        async with session.get(f"{running.base}/healthz") as response:
            assert response.status == 200
        if token is None:
            return
        soon = local_today() + timedelta(days=3)
        event = {"title": "Mens de venter", "start": f"{soon}T19:00"}
        async with session.post(f"{running.base}/api/events", json=event,
                                headers=auth(token)) as response:  # fmt: skip
            assert response.status == 201, await response.text()
        async with session.get(f"{running.base}/feed.atom") as response:
            assert "Mens de venter" in await response.text()


async def flood(running: Running, token: str | None) -> list[float]:
    tasks = [
        # Some of those with unfinished headers add a byte a second to a header name.
        asyncio.create_task(held_open(running, HALF_REQUESTS[n % 4], dribble=n % 8 == 2))
        for n in range(IDLE)
    ]
    await asyncio.sleep(1.0)  # all connected and waiting
    await serves_meanwhile(running, token)
    return await asyncio.gather(*tasks)


def aggregator_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "klynge"
    subprocess.run(
        [KLYNGE, "aggregator", "init", str(directory), "--name", "Klyngen",
         "--url", "http://klynge.test"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return directory


async def test_half_sent_requests_are_closed_in_time_and_exhaust_nothing(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    with (
        service("node", node.path, files=FILES) as village,
        service("aggregator", aggregator_dir(tmp_path), files=FILES) as cluster,
    ):
        await asyncio.gather(wait_healthy(village), wait_healthy(cluster))
        closed = await asyncio.gather(flood(village, node.token), flood(cluster, None))
        for running, times in zip((village, cluster), closed, strict=True):
            assert running.proc.poll() is None, "the service died"
            assert max(times) <= BOUND, f"slowest close {max(times):.1f} s"
            # Not closed at once either: a slow client gets the whole timeout.
            assert min(times) >= REQUEST_HEAD_TIMEOUT - 1.0, f"closed after {min(times):.1f} s"
            await serves_meanwhile(running, node.token if running is village else None)
