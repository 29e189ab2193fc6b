"""The aggregator under a realistic load: 200 villages x 50 entries on loopback.

(a) a full refresh: wall and CPU, and our ingest against bare `feedparser.parse(bytes)` and an
    ElementTree parse of the same bytes; (b) a refresh where nothing changed (all 304);
(c) the longest /healthz answer during a full refresh; (d) RSS with 20,000 stored entries;
(e) /calendar.ics and /feed.atom requests/s against a static-file server for the same bytes.
Feed server, /healthz probe and load generator run in their own processes, so the figures are
the aggregator's alone. Run with `python -m bench.aggregator_bench` (or `make bench`).
"""

from __future__ import annotations

import asyncio
import io
import multiprocessing as mp
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

VILLAGES = 200
ENTRIES = 50
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
LOAD_SECONDS = 2.0
LOAD_CONCURRENCY = 8


# --- test data ----------------------------------------------------------------------------


def village_items(n: int, entries: int) -> list[Any]:
    """Return `entries` realistic events and notices for village number `n`."""
    from klynge.model import Event, Notice, Place

    rnd = random.Random(n)
    now = datetime.now(UTC).replace(microsecond=0)
    items: list[Any] = []
    for i in range(entries):
        uid = f"urn:uuid:{n:08x}-0000-4000-8000-{i:012x}"
        updated = now - timedelta(hours=rnd.randint(1, 500))
        if i % 5 == 4:
            items.append(
                Notice(
                    id=uid,
                    title=f"Opslag {i} fra landsby {n}",
                    updated=updated,
                    body="<p>Hjælp søges til <b>juletræet</b>.</p>",
                    category="volunteers",
                    expires=now + timedelta(days=20),
                )
            )
            continue
        start = (now + timedelta(days=rnd.randint(-20, 120), hours=rnd.randint(0, 12))).replace(
            minute=0, second=0
        )
        items.append(
            Event(
                id=uid,
                title=f"Arrangement {i} i landsby {n}",
                updated=updated,
                start=start,
                end=start + timedelta(hours=2),
                category=rnd.choice(["sport", "culture", "community"]),
                organizer="Forsamlingshuset",
                organizer_url="https://forsamlingshus.example.dk/",
                description="<p>Kom og vær med. Der er <em>kaffe</em> og kage.</p>",
                place=Place(
                    name="Forsamlingshuset",
                    street="Hovedgaden 1",
                    postcode="8000",
                    locality=f"By {n}",
                ),
                rrule="FREQ=WEEKLY;COUNT=10" if i % 10 == 0 else "",
                link=f"http://v{n}.example/events/{i}",
            )
        )
    return items


def village_feed(n: int, base: str, entries: int = ENTRIES) -> bytes:
    """Return village `n`'s Klynge feed as its node would publish it."""
    from klynge.atom.writer import FeedMeta, write_feed

    meta = FeedMeta(
        id=f"urn:klynge:village-{n}",
        title=f"Landsby {n}",
        self_url=f"{base}/v{n}.atom",
        updated=datetime.now(UTC).replace(microsecond=0),
    )
    return write_feed(meta, village_items(n, entries))


# --- helper processes ---------------------------------------------------------------------


def _feed_server(feed_dir: str, static_dir: str, ports: Any, stop: Any) -> None:
    """Serve every feed file (with ETag/304) and a static directory, until `stop` is set."""
    import hashlib

    from aiohttp import web

    bodies = {f"/{p.name}": p.read_bytes() for p in Path(feed_dir).iterdir()}
    tags = {k: '"' + hashlib.sha1(v).hexdigest() + '"' for k, v in bodies.items()}

    async def feed(request: web.Request) -> web.Response:
        body, tag = bodies.get(request.path), tags.get(request.path)
        if body is None:
            raise web.HTTPNotFound()
        if request.headers.get("If-None-Match") == tag:
            return web.Response(status=304, headers={"ETag": str(tag)})
        return web.Response(
            body=body, content_type="application/atom+xml", headers={"ETag": str(tag)}
        )

    async def main() -> None:
        app = web.Application()
        app.router.add_static("/static/", static_dir)
        app.router.add_get("/{name}", feed)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        ports.put(runner.addresses[0][1])
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await runner.cleanup()

    asyncio.run(main())


def _probe(url: str, stop: Any, result: Any) -> None:
    """GET `url` every 10 ms until `stop`; report the longest answer in ms and the count.

    A new connection each time, as a health checker makes; failures count as 10 s answers.
    """
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    longest, count = 0.0, 0
    while not stop.is_set():
        t0 = time.perf_counter()
        try:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
            conn.request("GET", parts.path)
            conn.getresponse().read()
            conn.close()
            longest = max(longest, time.perf_counter() - t0)
        except OSError:
            longest = max(longest, 10.0)
        count += 1
        time.sleep(0.01)
    result.put((longest * 1000, count))


def _load(url: str, seconds: float, concurrency: int, result: Any) -> None:
    """Send GETs at `url` from `concurrency` clients for `seconds`; report requests/s."""
    import aiohttp

    async def main() -> float:
        done = 0
        deadline = time.perf_counter() + seconds
        async with aiohttp.ClientSession() as session:

            async def worker() -> None:
                nonlocal done
                while time.perf_counter() < deadline:
                    async with session.get(url) as resp:
                        await resp.read()
                        assert resp.status == 200
                    done += 1

            t0 = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return done / (time.perf_counter() - t0)

    result.put(asyncio.run(main()))


def in_process(target: Callable[..., None], *args: Any) -> Any:
    """Run `target(*args, queue)` in a fresh process and return what it puts on the queue."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    value = queue.get(timeout=120)
    proc.join(timeout=30)
    return value


# --- the measurements -----------------------------------------------------------------------


def baseline_cpu(bodies: list[bytes]) -> tuple[float, float, float]:
    """Return CPU seconds of bare feedparser, of ElementTree and of our feedreader over `bodies`."""
    import feedparser

    from klynge.atom.reader import read_feed

    def cpu(func: Callable[[bytes], object]) -> float:
        t0 = time.process_time()
        for body in bodies:
            func(body)
        return time.process_time() - t0

    return (
        cpu(lambda b: feedparser.parse(io.BytesIO(b))),  # defaults: sanitiser and URI resolution on
        cpu(ET.fromstring),
        cpu(read_feed),
    )


async def full_refresh(config: Any, healthz_probe: bool) -> dict[str, float]:
    """Run the aggregator app, refresh every source, then refresh again with nothing changed."""
    from aiohttp import web

    from aggregator.app import create_app
    from aggregator.keys import MERGED, OUTPUTS, REFRESHER

    app = create_app(config, periodic=False)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    ctx = mp.get_context("spawn")
    stop, result = ctx.Event(), ctx.Queue()
    probe = ctx.Process(target=_probe, args=(f"{base}/healthz", stop, result))
    if healthz_probe:
        probe.start()
        await asyncio.sleep(1.0)  # let the probe connect and settle
    refresher = app[REFRESHER]
    stalls: list[float] = []
    watcher = asyncio.ensure_future(_watch_loop(stalls))
    t0, c0 = time.perf_counter(), time.process_time()
    outcomes = await refresher.refresh_all()
    figures = {"full_wall": time.perf_counter() - t0, "full_cpu": time.process_time() - c0}
    watcher.cancel()
    figures["loop_stall_ms"] = max(stalls) * 1000
    assert all(o.ok for o in outcomes), [o for o in outcomes if not o.ok][:3]
    if healthz_probe:
        stop.set()
        figures["healthz_max_ms"], figures["healthz_count"] = result.get(timeout=30)
        probe.join(timeout=10)
    writes = refresher.store.writes
    t0, c0 = time.perf_counter(), time.process_time()
    outcomes = await refresher.refresh_all()
    figures["same_wall"], figures["same_cpu"] = time.perf_counter() - t0, time.process_time() - c0
    assert all(o.words.startswith("not modified") for o in outcomes)
    assert refresher.store.writes == writes  # nothing changed: no store write
    figures["entries"] = len(app[MERGED].merged().items)
    figures["writes"] = writes
    figures["base"] = base  # type: ignore[assignment]
    return figures | {"_runner": runner, "_app": app, "_outputs": app[OUTPUTS]}  # type: ignore[dict-item]


async def _watch_loop(stalls: list[float]) -> None:
    """Record how late a 10 ms sleep wakes up: the event loop's longest stall."""
    loop = asyncio.get_running_loop()
    while True:
        t0 = loop.time()
        await asyncio.sleep(0.01)
        stalls.append(loop.time() - t0 - 0.01)


async def throughput(base: str, static_base: str, static_dir: Path, app: Any) -> dict[str, float]:
    """Measure req/s of our cached documents against static files of the same bytes."""
    from aggregator.keys import OUTPUTS

    out: dict[str, float] = {}
    for path, name in (("/calendar.ics", "calendar.ics"), ("/feed.atom", "feed.atom")):
        doc = await (app[OUTPUTS].calendar() if name == "calendar.ics" else app[OUTPUTS].feed())
        (static_dir / name).write_bytes(doc.body)
        out[f"{name}_bytes"] = len(doc.body)
        ours = await asyncio.to_thread(
            in_process, _load, base + path, LOAD_SECONDS, LOAD_CONCURRENCY
        )
        static = await asyncio.to_thread(
            in_process, _load, f"{static_base}/static/{name}", LOAD_SECONDS, LOAD_CONCURRENCY
        )
        out[f"{name}_ours"], out[f"{name}_static"] = ours, static
    return out


RSS_SCRIPT = """
import asyncio, sys, time
from pathlib import Path
from aiohttp import web
from aggregator.app import create_app
from aggregator.config import load_config
from aggregator.keys import MERGED, OUTPUTS, REFRESHER

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
async def watch(stalls):
    loop = asyncio.get_running_loop()
    while True:
        t0 = loop.time()
        await asyncio.sleep(0.01)
        stalls.append(loop.time() - t0 - 0.01)
async def main():
    app = create_app(load_config(Path(sys.argv[1]), env={}), periodic=False)
    runner = web.AppRunner(app)
    t0 = time.perf_counter()
    await runner.setup()
    up = time.perf_counter() - t0  # the app answers from here on (it loads in the background)
    stalls = [0.0]
    watcher = asyncio.ensure_future(watch(stalls))
    await app[REFRESHER].ready()
    load = time.perf_counter() - t0
    watcher.cancel()
    loaded = rss()
    entries = len(app[MERGED].merged().items)
    await app[OUTPUTS].feed(); await app[OUTPUTS].calendar()
    built = rss()
    await runner.cleanup()
    print(entries, loaded, built, up, load, max(stalls))
asyncio.run(main())
"""


def rss_with(entries: int, feed_dir: Path, data_dir: Path, base: str) -> tuple[float, ...]:
    """Store `entries` entries in a data dir and start an app on it in a fresh process.

    Return (count, RSS loaded, RSS built) in MB, the seconds until the app answers and until it
    has loaded, and the longest event-loop stall while loading.
    """
    from aggregator.cli import refresh_once
    from aggregator.config import AggregatorConfig, Source

    villages = entries // ENTRIES
    data_dir.mkdir()
    config = AggregatorConfig(
        data_dir=data_dir,
        name="Klynge Bench",
        url="http://bench.example",
        sources=tuple(Source(f"{base}/v{n}.atom") for n in range(villages)),
    )
    from aggregator.config import save_config

    save_config(config)
    asyncio.run(refresh_once(config))
    out = subprocess.run(
        [sys.executable, "-c", RSS_SCRIPT, str(data_dir)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return tuple(float(value) for value in out)


def main() -> None:
    """Run every measurement and print a table of medians and ratios."""
    from aggregator.config import AggregatorConfig, Limits, Source

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        feed_dir, static_dir = root / "feeds", root / "static"
        feed_dir.mkdir()
        static_dir.mkdir()
        print(f"generating {2 * VILLAGES} feeds x {ENTRIES} entries ...", flush=True)
        for n in range(2 * VILLAGES):
            (feed_dir / f"v{n}.atom").write_bytes(village_feed(n, "http://bench.example"))
        ctx = mp.get_context("spawn")
        ports, stop = ctx.Queue(), ctx.Event()
        server = ctx.Process(
            target=_feed_server, args=(str(feed_dir), str(static_dir), ports, stop)
        )
        server.start()
        feed_base = f"http://127.0.0.1:{ports.get(timeout=60)}"
        try:
            bodies = [(feed_dir / f"v{n}.atom").read_bytes() for n in range(VILLAGES)]
            fp_cpu, et_cpu, reader_cpu = baseline_cpu(bodies)
            sources = tuple(Source(f"{feed_base}/v{n}.atom") for n in range(VILLAGES))
            runs: list[dict[str, Any]] = []
            for run in range(RUNS + 1):
                data = root / f"agg{run}"
                data.mkdir()
                config = AggregatorConfig(
                    data_dir=data,
                    name="Klynge Bench",
                    url="http://bench.example",
                    sources=sources,
                    limits=Limits(jitter=0),
                )
                probe = run == RUNS  # one extra run with the /healthz probe: it costs CPU
                runs.append(asyncio.run(_measure(config, feed_base, static_dir, probe=probe)))
                print(f"run {run + 1}: full refresh {runs[-1]['full_wall']:.2f} s", flush=True)
            startup = rss_with(20_000, feed_dir, root / "rss", feed_base)
        finally:
            stop.set()
            server.join(timeout=30)
        report(runs, fp_cpu, et_cpu, reader_cpu, len(bodies), startup)


async def _measure(config: Any, feed_base: str, static_dir: Path, *, probe: bool) -> dict[str, Any]:
    figures = await full_refresh(config, healthz_probe=probe)
    runner = figures.pop("_runner")
    app = figures.pop("_app")
    figures.pop("_outputs")
    if probe:
        figures |= await throughput(figures["base"], feed_base, static_dir, app)
    await runner.cleanup()
    return figures


def report(
    runs: list[dict[str, Any]],
    fp_cpu: float,
    et_cpu: float,
    reader_cpu: float,
    feeds: int,
    rss: tuple[float, ...],
) -> None:
    """Print the table of medians and ratios."""

    last = runs[-1]
    runs = runs[:-1]  # the probe run only gives (c) and (e)

    def med(key: str) -> float:
        return statistics.median(float(r[key]) for r in runs)

    entries = int(med("entries"))
    rows = [
        (
            "(a) full refresh wall",
            f"{med('full_wall'):.2f} s",
            f"{VILLAGES} feeds, {entries} entries",
        ),
        (
            "(a) full refresh CPU",
            f"{med('full_cpu'):.2f} s",
            f"{1000 * med('full_cpu') / entries:.2f} ms/entry",
        ),
        ("(a) bare feedparser.parse CPU", f"{fp_cpu:.2f} s", "same bytes, defaults"),
        (
            "(a) klynge feedreader CPU",
            f"{reader_cpu:.2f} s",
            f"ratio to feedparser {reader_cpu / fp_cpu:.2f}",
        ),
        ("(a) ElementTree parse CPU", f"{et_cpu:.2f} s", "the floor"),
        ("(a) ratio full refresh / feedparser", f"{med('full_cpu') / fp_cpu:.2f}", "target <= 1.0"),
        ("(a) ratio full refresh / ElementTree", f"{med('full_cpu') / et_cpu:.1f}", "report"),
        ("(a) store writes in the pass", f"{med('writes'):.0f}", "a file per source + index"),
        ("(b) nothing changed (304) wall", f"{med('same_wall'):.2f} s", ""),
        ("(b) nothing changed (304) CPU", f"{med('same_cpu'):.2f} s", "target < 0.5 s"),
        (
            "(c) longest /healthz in refresh",
            f"{last['healthz_max_ms']:.0f} ms",
            f"target <= 100 ms; {last['healthz_count']:.0f} probes, a new connection each",
        ),
        (
            "(c) longest event-loop stall",
            f"{med('loop_stall_ms'):.0f} ms",
            "in-process: lateness of 10 ms sleeps",
        ),
        (
            "(d) RSS, 20,000 entries loaded",
            f"{rss[1]:.0f} MB",
            f"{rss[0]:.0f} entries; target <= 150 MB",
        ),
        ("(d) RSS, + feed and ICS built", f"{rss[2]:.0f} MB", "target <= 150 MB"),
        ("(d) start-up: app answering after", f"{rss[3]:.2f} s", "loads in the background"),
        (
            "(d) start-up: loaded after",
            f"{rss[4]:.2f} s",
            f"longest loop stall meanwhile {1000 * rss[5]:.0f} ms",
        ),
    ]
    for name in ("calendar.ics", "feed.atom"):
        ours, static = last[f"{name}_ours"], last[f"{name}_static"]
        size = last[f"{name}_bytes"] / 1e6
        rows.append(
            (
                f"(e) /{name} req/s",
                f"{ours:.0f}",
                f"static {static:.0f}, ratio {ours / static:.2f}, {size:.1f} MB",
            )
        )
    print(f"\n{'measure (median of ' + str(len(runs)) + ' runs)':<40} {'value':>10}  notes")
    for name, value, note in rows:
        print(f"{name:<40} {value:>10}  {note}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n(peak RSS of the bench process itself: {peak:.0f} MB)")


if __name__ == "__main__":
    main()
