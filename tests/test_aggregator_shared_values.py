"""A village's repeated values (venue, organiser, zone, status) are one object per value,
as read from a feed, as sent from the parse child and as loaded from the store (issue 15)."""

from __future__ import annotations

import pickle
from dataclasses import replace

from aggregator_support import NOW, event, feed

from aggregator.config import Source
from aggregator.reader.merge import Content
from aggregator.reader.parse import parse_body
from aggregator.reader.state import SourceState
from aggregator.store.sources import state_from, state_record
from klynge.model import Event, FeedSource, Item, Place

HALL = Place(name="Forsamlingshuset", street="Hovedgaden 1", locality="Østerby", lat=0.0, lon=10.0)
# Equal to HALL (0.0 == -0.0), but it writes "-0.0": it must keep its own place.
SOUTH = Place(
    name="Forsamlingshuset", street="Hovedgaden 1", locality="Østerby", lat=-0.0, lon=10.0
)
ORIGIN = FeedSource(id="urn:klynge:osterby", title="Østerby", self_url="http://o.example/f")


def _events() -> list[Item]:
    made: list[Item] = [
        event(f"Møde {n}", days=n + 1, place=HALL, organizer="Forsamlingshuset") for n in range(3)
    ]
    return [*made, event("Sydpå", days=9, place=SOUTH, organizer="Forsamlingshuset")]


def _parsed() -> list[Event]:
    source = Source("http://o.example/f", "Østerby")
    parsed = parse_body(feed("Østerby", _events()), source, "Europe/Copenhagen", NOW)
    return [i for i in parsed.items if isinstance(i, Event)]


def _shares(items: list[Event]) -> None:
    first, second, third, south = items
    assert first.place is second.place is third.place and first.place == HALL
    assert first.organizer is second.organizer is south.organizer
    assert first.timezone is third.timezone and first.status is third.status
    assert south.place is not first.place and repr(south.place) == repr(SOUTH)


def test_a_parsed_feed_holds_each_repeated_value_once() -> None:
    items = _parsed()
    assert [i.title for i in items] == ["Møde 0", "Møde 1", "Møde 2", "Sydpå"]
    _shares(items)


def test_the_parse_childs_message_keeps_them_shared() -> None:
    source = Source("http://o.example/f", "Østerby")
    parsed = parse_body(feed("Østerby", _events()), source, "Europe/Copenhagen", NOW)
    received = pickle.loads(pickle.dumps(parsed))  # what aggregator.child sends
    assert received == parsed
    _shares([i for i in received.items if isinstance(i, Event)])


def test_a_source_loaded_from_the_store_holds_them_once() -> None:
    items = [replace(i, source=ORIGIN) for i in _events()]  # bound, as the store keeps them
    content = Content(ORIGIN, {i.id: i for i in items}, {i.id: NOW for i in items})
    record = state_record(SourceState("http://o.example/f", content=content))
    loaded = state_from(record).content.entries
    assert [loaded[i.id] for i in items] == items
    _shares([loaded[i.id] for i in items])  # type: ignore[misc]
