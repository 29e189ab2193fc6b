"""Measure one side of `make pi-check` (the host, or the arm64 root under emulation).

    python deploy/pi/figures.py OUT.json [--demo-starts N] [--villages 15]

It starts `klynge demo --port 0` (first start, then restarts on the same data), checks that the
cluster fills (each village's first event in the aggregator's /calendar.ics), runs `klynge feed
check` on a village's feed, and runs bench/serve_bench.py's own measurement (full refresh, one
change, RSS) of a real `klynge aggregator serve` at 15 villages x 50 entries. Figures go to
OUT.json; deploy/pi/table.py prints both sides side by side. Exit status 1 on a failed check.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # bench/ is not installed: it runs from the source tree

BANNER = re.compile(r"Cluster calendar \(residents\):\s+(http://127\.0\.0\.1:\d+)/")
NODE_LINE = re.compile(r" node: (http://127\.0\.0\.1:\d+)/ ")
FILL_LIMIT = 900.0  # a check, not a start limit: the cluster must fill some time


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return bytes(response.read())


def demo_start(data: Path, log: Path) -> tuple[subprocess.Popen[bytes], float, str, list[str]]:
    """Start `klynge demo --port 0` on `data`; return it, its start time, and its URLs."""
    command = [sys.executable, "-m", "klynge.cli", "demo", "--port", "0", "--data", str(data)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    began = time.monotonic()
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env)  # fmt: skip
    while True:
        text = log.read_text(errors="replace")
        found, nodes = BANNER.search(text), NODE_LINE.findall(text)
        if found and len(nodes) == 3:
            return proc, time.monotonic() - began, found[1], nodes
        if proc.poll() is not None:
            raise SystemExit(f"pi-check: the demo stopped at start:\n{text}")
        time.sleep(0.2)


def cluster_fills(aggregator: str, titles: list[str]) -> float:
    """Wait until the cluster calendar shows every title; return the seconds it took."""
    began = time.monotonic()
    while time.monotonic() - began < FILL_LIMIT:
        ics = _get(f"{aggregator}/calendar.ics").decode().replace("\r\n ", "")
        if all(t in ics for t in titles):
            return time.monotonic() - began
        time.sleep(0.5)
    raise SystemExit(f"pi-check: the cluster calendar lacks some of {titles}")


def stop(proc: subprocess.Popen[bytes]) -> float:
    """Stop the demo with Ctrl-C (SIGINT); return the seconds it took."""
    began = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    return time.monotonic() - began


def demo_figures(root: Path, starts: int) -> dict[str, Any]:
    """Start the demo `starts` times on one data folder, checking the cluster each time."""
    from klynge.demo_data import villages

    titles = [v.events[0]["title"] for v in villages(datetime.now(UTC).date())]
    figures: dict[str, Any] = {"demo_starts": []}
    for n in range(starts):
        proc, took, aggregator, nodes = demo_start(root / "demo", root / f"demo-{n}.log")
        try:
            figures["demo_starts"].append(round(took, 1))
            figures.setdefault("demo_fill", round(cluster_fills(aggregator, titles), 1))
            if n == 0:
                figures["feed_check"] = feed_check(f"{nodes[0]}/feed.atom")
        finally:
            figures.setdefault("demo_stop", round(stop(proc), 1))
        print(f"pi-check: demo start {n + 1}: {took:.1f} s", flush=True)
    return figures


def feed_check(url: str) -> dict[str, Any]:
    """Run `klynge feed check` on a village's feed; fail unless it passes."""
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "klynge.cli", "feed", "check", url],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"pi-check: klynge feed check {url} failed:\n{done.stdout}{done.stderr}")
    first = done.stdout.strip().splitlines()[0] if done.stdout.strip() else ""
    return {"seconds": round(time.monotonic() - began, 1), "summary": first}


def bench_figures(root: Path, villages: int) -> dict[str, float]:
    """Run serve_bench's measurement of one serve process at `villages` x 50 entries."""
    from bench import serve_bench as sb
    from bench.aggregator_bench import village_feed

    feed_dir = root / "feeds"
    feed_dir.mkdir()
    for n in range(villages):
        (feed_dir / f"v{n}.atom").write_bytes(village_feed(n, "http://bench.example"))
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    tree = sb.Tree("here", REPO, sb.tree_env(REPO, now))
    with sb.feed_server(feed_dir) as base:
        feeds = [f"{base}/v{n}.atom" for n in range(villages)]
        data = root / "bench-run"
        template = sb.template(tree, root, feeds)
        template.rename(data)
        return sb.measure(tree, data, feed_dir, feeds)


def main() -> None:
    """Measure this side and write the figures as JSON."""
    parser = argparse.ArgumentParser(prog="figures.py")
    parser.add_argument("out", type=Path)
    parser.add_argument("--demo-starts", type=int, default=2)
    parser.add_argument("--villages", type=int, default=15)
    parser.add_argument("--no-bench", action="store_true", help="only the demo starts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pi-check-") as tmp:
        root = Path(tmp)
        figures: dict[str, Any] = {"machine": os.uname().machine}
        figures |= demo_figures(root, args.demo_starts)
        if not args.no_bench:
            figures["bench"] = bench_figures(root, args.villages)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
