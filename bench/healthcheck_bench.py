"""Start-up cost of `klynge healthcheck` (urllib) against the same check made with klynge.http.

A container runs the health check as a new process every 30 seconds, on a Raspberry Pi; this
is why klynge/healthcheck.py does not use the shared aiohttp client.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

from aiohttp import web
from aiohttp.test_utils import TestServer

ROUNDS = 7
PEAK = (
    "import resource, sys; "
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)"
)
URLLIB = "from klynge.healthcheck import main; code = main([URL]); " + PEAK
AIOHTTP = (
    "import asyncio; from klynge.http import Client\n"
    "async def check():\n"
    "    async with Client() as client:\n"
    "        return (await client.get(URL)).status\n"
    "print(asyncio.run(check())); " + PEAK
)


async def healthz(request: web.Request) -> web.Response:
    """Answer like a service's /healthz."""
    return web.json_response({"status": "ok"})


async def once(program: str, url: str) -> tuple[float, int]:
    """Run one check in a new interpreter; return its wall milliseconds and peak RSS in kB."""
    code = program.replace("URL", repr(url))
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    wall = (time.perf_counter() - started) * 1000
    if proc.returncode != 0 or b"200" not in out:
        raise RuntimeError(f"the check failed: {out!r} {err!r}")
    return wall, int(err.split()[-1])


async def measure(program: str, url: str) -> tuple[float, float]:
    """Return the median wall milliseconds and peak RSS (kB) over ROUNDS after one warm-up."""
    await once(program, url)
    runs = [await once(program, url) for _ in range(ROUNDS)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


async def main_async() -> None:
    """Print both ways side by side, with their ratios."""
    app = web.Application()
    app.router.add_get("/healthz", healthz)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    url = str(server.make_url("/healthz"))
    try:
        rows = [("urllib (ours)", await measure(URLLIB, url))]
        rows.append(("klynge.http", await measure(AIOHTTP, url)))
    finally:
        await server.close()
    base_wall, base_rss = rows[0][1]
    print(f"one health check in a new process, median of {ROUNDS}")
    print(f"{'client':<14} {'wall ms':>8} {'peak RSS kB':>12} {'wall ratio':>10} {'RSS ratio':>9}")
    for name, (wall, rss) in rows:
        print(
            f"{name:<14} {wall:>8.0f} {rss:>12.0f} {wall / base_wall:>10.2f} {rss / base_rss:>9.2f}"
        )


def main() -> None:
    """Run the benchmark."""
    asyncio.run(main_async())


if __name__ == "__main__":
    main()
