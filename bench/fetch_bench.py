"""Cost of our capped, streamed fetch against a bare aiohttp GET of the same bytes on loopback."""

from __future__ import annotations

import asyncio
import gzip
import statistics
import time
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from aggregator.reader.fetcher import Fetcher

ENTRY = (
    "<entry><title>Fællesspisning i forsamlingshuset</title>"
    "<id>urn:uuid:{n:08d}-0000-4000-8000-000000000000</id>"
    "<updated>2026-11-27T10:00:00Z</updated><content>Vi spiser sammen kl. 18.</content></entry>"
)
BODY = (
    '<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom">'
    + "".join(ENTRY.format(n=n) for n in range(200))
    + "</feed>"
).encode()
PACKED = gzip.compress(BODY)
ROUNDS = 5
FETCHES = 200  # one refresh of 200 villages, 20 at a time
CONCURRENCY = 20


async def handler(request: web.Request) -> web.Response:
    """Serve the feed gzipped, or 304 when the client already has it."""
    if request.headers.get("If-None-Match") == '"v1"':
        return web.Response(status=304, headers={"ETag": '"v1"'})
    return web.Response(body=PACKED, headers={"Content-Encoding": "gzip", "ETag": '"v1"'})


async def run(get: Callable[[], Awaitable[int]]) -> tuple[float, float]:
    """Run FETCHES gets, CONCURRENCY at a time; return wall and CPU milliseconds."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one() -> int:
        async with gate:
            return await get()

    wall, cpu = time.perf_counter(), time.process_time()
    sizes = await asyncio.gather(*(one() for _ in range(FETCHES)))
    assert all(size in (0, len(BODY)) for size in sizes)
    return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000


async def measure(get: Callable[[], Awaitable[int]]) -> tuple[float, float]:
    """Return the median wall and CPU milliseconds over ROUNDS after one warm-up."""
    await run(get)
    results = [await run(get) for _ in range(ROUNDS)]
    return statistics.median(r[0] for r in results), statistics.median(r[1] for r in results)


async def main_async() -> None:
    """Print medians and ratios for a full refresh and an all-304 refresh, side by side."""
    app = web.Application()
    app.router.add_get("/feed.atom", handler)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    url = str(server.make_url("/feed.atom"))
    fetcher = Fetcher()
    bare = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit_per_host=2))

    async def ours(etag: str = "") -> int:
        return len((await fetcher.fetch(url, etag=etag)).body)

    async def naive(etag: str = "") -> int:
        headers = {"If-None-Match": etag} if etag else {}
        async with bare.get(url, headers=headers) as resp:
            return len(await resp.read())

    try:
        rows = [
            ("full (200, gzip)", await measure(naive), await measure(ours)),
            (
                "unchanged (304)",
                await measure(lambda: naive('"v1"')),
                await measure(lambda: ours('"v1"')),
            ),
        ]
    finally:
        await fetcher.close()
        await bare.close()
        await server.close()
    print(
        f"{FETCHES} fetches of a {len(BODY):,} byte feed ({len(PACKED):,} gzipped); "
        "CPU includes the loopback server"
    )
    print(
        f"{'refresh':<18} {'bare wall ms':>12} {'bare cpu ms':>12} {'ours wall ms':>12} "
        f"{'ours cpu ms':>12} {'cpu ratio':>9}"
    )
    for name, (b_wall, b_cpu), (o_wall, o_cpu) in rows:
        print(
            f"{name:<18} {b_wall:>12.0f} {b_cpu:>12.0f} {o_wall:>12.0f} {o_cpu:>12.0f} "
            f"{o_cpu / b_cpu:>9.2f}"
        )


def main() -> None:
    """Run the benchmark."""
    asyncio.run(main_async())


if __name__ == "__main__":
    main()
