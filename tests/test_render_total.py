"""Rendering is total: an entry that cannot be rendered is left out and logged, the output served.

The model refuses bad rules now, so the poisoned entries here are what an older, looser
version let through: a valid Event that then carries its old raw rule text, as a store that
trusts its own records (aggregator.store.records) would load it. The real output builders, a real
node and a real aggregator (with its TinyDB file edited by hand) must still serve everything
else.
"""

from __future__ import annotations

import copy
import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import aggregator_support as support
import feedparser
import icalendar
import node_support
import pytest
from aggregator_support import (
    FeedServer,
    config_for,
    event,
    feed,
    refresher_of,
    start_aggregator,
)
from clock_support import local_today, utc_now
from node_support import Client, NodeDir, auth

from aggregator.config import Source
from klynge.atom.writer import FeedMeta, write_feed
from klynge.errors import KlyngeError
from klynge.ical.writer import event_calendar, write_calendar
from klynge.model import Event
from klynge.recurrence import expand
from klynge.render_guard import entry_label, rendered
from node.keys import PUBLISHER, STORE
from node.store import Store

feed_server = support.feed_server  # a fixture
OLD_RULE = "FREQ=WEEKLY;COUNT=2\r\nATTENDEE:mailto:e@x"  # accepted before the hardening
SOON = local_today() + timedelta(days=7)


def poisoned(good: Event, title: str = "Giftpille") -> Event:
    """Return a copy of a valid event carrying an old, raw rule (validation bypassed)."""
    bad = copy.copy(good)
    object.__setattr__(bad, "id", good.id + "-old")
    object.__setattr__(bad, "title", title)
    object.__setattr__(bad, "rrule", OLD_RULE)
    return bad


def left_out(caplog: pytest.LogCaptureFixture, entry_id: str, output: str) -> bool:
    return any(
        r.message.startswith(f"entry {entry_id}") and f"left out of {output}: " in r.message
        for r in caplog.records
    )


def test_the_guard_leaves_out_what_fails_and_names_it(caplog: pytest.LogCaptureFixture) -> None:
    def render(n: int) -> int:
        return 10 // n

    with caplog.at_level(logging.ERROR, "klynge.render"):
        assert rendered([1, 0, 2], render, "the sums") == [10, 5]
    (record,) = caplog.records
    assert (
        record.message
        == "entry int left out of the sums: ZeroDivisionError: integer division or modulo by zero"
    )
    good = event("Strikkeklub")
    assert entry_label(good) == good.id


def test_calendar_feed_and_occurrences_leave_out_the_poisoned_entry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = event("Strikkeklub", rrule="FREQ=WEEKLY;COUNT=3")
    bad = poisoned(good)
    with caplog.at_level(logging.ERROR, "klynge.render"):
        calendar = icalendar.Calendar.from_ical(write_calendar([bad, good], name="Østerby"))
        meta = FeedMeta(
            id="urn:klynge:t", title="Østerby", self_url="http://t/f", updated=utc_now()
        )
        parsed = feedparser.parse(write_feed(meta, [bad, good]))
        window = (utc_now(), utc_now() + timedelta(days=60))
        found = expand([bad, good], *window, output="the test page")
        lone = icalendar.Calendar.from_ical(event_calendar(bad))
    assert [str(e["SUMMARY"]) for e in calendar.walk("VEVENT")] == ["Strikkeklub"]
    assert [e.title for e in parsed.entries] == ["Strikkeklub"] and not parsed.bozo
    assert [o.event.title for o in found] == ["Strikkeklub"] * 3
    assert lone.walk("VEVENT") == []  # its own .ics is an empty calendar, not a 500
    for output in ("the calendar", "the feed", "the test page"):
        assert left_out(caplog, bad.id, output), output


# --- a real node --------------------------------------------------------------------------


node_dir, client = node_support.node_dir, node_support.client  # fixtures


async def test_a_node_serves_every_output_around_an_entry_that_fails(
    client: Client, node_dir: NodeDir, caplog: pytest.LogCaptureFixture
) -> None:
    payload = {"title": "Loppemarked", "start": f"{SOON}T10:00", "rrule": "FREQ=WEEKLY;COUNT=2"}
    for title in ("Loppemarked", "Giftpille"):
        response = await client.post(
            "/api/events", json={**payload, "title": title}, headers=auth(node_dir.token)
        )
        assert response.status == 201
        if title == "Giftpille":
            bad_uuid = (await response.json())["id"]
    store = client.server.app[STORE]
    bad = store.get(bad_uuid)
    assert isinstance(bad, Event)
    object.__setattr__(bad, "rrule", OLD_RULE)  # in memory, as a trusting loader would hold it
    client.server.app[PUBLISHER].invalidate()
    with caplog.at_level(logging.ERROR, "klynge.render"):
        texts = {}
        for path in ("/", "/feed.atom", "/calendar.ics", "/healthz"):
            response = await client.get(path)
            assert response.status == 200, path
            texts[path] = await response.text()
        for path in (f"/events/{bad_uuid}", f"/events/{bad_uuid}.ics"):
            assert (await client.get(path)).status == 404, path  # left out of its own page
    assert "Loppemarked" in texts["/"] and "Giftpille" not in texts["/"]
    assert [e.title for e in feedparser.parse(texts["/feed.atom"]).entries] == ["Loppemarked"]
    assert (
        "SUMMARY:Loppemarked" in texts["/calendar.ics"]
        and "Giftpille" not in texts["/calendar.ics"]
    )
    for output in ("the village page", "the feed", "the calendar", "its own page"):
        assert left_out(caplog, bad.id, output), output


def test_a_node_store_file_with_an_old_rule_is_refused_at_load(node_dir: NodeDir) -> None:
    # Decided: the node does not start on a record the model refuses (it names the field);
    # the store's start-up check turns this into one clear line (hardening issue, part 3).
    store = Store.open(node_dir.path / "node.json")
    store.close()
    path = node_dir.path / "node.json"
    data = json.loads(path.read_text())
    data["events"] = {
        "1": {"id": "urn:uuid:11111111-1111-4111-8111-111111111111", "kind": "event",
              "title": "Giftpille", "updated": "2026-11-01T10:00:00+00:00",
              "start": f"{SOON}T10:00:00+01:00", "all_day": False,
              "timezone": "Europe/Copenhagen", "rrule": OLD_RULE},
    }  # fmt: skip
    path.write_text(json.dumps(data))
    with pytest.raises(KlyngeError) as caught:
        Store.open(path)
    assert "rrule" in str(caught.value)


# --- a real aggregator, its TinyDB file edited by hand ------------------------------------


async def test_an_aggregator_leaves_out_a_stored_entry_with_an_old_rule(
    feed_server: FeedServer,
    tmp_path: Path,
    aiohttp_client: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    items = [event("Strikkeklub", rrule="FREQ=WEEKLY;COUNT=4"), event("Giftpille")]
    url = feed_server.set("/osterby.atom", feed("Østerby", items))
    config = config_for(tmp_path, [Source(url, "Østerby")])
    first = await start_aggregator(aiohttp_client, config)
    await refresher_of(first).refresh_all()
    await first.close()  # saves and releases the data directory
    path = refresher_of(first).store.path_of(url)
    assert path is not None
    data = json.loads(path.read_text())
    for doc in data["source"].values():
        for entry in doc["entries"]:
            if entry["title"] == "Giftpille":
                entry["rrule"] = OLD_RULE
    path.write_text(json.dumps(data))
    feed_server.routes.clear()  # the village is down: only the store can answer now
    with caplog.at_level(logging.ERROR, "klynge.aggregator"):
        second = await start_aggregator(aiohttp_client, config)
        for output in ("/", "/calendar", "/poster", "/api/events", "/calendar.ics", "/feed.atom"):
            response = await second.get(output)
            text = await response.text()
            assert response.status == 200, output
            assert "Strikkeklub" in text and "Giftpille" not in text, output
    words = f"entry {items[1].id} left out of {url} in the store: rrule: A repeat rule may only"
    assert any(r.message.startswith(words) for r in caplog.records), caplog.text
