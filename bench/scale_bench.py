"""Scale: the rows of issue 15's table at 1k, 5k, 20k and 50k entries, in real `serve` processes.

Villages x 50 entries on one loopback feed server (bench.serve_bench's harness: the same
template, feed server, /healthz probe, /proc figures and change-and-ping). Per size, on a
fresh data directory: a full refresh, then one village changes and pings (CPU until
/calendar.ics and /feed.atom show it, the longest /healthz meanwhile: the loop stall bound),
then each page and /api/events once after that change (not cached) and once more (cached),
the documents' sizes, RSS, a stop and a restart on the same directory (start-up until every
source is loaded and /calendar.ics is built), and the store write of one source in this
process (the store keeps one file per source, so it costs one source's entries at any size).
The issue's figures (before) and its targets at 50k are printed beside; at 1k each per-change
cost is also shown as on a Raspberry Pi 4 core (assumed 4x slower), against 0.25 s.

    python -m bench.scale_bench [--sizes 1000,5000,20000,50000]   (or BENCH_SIZES)
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from aggregator.store.sources import Store
from bench.aggregator_bench import ENTRIES, village_feed
from bench.serve_bench import (
    FIRST_POLLS,
    REPO,
    Tree,
    all_fetched,
    check_tree,
    cpu_seconds,
    feed_server,
    full_refresh,
    get,
    one_change,
    rss_with_children,
    serving,
    template,
    tree_env,
    wait_until,
)

PI_FACTOR = 4.0  # a Raspberry Pi 4 core against one core here (issue 15's assumption)
PI_BUDGET = 0.25  # seconds per change on the Pi
MONTH = "/api/events"  # the API's default window is one month from today

# (label, key, unit, the figures at 1k / 20k / 50k, the target at 50k)
ROWS = [
    ("one change: outputs current, CPU", "one_cpu", "s", "0.58 / 12.7 / 36.5", "<= 0.5 s"),
    ("  + the parse worker's CPU", "one_cpu_all", "s", "", ""),
    ("one change: wall until shown", "one_wall", "s", "", ""),
    ("store write, one source", "store_write", "ms", "10 / 150 / 380", "<= 30 ms"),
    ("longest loop stall (/healthz)", "one_healthz", "ms", "6 / 236 / 651", "<= 20 ms"),
    ("RSS + children, built", "rss_all", "MB", "70 / 233 / 619", "<= 250 MB"),
    ("/ not cached", "home_cold", "ms", "19 / 254 / 661", ""),
    ("/ cached", "home_warm", "ms", "", "<= 10 ms"),
    ("/calendar?view=month not cached", "month_cold", "ms", "26 / 356 / 895", ""),
    ("/calendar?view=month cached", "month_warm", "ms", "", "<= 10 ms"),
    ("/api/events month not cached", "api_cold", "ms", "25 / 500 / 1300", ""),
    ("/api/events month cached", "api_warm", "ms", "", ""),
    ("/api/events month size", "api_size", "MB", "- / - / 16", ""),
    ("/feed.atom size", "feed_size", "MB", "1.2 / 23 / 58", "<= 5 MB"),
    ("/calendar.ics size", "ics_size", "MB", "", ""),
    ("start-up to fully loaded", "startup", "s", "", "<= 5 s"),
    ("full refresh wall (all pinged)", "full_wall", "s", "", ""),
]


def timed_get(url: str) -> tuple[float, int]:
    """GET `url` once; return the milliseconds it took and the body's size in bytes."""
    t0 = time.perf_counter()
    _status, body, _etag = get(url)
    return (time.perf_counter() - t0) * 1000, len(body)


def pages(base: str) -> dict[str, float]:
    """Time each page and the API once not cached (first after a change) and once cached."""
    figures: dict[str, float] = {}
    for key, path in (("home", "/"), ("month", "/calendar?view=month"), ("api", MONTH)):
        figures[f"{key}_cold"], size = timed_get(base + path)
        figures[f"{key}_warm"] = statistics.median(timed_get(base + path)[0] for _ in range(5))
        if key == "api":
            figures["api_size"] = size / 1e6
    figures["feed_size"] = len(get(f"{base}/feed.atom")[1]) / 1e6
    figures["ics_size"] = len(get(f"{base}/calendar.ics")[1]) / 1e6
    return figures


def startup(tree: Tree, data: Path) -> float:
    """Start `serve` on a loaded directory; return seconds until all is loaded and built."""
    t0 = time.monotonic()
    with serving(tree, data, data.parent / f"{data.name}-restart.log") as (proc, base):
        wait_until(lambda: all_fetched(base), 0.05)
        get(f"{base}/calendar.ics")
        took = time.monotonic() - t0
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    return took


def store_write(data: Path, url: str) -> float:
    """Return the median milliseconds of writing one source's state to the store."""
    store = Store(data)
    state = store.load([url])[url]
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        store.save(state)
        times.append((time.perf_counter() - t0) * 1000)
    store.close()
    return statistics.median(times)


def measure(tree: Tree, data: Path, feed_dir: Path, feeds: list[str]) -> dict[str, float]:
    """Take every figure of one size on a fresh data directory."""
    with serving(tree, data, data.parent / f"{data.name}.log") as (proc, base):
        started = time.monotonic()
        figures = full_refresh(proc.pid, base, feeds)
        time.sleep(max(0.0, started + FIRST_POLLS - time.monotonic()))  # the first polls
        figures |= one_change(proc.pid, base, feed_dir, feeds[0])
        figures |= pages(base)
        figures["rss_all"] = rss_with_children(proc.pid)
        figures["cpu_total"] = cpu_seconds(proc.pid)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    figures["startup"] = startup(tree, data)
    figures["store_write"] = store_write(data, feeds[0])
    return figures


def report(results: dict[int, dict[str, float]]) -> None:
    """Print every row at every size, with the issue's figures and the targets beside."""
    sizes = sorted(results)
    head = "".join(f"{size:>10}" for size in sizes)
    print(f"\n{'measure':<36}{head}  unit  {'issue: 1k / 20k / 50k':<22} target at 50k")
    for label, key, unit, before, target in ROWS:
        cells = "".join(_cell(results[s].get(key, float("nan")), unit) for s in sizes)
        print(f"{label:<36}{cells}  {unit:<4}  {before:<22} {target}")
    if 1000 in results:
        print(f"\nat 1k entries, as on a Raspberry Pi 4 core ({PI_FACTOR:g}x slower than here):")
        one = results[1000]
        for label, seconds in (
            ("one change, every output current (CPU)", one["one_cpu"]),
            ("/ not cached", one["home_cold"] / 1000),
            ("/calendar?view=month not cached", one["month_cold"] / 1000),
            ("/api/events month not cached", one["api_cold"] / 1000),
            ("store write, one source", one["store_write"] / 1000),
        ):
            pi = seconds * PI_FACTOR
            mark = "ok" if pi <= PI_BUDGET else "OVER"
            print(f"  {label:<42} {pi:6.3f} s  (budget {PI_BUDGET} s: {mark})")
    print()


def _cell(value: float, unit: str) -> str:
    return f"{value:>10.0f}" if unit in ("ms",) and value >= 10 else f"{value:>10.2f}"


def main() -> None:
    """Measure each size in turn on the working tree and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=os.environ.get("BENCH_SIZES", "1000,5000,20000,50000"))
    sizes = [int(s) for s in parser.parse_args().sizes.split(",")]
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    tree = Tree("new", REPO, tree_env(REPO, now))
    check_tree(tree)
    results: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="scale-bench-") as tmp:
        root = Path(tmp)
        feed_dir = root / "feeds"
        feed_dir.mkdir()
        for n in range(max(sizes) // ENTRIES):
            (feed_dir / f"v{n}.atom").write_bytes(village_feed(n, "http://bench.example"))
        with feed_server(feed_dir) as feeds_base:
            for size in sizes:
                feeds = [f"{feeds_base}/v{n}.atom" for n in range(size // ENTRIES)]
                data = template(tree, root, feeds)
                print(f"{size} entries ({len(feeds)} villages) ...", flush=True)
                results[size] = measure(tree, data, feed_dir, feeds)
                report(results)  # each size's figures as soon as they are measured


if __name__ == "__main__":
    main()
