"""Durability of the real `klynge node serve` process: kill -9 during a stream of API posts,
restart, and every post that got 201 is in the store and in the feed. Also the data-dir lock."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import aiohttp
import feedparser
import pytest
from clock_support import local_today
from node_support import KLYNGE, NodeDir, auth, make_node
from serve_support import Served, start_serving

pytestmark = pytest.mark.slow
SOON = local_today() + timedelta(days=5)
POSTS = 300
KILL_AFTER = 120  # acknowledged posts before the kill; the rest are in flight or never sent


@contextmanager
def serve(node_dir: NodeDir, log: Path) -> Iterator[Served]:
    """Serve the node on a port the OS picks; SIGKILL it afterwards if it still runs."""
    served = start_serving([KLYNGE, "node", "serve", str(node_dir.path)], log)
    try:
        yield served
    finally:
        if served.proc.poll() is None:
            served.proc.kill()
        served.proc.wait(timeout=30)


async def post_stream(base: str, token: str, proc: subprocess.Popen[bytes]) -> set[str]:
    """Post up to 300 events, 4 at a time; SIGKILL the node mid-stream; return the 201'd ids."""
    acknowledged: set[str] = set()
    queue = iter(range(POSTS))

    async def worker(session: aiohttp.ClientSession) -> None:
        for n in queue:
            payload = {"title": f"Begivenhed {n}", "start": f"{SOON}T{n % 24:02d}:00"}
            try:
                async with session.post(f"{base}/api/events", json=payload) as response:
                    if response.status == 201:
                        acknowledged.add((await response.json())["id"])
            except (TimeoutError, aiohttp.ClientError):
                return  # the node is gone
            if len(acknowledged) == KILL_AFTER and proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)

    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(headers=auth(token), timeout=timeout) as session:
        await asyncio.gather(*(worker(session) for _ in range(4)))
    return acknowledged


async def test_kill_9_during_posts_loses_no_acknowledged_post(tmp_path: Path) -> None:
    node_dir = make_node(tmp_path)
    with serve(node_dir, tmp_path / "first.log") as node:
        acknowledged = await post_stream(node.url, node_dir.token, node.proc)
        node.proc.wait(timeout=30)
        assert node.proc.returncode == -signal.SIGKILL
    assert KILL_AFTER <= len(acknowledged) < POSTS

    with serve(node_dir, tmp_path / "second.log") as node:
        base = node.url
        async with aiohttp.ClientSession(headers=auth(node_dir.token)) as session:
            async with session.get(f"{base}/api/events") as response:
                stored = {e["id"] for e in (await response.json())["events"]}
            async with session.get(f"{base}/feed.atom") as response:
                feed = feedparser.parse(await response.read())
    assert acknowledged <= stored
    assert {f"urn:uuid:{i}" for i in acknowledged} <= {e.id for e in feed.entries}


async def test_second_server_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    node_dir = make_node(tmp_path)
    with serve(node_dir, tmp_path / "node.log") as node:
        done = subprocess.run(
            [KLYNGE, "node", "serve", str(node_dir.path), "--port", "0"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode != 0
        assert done.stderr.count("\n") == 1, done.stderr
        assert f"process {node.proc.pid}" in done.stderr
        # Admin commands go through the serving node (its control socket), not beside it.
        added = subprocess.run(
            [KLYNGE, "node", "token", "add", str(node_dir.path), "bo"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
        assert added.stdout.strip().startswith("kn_")
        # A backup works while serving.
        backup = subprocess.run(
            [KLYNGE, "node", "backup", str(node_dir.path), str(tmp_path / "backup")],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert backup.returncode == 0, backup.stderr
        assert (tmp_path / "backup" / "node.json").exists()
        assert (tmp_path / "backup" / "node.toml").exists()
