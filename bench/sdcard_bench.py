"""SD-card writes of a real `klynge aggregator serve` over a simulated hour, idle and busy.

A Pi's SD card wears with writes, so this counts what the aggregator writes: the bytes its
processes (serve and its parse worker) hand to write() (`wchar` in /proc/PID/io) and those
that reach the disk (`write_bytes`), over one simulated hour of a 15-village cluster (50
entries each), its store and its log included. The hour is compressed SCALE times (default
120: 30 s): poll_minutes and the poll jitter are divided by SCALE, so each source is polled as
often per simulated hour as in a real one. Idle: no feed changes (every poll a 304). Busy: a
village's feed changes and it pings the aggregator every simulated 2 minutes (30 changes an
hour), round the villages, and /calendar.ics is read after each (a subscriber). Each case
runs at poll_minutes 15 (the default), at 60, and with `serve --verbose` (more log lines). A
village node on the same Pi is measured too (bench/sdcard_node.py): idle, and busy with 30
events posted an hour.

    python -m bench.sdcard_bench [--scale 120] [--villages 15]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from bench.aggregator_bench import ENTRIES, village_feed
from bench.serve_bench import (
    REPO,
    Tree,
    _wait_serving,
    descendants,
    feed_server,
    full_refresh,
    get,
    ping,
    template,
    tree_env,
)

CHANGES_PER_HOUR = 30
# (busy, poll_minutes, --verbose): the default, a slower poll, and the verbose log
CASES = [(False, 15.0, False), (False, 60.0, False), (False, 15.0, True),
         (True, 15.0, False), (True, 60.0, False), (True, 15.0, True)]  # fmt: skip


def io_counters(pid: int) -> dict[str, int]:
    """Return wchar and write_bytes of a process and its descendants (the parse worker)."""
    total = {"wchar": 0, "write_bytes": 0}
    for each in (pid, *descendants(pid)):
        try:
            text = Path(f"/proc/{each}/io").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key in total:
                total[key] += int(value)
    return total


@contextmanager
def serving(tree: Tree, data: Path, log: Path, verbose: bool) -> Iterator[tuple[int, str]]:
    """Run `klynge aggregator serve DIR --port 0 [--verbose]`; yield its PID and base URL."""
    command = [sys.executable, "-m", "klynge.cli", "aggregator", "serve", str(data), "--port", "0"]
    with log.open("wb") as out:
        proc = subprocess.Popen([*command, *(["--verbose"] if verbose else [])], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=tree.path, env=tree.env)  # fmt: skip
    try:
        yield proc.pid, _wait_serving(proc, log)
    finally:
        proc.kill()
        proc.wait()


def successes(base: str) -> dict[str, str]:
    """Return each source's last successful fetch as /api/sources shows it."""
    data = json.loads(get(f"{base}/api/sources")[1])
    rows = data["sources"] if isinstance(data, dict) else data
    return {row["url"]: str(row.get("last_success")) for row in rows}


def configure(data: Path, poll_minutes: float, scale: float) -> None:
    """Set the compressed poll interval and jitter in the data dir's aggregator.toml."""
    path = data / "aggregator.toml"
    text = path.read_text()
    text = re.sub(r"(?m)^poll_minutes = .*$", f"poll_minutes = {poll_minutes / scale:g}", text)
    text = re.sub(r"(?m)^jitter = .*$", f"jitter = {60 / scale:g}", text)
    path.write_text(text)


def change(feed_dir: Path, n: int, round_: int) -> None:
    """Change one entry of village n's feed (a new title each round)."""
    path = feed_dir / f"v{n}.atom"
    original = (feed_dir / f"v{n}.orig").read_bytes()
    path.write_bytes(original.replace(b"Arrangement 1 i", f"Ny titel {round_} i".encode(), 1))


def one_hour(
    tree: Tree, data: Path, feed_dir: Path, feeds: list[str], case: tuple[bool, bool], scale: float
) -> dict[str, int]:
    """Serve for one simulated hour; return the write counters and the store/log sizes."""
    busy, verbose = case
    log = data.parent / f"{data.name}.log"
    hour = 3600 / scale
    with serving(tree, data, log, verbose) as (pid, base):
        full_refresh(pid, base, feeds)
        time.sleep(min(30.0, hour / 4))  # let the spread first polls pass
        before, log_before = io_counters(pid), log.stat().st_size
        fetched = successes(base)
        began, done = time.monotonic(), 0
        while (elapsed := time.monotonic() - began) < hour:
            due = min(CHANGES_PER_HOUR, int(elapsed / hour * CHANGES_PER_HOUR) + 1) if busy else 0
            while done < due:
                n = done % len(feeds)
                change(feed_dir, n, done)
                ping(base, feeds[n])
                # A calendar subscriber reads after each change: the build that follows a
                # change writes that village's calendar pieces (aggregator/publish/piece_files.py).
                get(f"{base}/calendar.ics")
                done += 1
            time.sleep(0.05)
        after = io_counters(pid)
        log_bytes = log.stat().st_size - log_before
        # Proof that the hour had its polls: every source fetched again since it began.
        polled = sum(a != fetched.get(url) for url, a in successes(base).items())
    figures = {k: after[k] - before[k] for k in after}
    return figures | {"log": log_bytes, "changes": done, "polled": polled}


def main() -> None:
    """Run every case and print the table."""
    parser = argparse.ArgumentParser(prog="python -m bench.sdcard_bench")
    parser.add_argument("--scale", type=float, default=120.0)
    parser.add_argument("--villages", type=int, default=15)
    args = parser.parse_args()
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    tree = Tree("here", REPO, tree_env(REPO, now))
    rows = []
    with tempfile.TemporaryDirectory(prefix="sdcard-bench-", dir="/var/tmp") as tmp:
        root = Path(tmp)
        feed_dir = root / "feeds"
        feed_dir.mkdir()
        for n in range(args.villages):
            body = village_feed(n, "http://bench.example")
            (feed_dir / f"v{n}.atom").write_bytes(body)
            (feed_dir / f"v{n}.orig").write_bytes(body)
        with feed_server(feed_dir) as base:
            feeds = [f"{base}/v{n}.atom" for n in range(args.villages)]
            fresh = template(tree, root, feeds)
            from bench.sdcard_node import node_hour

            for busy in (False, True):
                figures = node_hour(tree, root, busy, args.scale)
                rows.append((f"node {'busy' if busy else 'idle'}", 0.0, figures))
                print(f"{rows[-1][0]}: {figures}", flush=True)
            for busy, poll, verbose in CASES:
                kind = ("aggregator busy" if busy else "aggregator idle") + (" -v" * verbose)
                data = root / f"run-{kind.replace(' ', '-')}-{poll:g}"
                shutil.copytree(fresh, data)
                configure(data, poll, args.scale)
                for n in range(args.villages):
                    shutil.copy(feed_dir / f"v{n}.orig", feed_dir / f"v{n}.atom")
                figures = one_hour(tree, data, feed_dir, feeds, (busy, verbose), args.scale)
                rows.append((kind, poll, figures))
                print(f"{kind}, poll_minutes {poll:g}: {figures}", flush=True)
    report(rows, args.villages)


def report(rows: list[tuple[str, float, dict[str, int]]], villages: int) -> None:
    """Print bytes per simulated hour for every case."""
    print(f"\nwrites per simulated hour: `klynge aggregator serve` ({villages} villages x "
          f"{ENTRIES} entries) and one `klynge node serve`; write() includes the pipe to the "
          "parse worker, 'to disk' is /proc/PID/io write_bytes")  # fmt: skip
    print(f"{'service':<18} {'poll_minutes':>12} {'write() MB/h':>13} {'to disk MB/h':>13} "
          f"{'log kB/h':>9} {'changes':>8} {'polled':>7} {'MB/day to disk':>15}")  # fmt: skip
    for kind, poll, f in rows:
        day = f["write_bytes"] * 24e-6
        mb = f"{f['wchar'] / 1e6:>13.2f} {f['write_bytes'] / 1e6:>13.2f}"
        shown = f"{poll:g}" if poll else "-"
        print(f"{kind:<18} {shown:>12} {mb} {f['log'] / 1e3:>9.1f} {f['changes']:>8} "
              f"{f['polled']:>7} {day:>15.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
