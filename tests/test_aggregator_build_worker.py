"""The document worker: a real child process builds the same bytes as the builders in-process,
takes a changed view as a delta, is replaced when it dies, and never holds a shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aggregator_support import NOW, config_for, event, feed, notice
from serve_support import serving

from aggregator.config import AggregatorConfig
from aggregator.publish import documents
from aggregator.publish.build_worker import BuildFailed, DocumentWorker
from aggregator.reader.merge import Merged
from klynge.model import FeedSource, Item

VILLAGE = FeedSource(id="urn:klynge:osterby", title="Østerby", self_url="http://o.example/f")


def view(*items: Item) -> Merged:
    """Return a merged view of `items`, each bound to the village."""
    return Merged(tuple(replace(i, source=VILLAGE) for i in items))


def big_view(count: int) -> Merged:
    """Return a view of `count` events, enough to keep a build busy for a while."""
    return view(*(event(f"Arrangement {n}", days=n % 90) for n in range(count)))


@pytest.fixture
async def worker() -> AsyncIterator[DocumentWorker]:
    made = DocumentWorker()
    yield made
    await made.close()


@pytest.fixture
def config(tmp_path: Path) -> AggregatorConfig:
    return config_for(tmp_path, [])


def alive(pid: int) -> bool:
    """Tell whether a process runs (a zombie, killed but not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


async def gone(pid: int, limit: float = 10.0) -> bool:
    """Wait until a process is gone; tell whether it went within `limit` seconds."""
    deadline = time.monotonic() + limit
    while alive(pid) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return not alive(pid)


async def test_the_child_builds_the_bytes_the_builders_make_here(
    worker: DocumentWorker, config: AggregatorConfig
) -> None:
    merged = view(event("Loppemarked"), event("Fodbold", category="sport"), notice())
    feed = await worker.build(config, merged, ("feed",), NOW)
    assert feed == documents.build_feed(config, merged)
    assert b"Loppemarked" in feed and b"Samk\xc3\xb8rsel" in feed
    sport = await worker.build(config, merged, ("ics", "", "sport"), NOW)
    assert sport == documents.build_calendar(config, merged, "", "sport", NOW)
    assert b"Fodbold" in sport and b"Loppemarked" not in sport
    assert worker.started == 1


async def test_a_changed_view_is_sent_as_a_delta_and_built_whole(
    worker: DocumentWorker, config: AggregatorConfig
) -> None:
    first = view(event("Loppemarked"), event("Fodbold"), event("Strikkeklub"))
    await worker.build(config, first, ("feed",), NOW)
    pid = worker.pid
    kept = first.items[1:]
    second = Merged((*kept, replace(first.items[0], title="Loppemarked (aflyst)")))
    delta = worker._delta(second)
    assert delta is not None
    refs, _ = delta
    assert refs[:2] == [1, 2] and refs[2] is second.items[2]  # only the changed entry travels
    calendar = await worker.build(config, second, ("ics", "", ""), NOW)
    assert calendar == documents.build_calendar(config, second, "", "", NOW)
    assert b"Loppemarked (aflyst)" in calendar and b"Strikkeklub" in calendar
    assert worker.pid == pid and worker.started == 1


async def test_a_child_that_dies_is_replaced_and_sent_the_whole_view(
    worker: DocumentWorker, config: AggregatorConfig
) -> None:
    merged = view(event("Loppemarked"))
    await worker.build(config, merged, ("feed",), NOW)
    first = worker.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    assert await gone(first)
    feed = await worker.build(config, merged, ("feed",), NOW)  # the same view: held by no one
    assert b"Loppemarked" in feed
    assert worker.started == 2 and worker.pid != first


async def test_a_build_over_its_time_is_killed_and_the_next_one_works(
    worker: DocumentWorker, config: AggregatorConfig
) -> None:
    merged = big_view(3000)
    worker.timeout = 0.05
    with pytest.raises(BuildFailed, match=r"more than 0\.05 s"):
        await worker.build(config, merged, ("ics", "", ""), NOW)
    worker.timeout = 300
    small = view(event("Fodbold"))
    assert b"Fodbold" in await worker.build(config, small, ("feed",), NOW)
    assert worker.started == 2


async def test_close_during_a_build_ends_the_child_at_once(
    worker: DocumentWorker, config: AggregatorConfig
) -> None:
    await worker.start()
    pid = worker.pid
    assert pid is not None
    build = asyncio.ensure_future(worker.build(config, big_view(3000), ("ics", "", ""), NOW))
    await asyncio.sleep(0.3)
    started = time.monotonic()
    await worker.close()
    with pytest.raises(BuildFailed):
        await asyncio.wait_for(build, 10)
    assert time.monotonic() - started < 5
    assert await gone(pid)
    with pytest.raises(BuildFailed, match="stopping"):
        await worker.build(config, view(event()), ("feed",), NOW)


# --- a real `klynge aggregator serve` ---------------------------------------------------------


class Village(BaseHTTPRequestHandler):
    """Serves whatever feed `body` holds (a village that changes its feed)."""

    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/atom+xml")
        self.send_header("Content-Length", str(len(Village.body)))
        self.end_headers()
        self.wfile.write(Village.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def village() -> Iterator[str]:
    Village.body = feed("Østerby", [event("Loppemarked")])
    server = ThreadingHTTPServer(("127.0.0.1", 0), Village)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/feed.atom"
    server.shutdown()
    server.server_close()


def descendants_of(pid: int) -> set[int]:
    """Return the pids of every living descendant of `pid`."""
    found: set[int] = set()
    todo = [pid]
    table = _parents()
    while todo:
        for child in table.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _parents() -> dict[int, list[int]]:
    table: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry.name}/stat").read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            table.setdefault(int(fields[1]), []).append(int(entry.name))
    return table


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return bytes(response.read())


def ping(base: str, feed_url: str) -> None:
    body = urllib.parse.urlencode({"hub.mode": "publish", "hub.url": feed_url}).encode()
    with urllib.request.urlopen(f"{base}/ping", data=body, timeout=30) as response:
        assert response.status == 202


def wait_for(check: Callable[[], bool], limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("not within the limit")


def test_serve_replaces_dead_workers_and_stops_promptly(tmp_path: Path, village: str) -> None:
    data = tmp_path / "agg"
    klynge = [sys.executable, "-m", "klynge.cli", "aggregator"]
    subprocess.run([*klynge, "init", str(data), "--name", "Klynge", "--url", "http://a.example"],
                   check=True, capture_output=True)  # fmt: skip
    subprocess.run([*klynge, "source", "add", str(data), village, "--name", "Østerby"],
                   check=True, capture_output=True)  # fmt: skip
    with serving([*klynge, "serve", str(data)], tmp_path / "serve.log") as served:
        ping(served.url, village)
        wait_for(lambda: b"Loppemarked" in fetch(f"{served.url}/calendar.ics"))
        workers = descendants_of(served.proc.pid)
        assert workers  # the forkserver, the parse and the document workers
        for pid in workers:
            os.kill(pid, signal.SIGKILL)  # every worker dies, the forkserver too
        Village.body = feed("Østerby", [event("Fodbold", days=4)])
        wait_for(lambda: _pinged_and_shows(served.url, village, b"Fodbold"), limit=90)
        assert b"Fodbold" in fetch(f"{served.url}/feed.atom")
        after = descendants_of(served.proc.pid)
        assert after and not after & workers  # new workers, started on demand
        started = time.monotonic()
        served.proc.send_signal(signal.SIGTERM)
        assert served.proc.wait(timeout=10) == 0
        assert time.monotonic() - started < 10
    for pid in after:
        assert asyncio.run(gone(pid)), f"worker {pid} outlived the service"
    assert "Traceback" not in served.output()


def _pinged_and_shows(base: str, feed_url: str, text: bytes) -> bool:
    ping(base, feed_url)
    return text in fetch(f"{base}/calendar.ics")


def test_no_knob_is_left_in_library_code() -> None:
    root = Path(__file__).resolve().parents[1] / "aggregator"
    knobs = ("setswitchinterval(", "gc.freeze(", "gc.disable(", "malloc_trim(", "mallopt(")
    found = [
        f"{path.relative_to(root)}: {knob}"
        for path in root.rglob("*.py")
        for knob in knobs
        if knob in path.read_text() and path.name != "tuning.py"
    ]
    assert found == []
