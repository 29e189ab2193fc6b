"""Durability of the real `klynge node serve` process: kill -9 during a stream of API posts,
restart, and every post that got 201 is in the store and in the feed. Also the data-dir lock."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import aiohttp
import feedparser
import pytest
from clock_support import local_today, service_env
from node_support import KLYNGE, NodeDir, auth, make_node

pytestmark = pytest.mark.slow
SOON = local_today() + timedelta(days=5)
POSTS = 300
KILL_AFTER = 120  # acknowledged posts before the kill; the rest are in flight or never sent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(node_dir: NodeDir, port: int) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [KLYNGE, "node", "serve", str(node_dir.path), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=service_env(),
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        if proc.stderr:
            proc.stderr.close()


async def wait_healthy(base: str, proc: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(300):  # bounded: at most ~30 s
            assert proc.poll() is None, "the node stopped at start"
            try:
                async with session.get(f"{base}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("the node did not become healthy")


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
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with serve(node_dir, port) as proc:
        await wait_healthy(base, proc)
        acknowledged = await post_stream(base, node_dir.token, proc)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
    assert KILL_AFTER <= len(acknowledged) < POSTS

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with serve(node_dir, port) as proc:
        await wait_healthy(base, proc)
        async with aiohttp.ClientSession(headers=auth(node_dir.token)) as session:
            async with session.get(f"{base}/api/events") as response:
                stored = {e["id"] for e in (await response.json())["events"]}
            async with session.get(f"{base}/feed.atom") as response:
                feed = feedparser.parse(await response.read())
    assert acknowledged <= stored
    assert {f"urn:uuid:{i}" for i in acknowledged} <= {e.id for e in feed.entries}


async def test_second_server_on_the_same_directory_is_refused(tmp_path: Path) -> None:
    node_dir = make_node(tmp_path)
    port = free_port()
    with serve(node_dir, port) as proc:
        await wait_healthy(f"http://127.0.0.1:{port}", proc)
        done = subprocess.run(
            [KLYNGE, "node", "serve", str(node_dir.path), "--port", str(free_port())],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode != 0
        assert done.stderr.count("\n") == 1 and f"process {proc.pid}" in done.stderr
        # Commands that change the directory are refused too while it is served.
        added = subprocess.run(
            [KLYNGE, "node", "token", "add", str(node_dir.path), "bo"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert added.returncode != 0 and "in use" in added.stderr
        # A backup works while serving.
        backup = subprocess.run(
            [KLYNGE, "node", "backup", str(node_dir.path), str(tmp_path / "backup")],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert backup.returncode == 0, backup.stderr
        assert (tmp_path / "backup" / "node.json").exists()
        assert (tmp_path / "backup" / "node.toml").exists()
