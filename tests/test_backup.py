"""`klynge node backup` and `klynge aggregator backup` while the service writes, then a restore
into a fresh directory."""

from __future__ import annotations

import asyncio
import json
import shutil
import stat
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aggregator_support as support
import aiohttp
import feedparser
from aggregator_support import FeedServer, config_for, event, eventually, feed, start_aggregator
from clock_support import service_env
from serve_support import start_serving, stop_process
from service_support import service, wait_healthy

from aggregator.config import Source, load_config, save_config
from aggregator.mail.subscribers import Subscriber, Subscribers, SubscriberStore
from aggregator.store.moderation import Hold, Moderation, ModerationFile
from aggregator.store.sources import Store
from klynge.model import new_id

feed_server = support.feed_server  # a fixture
NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)

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


# --- the aggregator: a file per source, written while the backup runs ---------------------

VILLAGES, ENTRIES = 4, 3


async def test_aggregator_backup_while_it_writes_then_restore(
    tmp_path: Path, feed_server: FeedServer, aiohttp_client: Any
) -> None:
    ids = [[new_id() for _ in range(ENTRIES)] for _ in range(VILLAGES)]

    def publish(round_no: int) -> list[str]:
        return [
            feed_server.set(f"/v{n}.atom", feed(f"V{n}", [
                event(f"V{n} E{k} runde {round_no}", id=ids[n][k]) for k in range(ENTRIES)]))
            for n in range(VILLAGES)
        ]  # fmt: skip

    urls = publish(0)
    config = config_for(tmp_path, [Source(u) for u in urls])
    save_config(config)
    data = config.data_dir
    backups: list[Path] = []
    with service("aggregator", data) as running:
        await wait_healthy(running)
        async with aiohttp.ClientSession() as session:

            async def ping_all() -> None:
                for url in urls:
                    form = {"hub.mode": "publish", "hub.url": url}
                    async with session.post(f"{running.base}/ping", data=form) as response:
                        assert response.status == 202

            await ping_all()
            await eventually(lambda: _stored_rounds(data, {0}), limit=30)
            for round_no in range(1, 6):  # every backup runs while the pings' writes go on
                publish(round_no)
                await ping_all()
                backups.append(tmp_path / f"backup-{round_no}")
                await asyncio.to_thread(
                    _klynge, "aggregator", "backup", str(data), str(backups[-1])
                )
            publish(9)
            await ping_all()
            await eventually(lambda: _stored_rounds(data, {9}), limit=30)
            quiet = tmp_path / "backup-quiet"
            await asyncio.to_thread(_klynge, "aggregator", "backup", str(data), str(quiet))
    seen: set[int] = set()
    for backup in backups:
        rounds = _rounds(backup)  # one round per source: no source's file is torn
        assert sorted(rounds) == sorted(urls), backup
        seen |= set(rounds.values())
    assert len(seen) > 1, "the backups did not run while the sources were written"
    assert _files(quiet / "store") == _files(data / "store")
    assert (quiet / "aggregator.toml").read_bytes() == (data / "aggregator.toml").read_bytes()

    restored = Path(shutil.copytree(quiet, tmp_path / "restored"))
    client = await start_aggregator(aiohttp_client, load_config(restored, env={}))
    events = await (await client.get("/api/events")).json()
    assert {e["title"] for e in events["events"]} == {
        f"V{n} E{k} runde 9" for n in range(VILLAGES) for k in range(ENTRIES)
    }


def _rounds(data: Path) -> dict[str, int]:
    """Return each stored source's round, failing if a source mixes two."""
    states = Store(data).load()
    rounds = {}
    for url, state in states.items():
        found = {int(i.title.rsplit(" ", 1)[1]) for i in state.content.entries.values()}
        assert len(found) == 1 and len(state.content.entries) == ENTRIES, (url, found)
        rounds[url] = found.pop()
    return rounds


async def _stored_rounds(data: Path, wanted: set[int]) -> bool:
    index = data / "store" / "index.json"
    if not index.exists():
        return False
    rounds = _rounds(data)
    return len(rounds) == VILLAGES and set(rounds.values()) == wanted


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if not p.name.endswith(".bak")}


# --- the files beside the stores: subscribers, their signing secret, the node's cluster copy ---


def test_aggregator_backup_keeps_the_subscribers_their_secret_and_the_moderation(
    tmp_path: Path,
) -> None:
    config = config_for(tmp_path, [])
    save_config(config)
    data = config.data_dir
    subscribers = SubscriberStore(data)
    secret = subscribers.secret()
    people = Subscribers(
        people={"anna@osterby.example": Subscriber("anna@osterby.example", "active", "da", NOW)}
    )
    subscribers.save(people, NOW)
    hidden = Moderation().hide(new_id(), Hold("spam", NOW))
    ModerationFile(data).save(hidden)
    dest = tmp_path / "backup"
    printed = _klynge("aggregator", "backup", str(data), str(dest))
    assert "subscribers.json" in printed and "mail-secret" in printed
    restored = SubscriberStore(dest)
    assert restored.secret() == secret  # the links in mails already sent still work
    assert [s.address for s in restored.load().active()] == ["anna@osterby.example"]
    assert stat.S_IMODE((dest / "mail-secret").stat().st_mode) == 0o600
    assert ModerationFile(dest).load() == hidden  # what the host hid stays hidden


def test_node_backup_copies_the_cluster_copy_beside_its_store(tmp_path: Path) -> None:
    data = tmp_path / "osterby"
    _klynge("node", "init", str(data), "--name", "Østerby", "--url", "https://osterby.example")
    cluster = {"aggregators": {}}
    (data / "cluster.json").write_text(json.dumps(cluster), encoding="utf-8")
    dest = tmp_path / "backup"
    _klynge("node", "backup", str(data), str(dest))
    assert json.loads((dest / "cluster.json").read_text(encoding="utf-8")) == cluster
    assert (dest / "node.toml").read_bytes() == (data / "node.toml").read_bytes()
