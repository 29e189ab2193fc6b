"""Carpools in the stores and the format: round trips, and no contact details left in a `.bak`."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from clock_support import utc_now

from aggregator.reader.carpools import without_ended_carpools
from aggregator.reader.merge import Content
from aggregator.reader.state import SourceState
from aggregator.store.records import item_from, item_record
from aggregator.store.sources import Store
from klynge.atom.reader import read_feed
from klynge.atom.writer import FeedMeta, write_feed
from klynge.carpool import Carpool
from klynge.errors import ValidationError
from klynge.ical.writer import write_calendar
from klynge.model import Event, Notice, new_id
from node.serialize import doc_to_item, item_to_doc

NOW = utc_now()
URL = "https://vesterlund.example.dk/feed.atom"


def match() -> Event:
    start = NOW + timedelta(days=3)
    return Event(id=new_id(), title="Udebanekamp", updated=NOW, start=start,
                 end=start + timedelta(hours=2), category="sport", carpooling=True)  # fmt: skip


def post(event: Event, phone: str = "20 12 34 56") -> Notice:
    carpool = Carpool("offer", 3, "Østerby Kirke", NOW + timedelta(days=3), "Mette", phone)
    return Notice(id=new_id(), title="Tilbyder 3 pladser fra Østerby Kirke", updated=NOW,
                  category="carpool", related=event.id, expires=event.series_end(),
                  carpool=carpool)  # fmt: skip


def test_a_carpool_survives_every_adapter() -> None:
    event = match()
    notice = post(event)
    assert doc_to_item(item_to_doc(notice)) == notice
    assert doc_to_item(item_to_doc(event)) == event
    assert item_from(item_record(notice)) == notice
    parsed = read_feed(write_feed(FeedMeta("x:1", "V", URL, NOW), [event, notice]))
    read_event, read_notice = parsed.items
    assert isinstance(read_event, Event) and read_event.carpooling
    assert isinstance(read_notice, Notice) and read_notice.carpool == notice.carpool
    assert b"Mette" not in write_calendar([event, notice], name="V", now=NOW)  # never in ICS


@pytest.mark.parametrize(
    ("element", "value"),
    [
        ("seats", "9"),
        ("seats", "3" * 40),
        ("direction", "sell"),
        ("phone", "112"),
        ("departure", "tomorrow"),
        ("from", "x" * 81),
    ],
)
def test_a_bad_carpool_element_is_a_problem_not_a_crash(element: str, value: str) -> None:
    event = match()
    feed = write_feed(FeedMeta("x:1", "V", URL, NOW), [event, post(event)]).decode()
    old = {"seats": "3", "direction": "offer", "phone": "20 12 34 56", "from": "Østerby Kirke"}
    if element == "departure":
        start = feed.index("<klynge:departure>") + len("<klynge:departure>")
        feed = feed[:start] + value + feed[feed.index("</klynge:departure>") :]
    else:
        feed = feed.replace(f"<klynge:{element}>{old[element]}<", f"<klynge:{element}>{value}<")
    parsed = read_feed(feed.encode())
    assert [i.kind for i in parsed.items] == ["event"]  # the bad post is left out, in words
    assert parsed.problems


def test_the_model_refuses_a_bad_carpool() -> None:
    with pytest.raises(ValidationError) as caught:
        Carpool("offer", 0, "", None, "x" * 41, "12", "not an address")  # type: ignore[arg-type]
    assert set(caught.value.fields) == {"seats", "origin", "contact", "phone", "email"}
    with pytest.raises(ValidationError):
        Notice(id=new_id(), title="x", updated=NOW, carpool="3 seats")  # type: ignore[arg-type]


def test_the_aggregator_store_keeps_no_removed_contact_in_its_backup(tmp_path: Path) -> None:
    event = match()
    notice = post(event)
    store = Store(tmp_path)
    store.load([URL])
    state = SourceState(URL)
    state.content = Content(entries={event.id: event, notice.id: notice},
                            first_seen={event.id: NOW, notice.id: NOW})  # fmt: skip
    store.save(state)
    store.save(state)  # the backup now holds the post too
    later = event.series_end() + timedelta(minutes=1)
    cleaned = without_ended_carpools(state.content, later)
    assert cleaned is not None and list(cleaned.entries) == [event.id]
    state.content = cleaned
    store.save(state)
    files = list((tmp_path / "store").iterdir())
    assert any(p.name.endswith(".bak") for p in files)
    assert all("20 12 34 56" not in p.read_text() for p in files)
    assert without_ended_carpools(cleaned, later) is None
    store.close()


def test_a_carpool_whose_event_ended_early_goes_too() -> None:
    event = match()
    notice = post(event)
    longer = replace(notice, expires=datetime(2100, 1, 1, tzinfo=UTC))
    content = Content(entries={event.id: event, notice.id: longer})
    assert without_ended_carpools(content, event.series_end() - timedelta(minutes=1)) is None
    cleaned = without_ended_carpools(content, event.series_end())
    assert cleaned is not None and notice.id not in cleaned.entries
