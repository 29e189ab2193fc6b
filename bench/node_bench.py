"""Village node benchmark: feed serving against a static-file server, POST latency, memory.

Run with `make bench` (or `python -m bench.node_bench`). Everything runs on 127.0.0.1 in one
go: the node is a real `klynge node serve` process; the static-file server is a separate
process with aiohttp's static route (`web.static`) serving the node's own feed bytes from a
file. The load generator is an aiohttp client in this process (bounded: concurrency 8, a
few seconds per measurement), so both servers meet the same client.
"""

from __future__ import annotations

import asyncio
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import redirect_stderr, redirect_stdout
from datetime import timedelta
from pathlib import Path

import aiohttp

from klynge.model import Event, Place, new_id, utcnow
from node.cli import main as node_main
from node.config import load_config
from node.store import Store

KLYNGE = str(Path(sys.executable).with_name("klynge"))
CONCURRENCY = 8
SECONDS = 3.0
POSTS = 200
STATIC_SERVER = """
import sys
from aiohttp import web
app = web.Application()
app.router.add_static("/", sys.argv[1])
web.run_app(app, host="127.0.0.1", port=int(sys.argv[2]), print=None, access_log=None)
"""


def free_port() -> int:
    """Return a free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def quiet(argv: list[str], stdin: str = "") -> str:
    """Run `klynge node ARGV` in-process and return its stdout."""
    out = io.StringIO()
    old = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with redirect_stdout(out), redirect_stderr(io.StringIO()):
            assert node_main(argv) == 0
    finally:
        sys.stdin = old
    return out.getvalue()


async def make_node(root: Path, events: int) -> tuple[Path, str]:
    """Create a node with one user, a token and `events` upcoming events; return dir, token."""
    path = root / f"node{events}"
    quiet(["init", str(path), "--name", "Østerby", "--url", "https://osterby.example.dk"])
    quiet(["user", "add", str(path), "anna", "--association", "Forsamlingshuset",
           "--password-stdin"], "a long password 1\n")  # fmt: skip
    token = quiet(["token", "add", str(path), "anna"]).strip().splitlines()[-1]
    store = Store.open(load_config(path, env={}).db_path)
    await store.save_many(sample_event(n) for n in range(events))
    store.close()
    return path, token


def sample_event(n: int) -> Event:
    """Return a realistic upcoming event."""
    start = utcnow() + timedelta(days=1 + n % 300, hours=n % 5)
    place = Place(name="Forsamlingshuset", street="Hovedgaden 12", postcode="4000",
                  locality="Østerby", lat=55.64, lon=11.82)  # fmt: skip
    return Event(
        id=new_id(), title=f"Fællesspisning nr. {n}", updated=utcnow(), created=utcnow(),
        start=start, end=start + timedelta(hours=3), organizer="Forsamlingshuset",
        category="food", place=place,
        description="<p>Vi spiser sammen og synger julen ind. Tag gerne en ret med.</p>",
    )  # fmt: skip


async def wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    """Wait (bounded) until `url` answers 200."""
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            if proc.poll() is not None:
                raise RuntimeError(f"server for {url} stopped at start")
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


async def rate(url: str, headers: dict[str, str] | None = None, expect: int = 200) -> float:
    """Return requests per second for GET `url` at the set concurrency."""
    done = 0
    deadline = time.perf_counter() + SECONDS

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            async with session.get(url, headers=headers) as response:
                await response.read()
                assert response.status == expect, response.status
            done += 1

    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(CONCURRENCY)))
        return done / (time.perf_counter() - start)


async def post_latencies(base: str, token: str) -> list[float]:
    """POST events one at a time; return each request's latency in ms."""
    times = []
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        for n in range(POSTS):
            payload = {"title": f"Ny begivenhed {n}", "start": "2027-03-01T19:00",
                       "location": {"name": "Skolen", "street": "Skolevej 2"}}  # fmt: skip
            t0 = time.perf_counter()
            async with session.post(f"{base}/api/events", json=payload) as response:
                await response.read()
                assert response.status == 201
            times.append((time.perf_counter() - t0) * 1000)
    return times


def rss_mb(pid: int) -> float:
    """Return the resident set size of a process in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def serve(path: Path, port: int) -> subprocess.Popen[bytes]:
    """Start `klynge node serve` on a port."""
    cmd = [KLYNGE, "node", "serve", str(path), "--port", str(port)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a child process we started."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def feed_part(root: Path) -> list[tuple[str, str]]:
    """(a) The 200-event feed from the node vs the same bytes from a static-file server."""
    path, _ = await make_node(root, 200)
    port, static_port = free_port(), free_port()
    node = serve(path, port)
    static_dir = root / "static"
    static_dir.mkdir()
    try:
        base = f"http://127.0.0.1:{port}"
        await wait_up(f"{base}/healthz", node)
        async with aiohttp.ClientSession() as session, session.get(f"{base}/feed.atom") as r:
            body, etag = await r.read(), r.headers["ETag"]
        (static_dir / "feed.atom").write_bytes(body)
        static = subprocess.Popen([sys.executable, "-c", STATIC_SERVER, str(static_dir),
                                   str(static_port)])  # fmt: skip
        try:
            await wait_up(f"http://127.0.0.1:{static_port}/feed.atom", static)
            static_url = f"http://127.0.0.1:{static_port}/feed.atom"
            static_rate = await rate(static_url)
            static_etag = await _etag(static_url)
            static_304 = await rate(static_url, {"If-None-Match": static_etag}, 304)
        finally:
            stop(static)
        node_rate = await rate(f"{base}/feed.atom")
        node_304 = await rate(f"{base}/feed.atom", {"If-None-Match": etag}, 304)
    finally:
        stop(node)
    return [
        ("feed size", f"{len(body) / 1024:.0f} KB (200 events)"),
        ("node /feed.atom 200", f"{node_rate:,.0f} req/s"),
        ("static server (aiohttp web.static, separate process), same bytes",
         f"{static_rate:,.0f} req/s"),
        ("ratio node / static (target >= 0.5)", f"{node_rate / static_rate:.2f}"),
        ("node /feed.atom 304 (If-None-Match)", f"{node_304:,.0f} req/s"),
        ("static server 304", f"{static_304:,.0f} req/s"),
    ]  # fmt: skip


async def _etag(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.headers["ETag"]


async def store_part(root: Path) -> list[tuple[str, str]]:
    """(b) POST latency and (c) memory with 2,000 events stored."""
    path, token = await make_node(root, 2000)
    port = free_port()
    node = serve(path, port)
    try:
        base = f"http://127.0.0.1:{port}"
        await wait_up(f"{base}/healthz", node)
        rss_start = rss_mb(node.pid)
        async with aiohttp.ClientSession() as session, session.get(f"{base}/feed.atom") as r:
            await r.read()
        rss_feed = rss_mb(node.pid)
        times = await post_latencies(base, token)
        rss_end = rss_mb(node.pid)
    finally:
        stop(node)
    p95 = statistics.quantiles(times, n=20)[-1]
    db_kb = (path / "node.json").stat().st_size / 1024
    return [
        ("database file with 2,000 events", f"{db_kb:,.0f} KB"),
        (f"POST /api/events median, {POSTS} sequential (target <= 20 ms)",
         f"{statistics.median(times):.1f} ms"),
        ("POST /api/events p95", f"{p95:.1f} ms"),
        ("node RSS after start, 2,000 events (target <= 70 MB)", f"{rss_start:.1f} MB"),
        ("node RSS after building the feed", f"{rss_feed:.1f} MB"),
        (f"node RSS after {POSTS} posts", f"{rss_end:.1f} MB"),
    ]  # fmt: skip


async def run() -> None:
    """Run all measurements and print a table."""
    with tempfile.TemporaryDirectory() as tmp:
        rows = await feed_part(Path(tmp))
        rows += await store_part(Path(tmp))
    width = max(len(name) for name, _ in rows)
    print(f"{'measurement':<{width}}  value")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(f"(client: aiohttp in one process, concurrency {CONCURRENCY}, {SECONDS:.0f} s each; "
          f"{os.cpu_count()} CPUs)")  # fmt: skip


def main() -> None:
    """Entry point for `python -m bench.node_bench`."""
    asyncio.run(run())


if __name__ == "__main__":
    main()
