"""Real `klynge aggregator serve` processes of two code trees, side by side in one run.

The base revision (default 25f9837, the last before issue 11; checked out with `git worktree
add --detach` into a temp dir) and the working tree each run as a subprocess (`--port 0`, same
venv python, PYTHONPATH pointing at the tree, the same KLYNGE_NOW) against one loopback feed
server in its own process. Per tree and size (villages x 50 entries): a full refresh (every
source pinged at start; wall and CPU until /api/sources shows every source fetched and
/calendar.ics and /feed.atom are built), the longest /healthz meanwhile, RSS once built, then
the cost of one change (one village's feed changes, it pings; wall and CPU until both documents
show it) with the longest /healthz meanwhile, and how long SIGTERM takes to stop the service.
CPU is the serve process's own (/proc/PID/stat) and with its children (the parse worker).

    python -m bench.serve_bench [--sizes 1000,20000] [--runs 3] [--base REV]
    (or BENCH_SIZES, BENCH_RUNS, BENCH_BASE; `make bench` runs it with the defaults)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.aggregator_bench import ENTRIES, _probe, village_feed
from klynge.atom.scan import scan

REPO = Path(__file__).resolve().parents[1]
SERVING = re.compile(r"Serving on (http://\S+?)/? ")
TICK = os.sysconf("SC_CLK_TCK")
CHANGE = "Ændret arrangement"
START_LIMIT = 120.0
WAIT_LIMIT = 900.0
# An older tree (--base) may still keep a gap between ping fetches of one source
# (limits.ping_interval, retired since pings are coalesced): waiting it out is fair to both.
PING_INTERVAL = 5.0
FIRST_POLLS = 31.0  # the scheduler spreads its first polls over 30 s (FIRST_POLL_SPREAD)


@dataclass(frozen=True)
class Tree:
    """A code tree to run `serve` from."""

    label: str
    path: Path
    env: dict[str, str]


# --- the feed server (its own process) -----------------------------------------------------


def _feed_server(feed_dir: str, ports: Any, stop: Any) -> None:
    """Serve every file of `feed_dir` with an ETag (304 on a match), read anew per request."""
    import asyncio
    import hashlib

    from aiohttp import web

    async def feed(request: web.Request) -> web.Response:
        path = Path(feed_dir) / request.match_info["name"]
        if not path.is_file():
            raise web.HTTPNotFound()
        body = path.read_bytes()
        tag = '"' + hashlib.sha1(body).hexdigest() + '"'
        if request.headers.get("If-None-Match") == tag:
            return web.Response(status=304, headers={"ETag": tag})
        return web.Response(body=body, content_type="application/atom+xml", headers={"ETag": tag})

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/{name}", feed)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        ports.put(runner.addresses[0][1])
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await runner.cleanup()

    asyncio.run(main())


@contextmanager
def feed_server(feed_dir: Path) -> Iterator[str]:
    """Run the feed server for a `with` block; yield its base URL."""
    ctx = mp.get_context("spawn")
    ports, stop = ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=_feed_server, args=(str(feed_dir), ports, stop))
    proc.start()
    try:
        yield f"http://127.0.0.1:{ports.get(timeout=60)}"
    finally:
        stop.set()
        proc.join(timeout=30)


def _probe_started(url: str, stop: Any, result: Any, started: Any) -> None:
    """Tell that the probe runs, then probe `url` (bench.aggregator_bench._probe)."""
    started.set()
    _probe(url, stop, result)


@contextmanager
def healthz_probe(base: str) -> Iterator[Callable[[], float]]:
    """Probe /healthz from another process; yield a function that stops it, returning ms."""
    ctx = mp.get_context("spawn")
    stop, result, started = ctx.Event(), ctx.Queue(), ctx.Event()
    proc = ctx.Process(target=_probe_started, args=(f"{base}/healthz", stop, result, started))
    proc.start()
    # A spawned child takes seconds to start on a loaded machine: a fixed pause let short
    # changes pass unprobed (a "0 ms" stall). Wait until it probes.
    started.wait(timeout=60)
    time.sleep(0.1)

    def finish() -> float:
        stop.set()
        longest, count = result.get(timeout=60)
        return float(longest) if count else float("nan")  # no probe answered: unknown

    try:
        yield finish
    finally:
        stop.set()
        proc.join(timeout=30)


# --- /proc -----------------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """Return the pids of every living descendant of `pid`."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int(_stat(int(entry.name))[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        children = parents.get(todo.pop(), [])
        found += children
        todo += children
    return found


def _stat(pid: int) -> list[str]:
    # Fields after the command name, which may hold spaces: state, ppid, ... (proc(5)).
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(pid: int) -> float:
    """Return the user + system CPU seconds of a process so far."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / TICK


def cpu_with_children(pid: int) -> float:
    """Return the CPU seconds of a process and its living descendants."""
    total = cpu_seconds(pid)
    for child in descendants(pid):
        with suppress(OSError, IndexError):
            total += cpu_seconds(child)
    return total


def memory_mb(pid: int, key: str) -> float:
    """Return a /proc/PID/status figure (VmRSS, VmHWM) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def rss_with_children(pid: int) -> float:
    """Return the VmRSS of a process and its living descendants, in MB."""
    total = memory_mb(pid, "VmRSS")
    for child in descendants(pid):
        with suppress(OSError):
            total += memory_mb(child, "VmRSS")
    return total


# --- HTTP ------------------------------------------------------------------------------------


def get(url: str, etag: str = "") -> tuple[int, bytes, str]:
    """GET `url` (conditional on `etag`); return status, body and ETag."""
    request = urllib.request.Request(url, headers={"If-None-Match": etag} if etag else {})
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            return response.status, response.read(), response.headers.get("ETag", "")
    except urllib.error.HTTPError as e:
        if e.code == 304:
            return 304, b"", etag
        raise


def ping(base: str, feed_url: str) -> None:
    """POST the aggregator's /ping as a node does."""
    body = urllib.parse.urlencode({"hub.mode": "publish", "hub.url": feed_url}).encode()
    request = urllib.request.Request(f"{base}/ping", data=body, method="POST")
    request.add_header("Content-Type", "application/x-www-form-urlencoded")
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 202, response.status


def all_fetched(base: str) -> bool:
    """Tell whether /api/sources shows every source fetched successfully."""
    data = json.loads(get(f"{base}/api/sources")[1])
    rows = data["sources"] if isinstance(data, dict) else data
    return bool(rows) and all(row.get("last_success") for row in rows)


def wait_until(check: Callable[[], bool], pause: float) -> None:
    """Call `check` every `pause` seconds until it is true (or fail after WAIT_LIMIT)."""
    deadline = time.monotonic() + WAIT_LIMIT
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("the aggregator did not get there in time")
        time.sleep(pause)


# --- one serve process -----------------------------------------------------------------------


@contextmanager
def serving(
    tree: Tree, data_dir: Path, log: Path, *, port: int = 0, service: str = "aggregator"
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Run `klynge SERVICE serve DIR --port PORT` from `tree`; yield the process and base URL."""
    command = [sys.executable, "-m", "klynge.cli", service, "serve", str(data_dir)]
    with log.open("wb") as out:
        command += ["--port", str(port)]
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=tree.path, env=tree.env)  # fmt: skip
    try:
        yield proc, _wait_serving(proc, log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _wait_serving(proc: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + START_LIMIT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve stopped at start:\n{log.read_text(errors='replace')}")
        found = SERVING.search(log.read_text(errors="replace"))
        if found:
            return found[1]
        time.sleep(0.05)
    raise RuntimeError(f"serve did not start:\n{log.read_text(errors='replace')}")


def measure(tree: Tree, data_dir: Path, feed_dir: Path, feeds: list[str]) -> dict[str, float]:
    """Start a serve process on a fresh data dir and take every figure of one run."""
    with serving(tree, data_dir, data_dir.parent / f"{data_dir.name}.log") as (proc, base):
        started = time.monotonic()
        figures = full_refresh(proc.pid, base, feeds)
        figures |= {"rss": memory_mb(proc.pid, "VmRSS"), "hwm": memory_mb(proc.pid, "VmHWM")}
        figures["rss_all"] = rss_with_children(proc.pid)
        time.sleep(max(0.0, started + FIRST_POLLS - time.monotonic()))
        time.sleep(PING_INTERVAL)
        figures |= one_change(proc.pid, base, feed_dir, feeds[0])
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        figures["shutdown"] = time.monotonic() - t0
        return figures


def full_refresh(pid: int, base: str, feeds: list[str]) -> dict[str, float]:
    """Ping every source and wait until all are fetched and both documents are built."""
    with healthz_probe(base) as longest:
        t0, own0, all0 = time.monotonic(), cpu_seconds(pid), cpu_with_children(pid)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda url: ping(base, url), feeds))
        wait_until(lambda: all_fetched(base), 0.25)
        calendar, feed = get(f"{base}/calendar.ics")[1], get(f"{base}/feed.atom")[1]
        figures = {"full_wall": time.monotonic() - t0, "full_cpu": cpu_seconds(pid) - own0}
        figures["full_cpu_all"] = cpu_with_children(pid) - all0
        figures["full_healthz"] = longest()
    figures["entries"] = feed_entries(base, feed)
    figures["events"] = calendar.count(b"BEGIN:VEVENT")
    return figures


def feed_entries(base: str, first: bytes) -> int:
    """Count the entries of the merged feed over all its pages (RFC 5005 next links).

    A next link names the aggregator's configured URL: its path and query are asked of `base`.
    A tree before the paged feed has one page, so this counts the same there.
    """
    count, page = 0, first
    seen: set[str] = set()
    while (outline := scan(page)) is not None:
        count += len(outline.entries)
        if not outline.next_url or len(seen) >= 1000:
            break
        link = urllib.parse.urlsplit(outline.next_url)
        url = f"{base}{link.path}?{link.query}"
        if url in seen:
            break
        seen.add(url)
        page = get(url)[1]
    return count


def one_change(pid: int, base: str, feed_dir: Path, feed_url: str) -> dict[str, float]:
    """Change one village's feed, ping, and wait until the calendar and the feed show it."""
    path = feed_dir / feed_url.rsplit("/", 1)[1]
    original = path.read_bytes()
    marker = f"{CHANGE} {time.monotonic_ns()}".encode()
    changed = edited(original, b"Arrangement 1 i landsby", marker)
    tags = {"cal": get(f"{base}/calendar.ics")[2], "feed": get(f"{base}/feed.atom")[2]}
    try:
        with healthz_probe(base) as longest:
            t0, own0, all0 = time.monotonic(), cpu_seconds(pid), cpu_with_children(pid)
            path.write_bytes(changed)
            ping(base, feed_url)
            wait_until(lambda: _shows(f"{base}/calendar.ics", tags, "cal", marker), 0.02)
            wait_until(lambda: _shows(f"{base}/feed.atom", tags, "feed", marker), 0.02)
            figures = {"one_wall": time.monotonic() - t0, "one_cpu": cpu_seconds(pid) - own0}
            figures["one_cpu_all"] = cpu_with_children(pid) - all0
            figures["one_healthz"] = longest()
    finally:
        path.write_bytes(original)
    return figures


def edited(feed: bytes, title: bytes, marker: bytes) -> bytes:
    """Return the feed with one entry's title changed as an edit does: its `updated` is now.

    The merged feed's first page holds the newest changes (aggregator.publish.paging), so an
    edit that kept its old `updated` would not be on it at 50,000 entries.
    """
    at = feed.index(title)
    start, end = feed.rindex(b"<entry>", 0, at), feed.index(b"</entry>", at)
    now = datetime.now(UTC).replace(microsecond=0).isoformat().encode()
    entry = re.sub(rb"<updated>[^<]*</updated>", b"<updated>" + now + b"</updated>",
                   feed[start:end].replace(title, marker, 1), count=1)  # fmt: skip
    return feed[:start] + entry + feed[end:]


def _shows(url: str, tags: dict[str, str], key: str, marker: bytes) -> bool:
    status, body, tags[key] = get(url, tags[key])  # 304 until it changed: cheap to ask
    return status == 200 and marker in body


# --- set-up ----------------------------------------------------------------------------------


@contextmanager
def base_tree(revision: str, root: Path) -> Iterator[Path]:
    """Check out `revision` into a temporary git worktree for the duration of a `with`."""
    path = root / f"base-{revision}"
    git = ["git", "-C", str(REPO)]
    subprocess.run([*git, "worktree", "add", "--detach", str(path), revision],
                   check=True, capture_output=True)  # fmt: skip
    try:
        yield path
    finally:
        subprocess.run([*git, "worktree", "remove", "--force", str(path)], capture_output=True)


def tree_env(path: Path, now: str) -> dict[str, str]:
    """Return the environment of a serve process run from the code tree at `path`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KLYNGE_")}
    return env | {"PYTHONPATH": str(path), "KLYNGE_NOW": now, "PYTHONDONTWRITEBYTECODE": "1"}


def check_tree(tree: Tree) -> None:
    """Fail unless `klynge` imports from the tree itself (not the venv's editable install)."""
    out = subprocess.run([sys.executable, "-c", "import klynge; print(klynge.__file__)"],
                         cwd=tree.path, env=tree.env, capture_output=True, text=True,
                         check=True).stdout.strip()  # fmt: skip
    if not Path(out).resolve().is_relative_to(tree.path.resolve()):
        raise RuntimeError(f"{tree.label} imports klynge from {out}, not from {tree.path}")


def template(tree: Tree, root: Path, feeds: list[str]) -> Path:
    """Make an aggregator data dir with `klynge aggregator init` and the feeds as sources."""
    data = root / f"template-{tree.label}-{len(feeds)}"
    subprocess.run([sys.executable, "-m", "klynge.cli", "aggregator", "init", str(data),
                    "--name", "Klynge Bench", "--url", "http://bench.example"],
                   cwd=tree.path, env=tree.env, check=True, capture_output=True)  # fmt: skip
    # The documented aggregator.toml form of `klynge aggregator source add`, written at once
    # (400 CLI calls would take minutes).
    with (data / "aggregator.toml").open("a", encoding="utf-8") as config:
        for url in feeds:
            config.write(f'\n[[sources]]\nurl = "{url}"\nname = ""\nkind = "node"\n')
    return data


def main() -> None:
    """Run both trees at every size, RUNS times, and print the table."""
    args = _arguments()
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    villages = max(s // ENTRIES for s in args.sizes)
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        root = Path(tmp)
        feed_dir = root / "feeds"
        feed_dir.mkdir()
        print(f"generating {villages} feeds x {ENTRIES} entries ...", flush=True)
        for n in range(villages):
            (feed_dir / f"v{n}.atom").write_bytes(village_feed(n, "http://bench.example"))
        with base_tree(args.base, root) as base_path, feed_server(feed_dir) as feeds_base:
            trees = [
                Tree(f"base {args.base}", base_path, tree_env(base_path, now)),
                Tree("new", REPO, tree_env(REPO, now)),
            ]
            for tree in trees:
                check_tree(tree)
            results = run_all(trees, args, root, feed_dir, feeds_base)
    print("\nall sizes:")
    report(trees, args.sizes, results)


def run_all(
    trees: list[Tree], args: argparse.Namespace, root: Path, feed_dir: Path, feeds_base: str
) -> dict[tuple[str, int], list[dict[str, float]]]:
    """Measure every tree at every size, alternating the order of the trees per run."""
    results: dict[tuple[str, int], list[dict[str, float]]] = {}
    for size in args.sizes:
        feeds = [f"{feeds_base}/v{n}.atom" for n in range(size // ENTRIES)]
        templates = {t.label: template(t, root, feeds) for t in trees}
        for run in range(args.runs):
            for tree in trees if run % 2 == 0 else trees[::-1]:
                data = root / f"run-{size}-{run}-{tree.label.split()[0]}"
                shutil.copytree(templates[tree.label], data)
                figures = measure(tree, data, feed_dir, feeds)
                results.setdefault((tree.label, size), []).append(figures)
                print(f"{size} entries, run {run + 1}, {tree.label}: "
                      f"full refresh {figures['full_wall']:.2f} s, "
                      f"one change {figures['one_wall']:.2f} s", flush=True)  # fmt: skip
                shutil.rmtree(data, ignore_errors=True)
        report(trees, [size], results)  # each size's table as soon as it is measured
    return results


ROWS = [
    ("full refresh wall", "full_wall", "s"),
    ("full refresh CPU, serve", "full_cpu", "s"),
    ("full refresh CPU, + children", "full_cpu_all", "s"),
    ("longest /healthz, full refresh", "full_healthz", "ms"),
    ("one change wall", "one_wall", "s"),
    ("one change CPU, serve", "one_cpu", "s"),
    ("one change CPU, + children", "one_cpu_all", "s"),
    ("longest /healthz, one change", "one_healthz", "ms"),
    ("VmRSS, built", "rss", "MB"),
    ("VmHWM (peak RSS)", "hwm", "MB"),
    ("RSS + children, built", "rss_all", "MB"),
    ("shutdown (SIGTERM)", "shutdown", "s"),
    ("entries in /feed.atom", "entries", ""),
    ("VEVENTs in /calendar.ics", "events", ""),
]


def report(
    trees: list[Tree], sizes: list[int], results: dict[tuple[str, int], list[dict[str, float]]]
) -> None:
    """Print the medians per tree and size, and the ratio new/base."""
    runs = len(next(iter(results.values())))
    print(f"\nmedians of {runs} runs; the machine is shared (2 cores, other work running), so")
    print("compare the columns of one run, not figures across runs\n")
    base, new = (t.label for t in trees)
    print(f"{'size':>6}  {'measure':<32} {base:>16} {new:>10} {'new/base':>9}")
    for size in sizes:
        for name, key, unit in ROWS:
            b = statistics.median(r[key] for r in results[(base, size)])
            n = statistics.median(r[key] for r in results[(new, size)])
            ratio = f"{n / b:.2f}" if b else "-"
            fmt = ".0f" if unit in ("ms", "MB", "") else ".2f"
            print(f"{size:>6}  {name:<32} {b:>13{fmt}} {unit:<2} {n:>7{fmt}} {unit:<2} {ratio:>8}")
        print()


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=os.environ.get("BENCH_SIZES", "1000,20000"))
    parser.add_argument("--runs", type=int, default=int(os.environ.get("BENCH_RUNS", "3")))
    parser.add_argument("--base", default=os.environ.get("BENCH_BASE", "25f9837"))
    args = parser.parse_args()
    args.sizes = [int(s) for s in str(args.sizes).split(",")]
    return args


if __name__ == "__main__":
    main()
