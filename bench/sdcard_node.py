"""The village node's share of bench/sdcard_bench.py: a real `klynge node serve`, one hour.

Idle: nobody edits (its housekeeping runs as scheduled). Busy: an association posts an event
through the JSON API every simulated 2 minutes (30 an hour). The node is seeded with a demo
village's month (klynge/demo_data.py) and has no aggregator to ping, so failed pings add no
log lines.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.serve_bench import Tree, _wait_serving

CHANGES_PER_HOUR = 30


def post(url: str, token: str, payload: dict[str, Any]) -> None:
    """POST one JSON body with the token; raise on an error status."""
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


def make_node(data: Path) -> str:
    """Create a node data dir with an admin and a token (the demo's own seeding); return it."""
    from klynge.demo_data import DEMO_PASSWORD, villages
    from klynge.demo_init import klynge

    village = villages(datetime.now(UTC).date())[0]
    klynge("node", "init", str(data), "--name", village.name, "--url", "http://node.example")
    klynge("node", "user", "add", str(data), "anna", "--association", village.association,
           "--admin", "--password-stdin", stdin=DEMO_PASSWORD + "\n")  # fmt: skip
    return klynge("node", "token", "add", str(data), "anna").strip().split()[-1]


@contextmanager
def node_serving(tree: Tree, data: Path, log: Path) -> Iterator[tuple[int, str]]:
    """Run `klynge node serve DIR --port 0`; yield its PID and base URL."""
    command = [sys.executable, "-m", "klynge.cli", "node", "serve", str(data), "--port", "0"]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=tree.path, env=tree.env)  # fmt: skip
    try:
        yield proc.pid, _wait_serving(proc, log)
    finally:
        proc.kill()
        proc.wait()


def node_hour(tree: Tree, root: Path, busy: bool, scale: float) -> dict[str, int]:
    """Serve a seeded node for one simulated hour; return its write counters."""
    from bench.sdcard_bench import io_counters
    from klynge.demo_data import villages

    data = root / f"node-{'busy' if busy else 'idle'}"
    token = make_node(data)
    village = villages(datetime.now(UTC).date())[0]
    log, hour = root / f"{data.name}.log", 3600 / scale
    with node_serving(tree, data, log) as (pid, base):
        for event in village.events:
            post(f"{base}/api/events", token, event)
        time.sleep(2.0)  # the start's housekeeping and the seeding's writes settle
        before, log_before = io_counters(pid), log.stat().st_size
        began, done = time.monotonic(), 0
        while (elapsed := time.monotonic() - began) < hour:
            due = min(CHANGES_PER_HOUR, int(elapsed / hour * CHANGES_PER_HOUR) + 1) if busy else 0
            while done < due:
                event = dict(village.events[done % len(village.events)])
                post(f"{base}/api/events", token, event | {"title": f"Ny {done}: {event['title']}"})
                done += 1
            time.sleep(0.05)
        after = io_counters(pid)
        log_bytes = log.stat().st_size - log_before
    figures = {k: after[k] - before[k] for k in after}
    return figures | {"log": log_bytes, "changes": done, "polled": 0}
