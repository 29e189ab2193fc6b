"""The process knobs: the heap is frozen after each merge and build (later collections walk
only what is new), and the event loop waits at most a millisecond for the GIL."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aggregator_support as support
import pytest
from aggregator_support import (
    FeedServer,
    config_for,
    event,
    feed,
    refresher_of,
    start_aggregator,
    view_of,
)
from aiohttp import web

from aggregator.app import create_app
from aggregator.config import Source
from aggregator.tuning import SWITCH_INTERVAL, Settler

feed_server = support.feed_server  # a fixture


class Node:
    """A tracked object that can be in a cycle and be watched by a weak reference."""

    def __init__(self) -> None:
        self.other: object = None


@pytest.fixture(autouse=True)
def untuned() -> Iterator[None]:
    """Leave the process as a test found it: nothing frozen, the default switch interval."""
    interval = sys.getswitchinterval()
    yield
    gc.unfreeze()
    gc.enable()
    sys.setswitchinterval(interval)


def frozen(thing: object) -> bool:
    """Tell whether the collector tracks `thing` but walks it in no generation (frozen)."""
    walked = any(o is thing for generation in range(3) for o in gc.get_objects(generation))
    return gc.is_tracked(thing) and not walked


def test_settling_freezes_what_is_alive_and_a_later_settle_what_was_made_since() -> None:
    settler = Settler()
    kept = Node()
    settler.settle()
    assert frozen(kept)
    made_since = Node()
    assert not frozen(made_since)
    settler.settle()
    assert frozen(made_since) and settler.whole == 0  # nothing walked the frozen objects


FREED = """
from aggregator.tuning import Settler

def rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

blocks = [bytes(2000) for _ in range(100_000)]  # 200 MB from malloc (pymalloc: up to 512 B)
kept = blocks[::100]  # one block in a hundred stays alive: the freed ones lie between them
del blocks
before = rss_kb()
Settler().settle()
print(before, rss_kb())
"""


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's malloc_trim and /proc are Linux's")
def test_a_settle_gives_freed_memory_back_to_the_system() -> None:
    # glibc keeps freed blocks between live ones for later mallocs: the process's RSS stays.
    done = subprocess.run(
        [sys.executable, "-c", FREED], capture_output=True, text=True, timeout=60, check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )  # fmt: skip
    before, after = map(int, done.stdout.split())
    assert before > 150_000, "the blocks were not held"
    assert before - after > 100_000, f"RSS {before} kB before the settle, {after} kB after"


def test_a_frozen_cycle_is_collected_once_as_many_objects_were_frozen_again() -> None:
    settler = Settler()
    lost = Node()
    lost.other = lost  # a cycle: only a collection frees it
    watch = weakref.ref(lost)
    settler.settle()  # alive at the freeze
    del lost
    gc.collect()
    settler.settle()
    assert watch() is not None and settler.whole == 0  # frozen garbage: not walked
    grown = [Node() for _ in range(len(gc.get_objects()) + gc.get_freeze_count())]
    settler.settle()
    assert watch() is None and settler.whole == 1
    assert frozen(grown[0])


def test_a_held_collector_runs_again_at_the_next_settle_or_when_released() -> None:
    settler = Settler()
    settler.hold()
    assert not gc.isenabled()
    loaded = Node()
    settler.settle()
    assert gc.isenabled() and frozen(loaded)
    settler.settle()
    assert gc.isenabled()  # a settle without a hold leaves it on
    settler.hold()
    settler.release()
    assert gc.isenabled()
    gc.disable()  # someone else's choice: a release without a hold keeps it
    settler.release()
    assert not gc.isenabled()


async def test_the_aggregator_collects_again_once_its_first_merge_is_settled(
    feed_server: FeedServer, tmp_path: Path, aiohttp_client: Any
) -> None:
    url = feed_server.set("/osterby.atom", feed("Østerby", [event("Loppemarked")]))
    config = config_for(tmp_path, [Source(url, "Østerby")])
    client = await start_aggregator(aiohttp_client, config)
    await refresher_of(client).refresh_all()
    await client.close()
    client = await start_aggregator(aiohttp_client, config)  # loads what the first stored
    await refresher_of(client).ready()
    merged = await view_of(client).current()
    assert [e.title for e in merged.events] == ["Loppemarked"] and gc.isenabled()


async def test_an_aggregator_stopped_before_its_first_merge_collects_again(
    tmp_path: Path, aiohttp_client: Any
) -> None:
    client = await start_aggregator(aiohttp_client, config_for(tmp_path, []))
    await client.close()
    assert gc.isenabled()


async def test_an_aggregator_whose_start_fails_collects_again(tmp_path: Path) -> None:
    config = config_for(tmp_path, [])
    moderation = config.data_dir / "store" / "moderation.json"
    moderation.parent.mkdir(parents=True, exist_ok=True)
    moderation.write_text('{"hidden": {"not an id": {}}}')  # refused: the start stops
    runner = web.AppRunner(create_app(config, periodic=False))
    with pytest.raises(Exception, match="moderation"):
        await runner.setup()  # the app's start (its services), without a server
    assert gc.isenabled()


async def test_the_aggregator_shares_the_gil_within_a_millisecond(
    tmp_path: Path, aiohttp_client: Any
) -> None:
    sys.setswitchinterval(0.005)  # CPython's default
    await start_aggregator(aiohttp_client, config_for(tmp_path, []))
    assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL) == 0.001


async def test_the_aggregator_settles_after_each_merge(
    feed_server: FeedServer, tmp_path: Path, aiohttp_client: Any
) -> None:
    url = feed_server.set("/osterby.atom", feed("Østerby", [event("Loppemarked")]))
    client = await start_aggregator(aiohttp_client, config_for(tmp_path, [Source(url, "Østerby")]))
    await refresher_of(client).refresh_all()
    merged = await view_of(client).current()
    assert [e.title for e in merged.events] == ["Loppemarked"]
    assert frozen(merged.events[0])
    feed_server.set("/osterby.atom", feed("Østerby", [event("Høstfest")]))
    await refresher_of(client).refresh_all()
    merged = await view_of(client).current()
    (new,) = [e for e in merged.events if e.title == "Høstfest"]
    assert frozen(new)
