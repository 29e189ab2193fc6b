"""`klynge node backup` while the node serves writes, then a restore into a fresh directory."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import feedparser
from clock_support import service_env
from serve_support import start_serving, stop_process

KLYNGE = [sys.executable, "-m", "klynge.cli"]


def _klynge(*args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [*KLYNGE, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=service_env(),
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


class Node:
    """A `klynge node serve` child process on a loopback port the OS picked."""

    def __init__(self, data: Path, log: Path) -> None:
        served = start_serving([*KLYNGE, "node", "serve", str(data)], log)
        self.proc, self.url = served.proc, served.url

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=5) as response:
            return bytes(response.read())

    def post_event(self, token: str, n: int) -> str:
        body = json.dumps({"title": f"Loppemarked nr. {n} i Østerby", "start": "2027-01-09T10:00"})
        request = urllib.request.Request(
            self.url + "/api/events",
            data=body.encode(),
            method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 201
            entry_id = str(json.loads(response.read())["id"])
            return entry_id if entry_id.startswith("urn:") else f"urn:uuid:{entry_id}"

    def stop(self) -> None:
        stop_process(self.proc)


def _ids_in_feed(feed: bytes) -> set[str]:
    return {entry.id for entry in feedparser.parse(feed).entries}


def test_backup_while_serving_writes_then_restore(tmp_path: Path) -> None:
    data = tmp_path / "osterby"
    _klynge("node", "init", str(data), "--name", "Østerby", "--url", "https://osterby.example")
    _klynge("node", "user", "add", str(data), "birgit", "--association", "Forsamlingshuset",
            "--password-stdin", stdin="et-godt-kodeord\n")  # fmt: skip
    token = _klynge("node", "token", "add", str(data), "birgit").strip().splitlines()[-1]
    node = Node(data, tmp_path / "node.log")
    acknowledged: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        n = 0
        while not stop.is_set() and n < 400:
            acknowledged.append(node.post_event(token, n))
            n += 1

    thread = threading.Thread(target=writer)
    try:
        thread.start()
        deadline = time.monotonic() + 60
        while len(acknowledged) < 20:
            assert thread.is_alive() and time.monotonic() < deadline, "the posts did not go on"
            time.sleep(0.02)
        before = set(acknowledged)
        _klynge("node", "backup", str(data), str(tmp_path / "backup-live"))
        during = len(acknowledged)
        stop.set()
        thread.join(timeout=30)
        assert during > len(before), "the backup did not run while writes were going on"
        # A second, quiet backup: the restored node must serve exactly the same feed.
        _klynge("node", "backup", str(data), str(tmp_path / "backup-quiet"))
        original_feed = node.get("/feed.atom")
    finally:
        stop.set()
        node.stop()

    live = tmp_path / "restored-live"
    shutil.copytree(tmp_path / "backup-live", live)
    restored = Node(live, tmp_path / "restored-live.log")
    try:
        assert before <= _ids_in_feed(restored.get("/feed.atom"))
    finally:
        restored.stop()

    quiet = tmp_path / "restored-quiet"
    shutil.copytree(tmp_path / "backup-quiet", quiet)
    restored = Node(quiet, tmp_path / "restored-quiet.log")
    try:
        feed = restored.get("/feed.atom")
    finally:
        restored.stop()
    assert _ids_in_feed(feed) == set(acknowledged)
    assert feed == original_feed
