"""Entries a fetch did not change stay the stored objects, across a restart, and never twice.

Every edit on a village moves its feed's `updated`, which each bound entry carries in its
provenance; the other entries must still be the stored objects (so their rendered pieces are
kept), and a copy bound to another origin must never be kept: the merge would then hold it
under two origins, and the cluster's calendar would show it twice (`merge_entries` gives each
origin's copy of a shared atom:id its own id).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from aggregator_support import NOW, FeedServer, config_for, event, eventually, notice
from aggregator_support import feed_server as feed_server  # a fixture

from aggregator.config import Source
from aggregator.reader.merge import (
    Content,
    merge_entries,
    origin_of,
    origin_of_content,
    same_entry,
)
from aggregator.reader.refresh import ingest
from aggregator.reader.state import SourceState
from aggregator.store.sources import state_from, state_record
from klynge.atom.writer import FeedMeta, write_feed
from klynge.ical.writer import write_calendar
from klynge.model import FeedSource, Item, Tombstone

SOURCE = Source("http://osterby.example/feed.atom", "Østerby")
TZ = "Europe/Copenhagen"


def body(
    items: list[Item],
    updated: datetime,
    tombstones: tuple[Tombstone, ...] = (),
    *,
    feed_id: str = "urn:klynge:osterby",
) -> bytes:
    """Return the village's feed as its node writes it, its feed-level `updated` given."""
    meta = FeedMeta(id=feed_id, title="Østerby", self_url=SOURCE.url, updated=updated)
    return write_feed(meta, items, tombstones)


def restarted(content: Content) -> Content:
    """Return a content as the aggregator has it after a restart: stored, then loaded."""
    record = state_record(SourceState(SOURCE.url, content=content))
    return state_from(json.loads(json.dumps(record))).content


def village() -> list[Item]:
    return [event(f"Arrangement {n}", days=1 + n) for n in range(5)] + [notice("Opslag")]


def test_only_the_edited_entry_is_new_when_the_feed_updated_moves() -> None:
    items = village()
    first = ingest(body(items, NOW - timedelta(hours=1)), SOURCE, TZ, Content(), NOW).content
    edited = replace(items[2], title="Arrangement 2 (flyttet)", updated=NOW)
    items[2] = edited
    second = ingest(body(items, NOW), SOURCE, TZ, first, NOW).content
    assert second.origin is not None and second.origin.updated == NOW
    new = [i for i, item in second.entries.items() if item is not first.entries.get(i)]
    assert new == [edited.id]
    assert second.entries[edited.id].title == "Arrangement 2 (flyttet)"
    assert all(origin_of(item) == origin_of_content(second) for item in second.entries.values())


def _calendar(contents: list[Content]) -> bytes:
    merged = merge_entries(contents)
    return write_calendar(merged.items, name="Klynge Syd", now=NOW)


def test_kept_entries_survive_restarts_and_tombstones_and_each_is_merged_once() -> None:
    items = village()
    first = ingest(body(items, NOW - timedelta(hours=2)), SOURCE, TZ, Content(), NOW).content
    loaded = restarted(first)
    # After the restart: one entry deleted (its tombstone), one edited, the feed's updated moved.
    gone = items.pop(0)
    items[0] = replace(items[0], title="Arrangement 1 (ny tid)", updated=NOW)
    tomb = Tombstone(gone.id, NOW)
    second = ingest(body(items, NOW - timedelta(hours=1), (tomb,)), SOURCE, TZ, loaded, NOW)
    kept = [i for i, item in second.content.entries.items() if item is loaded.entries.get(i)]
    assert sorted(kept) == sorted(item.id for item in items[1:])
    # The kept entries carry the older feed `updated`: stored per entry, loaded the same.
    again = restarted(second.content)
    assert again.entries == second.content.entries
    third = ingest(body(items, NOW, (tomb,)), SOURCE, TZ, again, NOW).content
    assert all(third.entries[i] is again.entries[i] for i in third.entries)
    assert gone.id not in third.entries and gone.id in third.tombstones

    merged = merge_entries([third])
    assert sorted(item.id for item in merged.items) == sorted(item.id for item in items)
    calendar = _calendar([third])
    assert calendar.count(b"BEGIN:VEVENT") == 4  # five events, one deleted; the notice is no event
    assert calendar.count(b"Arrangement 1 (ny tid)") == 1
    assert b"Arrangement 0" not in calendar


def test_a_feed_that_changes_its_id_rebinds_every_entry_and_its_tombstones_still_delete() -> None:
    items = village()
    first = ingest(body(items, NOW - timedelta(hours=1)), SOURCE, TZ, Content(), NOW).content
    moved = "urn:klynge:osterby-ny"
    loaded = restarted(first)
    second = ingest(body(items, NOW, feed_id=moved), SOURCE, TZ, loaded, NOW).content
    # Another origin: no stored copy is kept, or it would stay bound to the old one.
    assert not any(second.entries[i] is loaded.entries[i] for i in second.entries)
    assert {origin_of(item) for item in second.entries.values()} == {origin_of_content(second)}
    tomb = Tombstone(items[0].id, NOW + timedelta(minutes=1))
    later = NOW + timedelta(minutes=1)
    third = ingest(body(items[1:], later, (tomb,), feed_id=moved), SOURCE, TZ, second, later)
    calendar = _calendar([third.content])
    assert items[0].id not in third.content.entries
    assert calendar.count(b"BEGIN:VEVENT") == 4


VILLAGE = FeedSource("urn:klynge:osterby", "Østerby", NOW, SOURCE.url, "Østerby")
# (name, how the fresh copy differs from the stored one, whether it is the same entry)
SAME: list[tuple[str, Callable[[Item], Item], bool]] = [
    ("equal", lambda item: item, True),
    ("only the feed's updated", lambda i: _sourced(i, updated=NOW + timedelta(hours=1)), True),
    ("no feed updated now", lambda i: _sourced(i, updated=None), True),
    ("another feed id", lambda i: _sourced(i, id="urn:klynge:vesterby"), False),
    ("another polled URL", lambda i: _sourced(i, self_url="http://v.example/feed.atom"), False),
    ("another feed title", lambda i: _sourced(i, title="Vesterby"), False),
    ("another feed author", lambda i: _sourced(i, author="Vesterby"), False),
    ("no provenance", lambda i: replace(i, source=None), False),
    ("an edited title and the feed's updated", lambda i: _edited(i), False),
    ("another entry id", lambda i: replace(i, id="urn:uuid:0000"), False),
]


def _sourced(item: Item, **change: Any) -> Item:
    assert item.source is not None
    return replace(item, source=replace(item.source, **change))


def _edited(item: Item) -> Item:
    return _sourced(replace(item, title="Ændret"), updated=NOW + timedelta(hours=1))


@pytest.mark.parametrize(("fresh", "same"), [c[1:] for c in SAME], ids=[c[0] for c in SAME])
def test_a_fresh_copy_is_the_stored_entry_only_if_nothing_but_its_feed_updated_differs(
    fresh: Callable[[Item], Item], same: bool
) -> None:
    stored = replace(event("Loppemarked"), source=VILLAGE)
    assert same_entry(fresh(stored), stored) is same
    assert same_entry(stored, None) is False


async def test_a_cluster_renders_only_the_edited_entry_when_the_feed_updated_moves(
    feed_server: FeedServer, tmp_path: Any, aiohttp_client: Any
) -> None:
    from aggregator_support import outputs_of, refresher_of, start_aggregator

    items = village()
    url = feed_server.url("/osterby.atom")
    feed_server.set("/osterby.atom", body(items, NOW - timedelta(hours=1)))
    client = await start_aggregator(aiohttp_client, config_for(tmp_path, [Source(url, "Østerby")]))
    await refresher_of(client).refresh_all()
    assert (await client.get("/calendar.ics")).status == 200
    pieces = outputs_of(client).pieces
    before = pieces.ics.rendered
    items[3] = replace(items[3], title="Arrangement 3 (aflyst)", updated=NOW)
    feed_server.set("/osterby.atom", body(items, NOW))
    await refresher_of(client).refresh_all()

    async def shows_the_edit() -> bool:
        return b"Arrangement 3 (aflyst)" in await (await client.get("/calendar.ics")).read()

    await eventually(shows_the_edit)
    assert pieces.ics.rendered - before == 1  # the other four events kept their pieces
    calendar = await (await client.get("/calendar.ics")).read()
    assert calendar.count(b"BEGIN:VEVENT") == 5
