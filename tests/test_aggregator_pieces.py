"""The documents' pieces: a build with kept pieces makes the bytes a whole build makes, a
change renders only its entries, a broken entry is left out once; and a real `serve` whose
worker processes die replaces them and still stops promptly."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aggregator_support import NOW, calendar_bytes, config_for, event, feed, merged_of, notice
from hypothesis import given, settings
from hypothesis import strategies as st
from serve_support import serving

from aggregator.config import AggregatorConfig
from aggregator.publish import documents
from aggregator.publish.paging import PAGE_SIZE, cursor_of, page_url, place_of
from aggregator.publish.pieces import CHUNK, Pieces
from aggregator.reader.merge import Merged
from klynge.atom.writer import FeedMeta, write_feed
from klynge.ical.writer import write_calendar
from klynge.model import Event, FeedSource, Item, Tombstone

VILLAGE = FeedSource(id="urn:klynge:osterby", title="Østerby", self_url="http://o.example/f")


def view(*items: Item, tombstones: tuple[Tombstone, ...] = ()) -> Merged:
    """Return a merged view of `items`, each bound to the village, in the merge's order."""
    return merged_of(*(replace(i, source=VILLAGE) for i in items), tombstones=tombstones)


def titled(merged: Merged, title: str) -> Item:
    """Return the merged entry with this title."""
    return next(i for i in merged.items if i.title == title)


@pytest.fixture
def config(tmp_path: Path) -> AggregatorConfig:
    return config_for(tmp_path, [])


def whole_pages(config: AggregatorConfig, merged: Merged) -> list[bytes]:
    """Return the merged feed's pages, each written in one go as a village node writes its feed."""
    base = config.url.rstrip("/")
    feed_url = f"{base}/feed.atom"
    changes = sorted([*merged.items, *merged.tombstones], key=place_of, reverse=True)
    chunks = [changes[n : n + PAGE_SIZE] for n in range(0, len(changes), PAGE_SIZE)]
    pages, after = [], ""
    for n, chunk in enumerate(chunks):
        following = cursor_of(place_of(chunk[-1])) if n + 1 < len(chunks) else ""
        meta = FeedMeta(
            id=feed_url,
            title=config.name,
            self_url=page_url(feed_url, after),
            updated=max(i.updated for i in merged.items),
            alternate_url=f"{base}/",
            first_url=feed_url,
            next_url=page_url(feed_url, following) if following else "",
        )
        items = [c for c in chunk if not isinstance(c, Tombstone)]
        pages.append(write_feed(meta, items, [c for c in chunk if isinstance(c, Tombstone)]))
        after = following
    return pages


def whole_feed(config: AggregatorConfig, merged: Merged) -> bytes:
    """Return the merged feed's first page written in one go."""
    return whole_pages(config, merged)[0]


def built_pages(config: AggregatorConfig, merged: Merged, pieces: Pieces) -> list[bytes]:
    """Return every page of the merged feed built from kept pieces, following the cursors."""
    pages = [documents.build_feed(config, merged, pieces)]
    while cursor := _cursor(pages[-1]):
        pages.append(documents.build_feed(config, merged, pieces, after=cursor))
    return pages


def _cursor(page: bytes) -> str:
    found = re.search(rb'<link href="[^"]*\?after=([^"]*)" rel="next"', page)
    return urllib.parse.unquote(found.group(1).decode()) if found else ""


def test_a_feed_joined_from_kept_pieces_is_the_feed_written_whole(
    config: AggregatorConfig,
) -> None:
    gone = Tombstone(id="urn:uuid:gone", deleted=NOW, source=VILLAGE)
    many = [event(f"Arrangement {n}", days=n % 40) for n in range(CHUNK + 7)]  # two chunks
    merged = view(*many, notice(), tombstones=(gone,))
    pieces = Pieces()
    pages = built_pages(config, merged, pieces)
    assert pages == whole_pages(config, merged) and len(pages) == 3
    assert sum(p.count(b"<entry>") for p in pages) == CHUNK + 8 and b"deleted-entry" in pages[0]
    assert built_pages(config, merged, pieces) == pages
    # The second walk rendered the older pages' entries again: only the first page's are kept.
    older = sum(p.count(b"<entry>") for p in pages[1:])
    assert older > 0 and pieces.atom.rendered == CHUNK + 8 + older


def test_one_change_renders_only_the_changed_entry(config: AggregatorConfig) -> None:
    first = view(event("Loppemarked"), event("Fodbold", category="sport"), event("Strik"))
    pieces = Pieces()
    documents.build_feed(config, first, pieces)
    calendar_bytes(config, first, "", "", NOW, pieces)
    market = titled(first, "Loppemarked")
    changed = replace(market, title="Loppemarked (aflyst)", updated=NOW)
    second = merged_of(changed, *(i for i in first.items if i is not market))
    feed_bytes = documents.build_feed(config, second, pieces)
    calendar = calendar_bytes(config, second, "", "", NOW, pieces)
    assert pieces.atom.rendered == 4 and pieces.ics.rendered == 4
    assert feed_bytes == whole_feed(config, second)
    assert calendar == write_calendar(second.items, name=config.name, url=_ics(config), now=NOW)
    assert b"Loppemarked (aflyst)" in calendar and b"SUMMARY:Loppemarked\r\n" not in calendar


def test_filtered_calendars_share_the_pieces(config: AggregatorConfig) -> None:
    merged = view(event("Loppemarked"), event("Fodbold", category="sport"))
    pieces = Pieces()
    sport = calendar_bytes(config, merged, "", "sport", NOW, pieces)
    everything = calendar_bytes(config, merged, "", "", NOW, pieces)
    assert b"Fodbold" in sport and b"Loppemarked" not in sport
    assert b"Fodbold" in everything and b"Loppemarked" in everything
    assert pieces.ics.rendered == 2


def test_the_calendar_cut_off_moves_with_now_on_kept_pieces(config: AggregatorConfig) -> None:
    merged = view(event("Loppemarked", days=-80), event("Fodbold", days=2))
    pieces = Pieces()
    assert b"Loppemarked" in calendar_bytes(config, merged, "", "", NOW, pieces)
    later = NOW + timedelta(days=20)  # the market ended 100 days before `later`
    calendar = calendar_bytes(config, merged, "", "", later, pieces)
    assert b"Loppemarked" not in calendar and b"Fodbold" in calendar
    assert pieces.ics.rendered == 2


def test_pieces_of_entries_that_left_the_view_are_forgotten(config: AggregatorConfig) -> None:
    merged = view(event("Loppemarked"), event("Fodbold"))
    pieces = Pieces()
    documents.build_feed(config, merged, pieces)
    smaller = merged_of(titled(merged, "Fodbold"))
    pieces.keep_only(smaller.items, smaller.events)
    assert b"Loppemarked" not in documents.build_feed(config, smaller, pieces)
    assert len(pieces.atom.pieces(merged.items)) == 2 and pieces.atom.rendered == 3


def test_moving_to_a_new_view_forgets_the_entries_that_left_it(config: AggregatorConfig) -> None:
    merged = view(event("Loppemarked"), event("Fodbold"), notice("Samkørsel"))
    pieces = Pieces()
    pieces.take(merged)
    documents.build_feed(config, merged, pieces)
    calendar_bytes(config, merged, "", "", NOW, pieces)
    later = merged_of(titled(merged, "Fodbold"), titled(merged, "Samkørsel"), event("Høstfest"))
    pieces.take(later)
    assert b"Loppemarked" not in documents.build_feed(config, later, pieces)
    assert b"Loppemarked" not in calendar_bytes(config, later, "", "", NOW, pieces)
    assert (pieces.atom.rendered, pieces.ics.rendered) == (4, 3)  # only Høstfest was new
    assert len(pieces.atom.pieces(merged.items)) == 3 and pieces.atom.rendered == 5


def test_an_entry_that_cannot_be_rendered_is_left_out_once(
    config: AggregatorConfig, caplog: pytest.LogCaptureFixture
) -> None:
    good = event("Fodbold")
    bad = event("Loppemarked")
    object.__setattr__(bad, "place", "Hallen")  # a value no validated entry holds
    merged = view(bad, good)
    pieces = Pieces()
    with caplog.at_level(logging.ERROR, logger="klynge.render"):
        feed_bytes = documents.build_feed(config, merged, pieces)
        calendar = calendar_bytes(config, merged, "", "", NOW, pieces)
        documents.build_feed(config, merged, pieces)
    assert b"Fodbold" in feed_bytes and b"Fodbold" in calendar
    assert feed_bytes.count(b"<entry>") == 1
    assert b"Loppemarked" not in feed_bytes + calendar
    assert len([r for r in caplog.records if "left out of the feed" in r.getMessage()]) == 1
    assert pieces.atom.rendered == 2


# An edit to a view: (what, which entry, how many days from now).
EDITS = st.lists(
    st.tuples(st.sampled_from(["retitle", "move", "remove", "add"]), st.integers(0, 9),
              st.integers(-120, 120)),
    min_size=1, max_size=8,
)  # fmt: skip


def _edited(items: list[Item], edit: tuple[str, int, int]) -> list[Item]:
    what, which, days = edit
    if what == "add" or not items:
        return [*items, replace(event(f"Nyt {days}", days=days), source=VILLAGE)]
    index = which % len(items)
    if what == "remove":
        return items[:index] + items[index + 1 :]
    old = items[index]
    if what == "retitle" or not isinstance(old, Event):
        changed: Item = replace(old, title=f"{old.title} ({days})", updated=NOW)
    else:
        shift = timedelta(days=days)
        end = None if old.end is None else old.end + shift
        changed = replace(old, start=old.start + shift, end=end)
    return [*items[:index], changed, *items[index + 1 :]]


@settings(max_examples=30, deadline=None)
@given(edits=EDITS)
def test_documents_from_kept_pieces_equal_whole_builds_after_random_edits(
    edits: list[tuple[str, int, int]], tmp_path_factory: pytest.TempPathFactory
) -> None:
    config = config_for(tmp_path_factory.mktemp("agg"), [])
    items: list[Item] = list(view(*(event(f"Arrangement {n}", days=n * 9 - 40) for n in range(6)),
                                  notice()).items)  # fmt: skip
    pieces = Pieces()
    for edit in [("retitle", 0, 0), *edits]:
        items = _edited(items, edit)
        merged = merged_of(*items)
        pieces.keep_only(merged.items, merged.events)  # what the builder does on a new view
        feed_bytes = documents.build_feed(config, merged, pieces)
        calendar = calendar_bytes(config, merged, "", "", NOW, pieces)
        assert feed_bytes == documents.build_feed(config, merged)
        assert calendar == calendar_bytes(config, merged, "", "", NOW)
        if merged.items:
            assert feed_bytes == whole_feed(config, merged)


def _ics(config: AggregatorConfig) -> str:
    return f"{config.url.rstrip('/')}/calendar.ics"


# --- a real `klynge aggregator serve` ---------------------------------------------------------


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
        assert workers  # the parse worker
        for pid in workers:
            os.kill(pid, signal.SIGKILL)  # every worker dies
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
