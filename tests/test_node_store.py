"""The node store's file: cached encoding gives exactly json.dumps' bytes, the file opens with
klynge.storage, and an entry survives a reopen unchanged."""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from klynge.errors import StorageError
from klynge.model import Event, Notice, Place
from klynge.storage import backup_path, open_database
from node.encoding import TableEncoder
from node.store import Store, User

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
scalars = st.none() | st.booleans() | st.integers() | st.text() | st.floats(allow_nan=False)
# Sizes bounded: unbounded nested collections cost Hypothesis 15-50 s for 60 examples here (2-3 s
# bounded), for examples of the same largest size (about 6 KB of JSON).
values = scalars | st.lists(scalars, max_size=5) | st.dictionaries(st.text(), scalars, max_size=5)
docs = st.dictionaries(st.text(), values, max_size=8)
tables = st.dictionaries(
    st.text(min_size=1), st.dictionaries(st.text(min_size=1), docs, max_size=6), max_size=3
)


@settings(max_examples=60, deadline=None)
@given(tables)
def test_encoding_equals_json_dumps(data: dict[str, dict[str, object]]) -> None:
    encoder = TableEncoder()
    expected = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    assert encoder.encode(data) == expected
    assert encoder.encode(data) == expected  # from the cache


def test_changed_document_is_encoded_afresh() -> None:
    encoder = TableEncoder()
    table = {"1": {"title": "før"}, "2": {"title": "uændret"}}
    encoder.encode({"events": table})
    table = {**table, "1": {"title": "efter"}}  # documents are replaced, never mutated
    assert json.loads(encoder.encode({"events": table})) == {"events": table}


async def test_store_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "node.json"
    store = Store.open(path)
    place = Place(name="Kirken", street="Kirkevej 1", postcode="8882", locality="Østerby",
                  lat=56.19, lon=9.56)  # fmt: skip
    event = Event(id="urn:uuid:e1", title="Julekoncert", updated=NOW, created=NOW,
                  start=datetime(2026, 12, 20, 15, 0, tzinfo=UTC), place=place,
                  rrule="FREQ=WEEKLY;COUNT=3", organizer="Kirken")  # fmt: skip
    notice = Notice(id="urn:uuid:n1", title="Kirkebil", updated=NOW, body="<p>Ring</p>",
                    expires=NOW, related="urn:uuid:e1")  # fmt: skip
    await store.save_item(event)
    await store.save_item(notice)
    gone = await store.delete_item(notice)
    store.close()
    reopened = Store.open(path)
    assert reopened.get("e1") == event and reopened.get("n1") is None
    assert reopened.tombstones() == [gone]
    reopened.close()
    db = open_database(path)  # the shared durable storage reads the same file
    assert {d["id"] for d in db.table("events").all()} == {"urn:uuid:e1"}
    assert backup_path(path).exists()


async def test_reading_in_a_worker_thread_while_entries_change(tmp_path: Path) -> None:
    # The publisher builds the feed and calendar in a worker thread from store.items() and
    # store.events() while requests on the loop add and delete entries.
    store = Store.open(tmp_path / "node.json")
    events = [Event(id=f"urn:uuid:e{n}", title=f"Møde {n}", updated=NOW,
                    start=NOW) for n in range(2000)]  # fmt: skip
    await store.save_many(events)
    failures: list[BaseException] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            try:
                store.items(), store.items("event"), store.events(), store.notices()
            except RuntimeError as e:  # "dictionary changed size during iteration"
                failures.append(e)
                return

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # hand the GIL over often, as a busy Pi does
    reader = threading.Thread(target=read)
    reader.start()
    try:
        for n in range(40):
            await store.save_item(replace(events[0], id=f"urn:uuid:new{n}"))
            await store.delete_item(events[n])
    finally:
        done.set()
        reader.join()
        sys.setswitchinterval(switch)
        store.close()
    assert failures == []


async def test_a_failed_write_changes_nothing_and_loses_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "osterby"
    folder.mkdir()
    store = Store.open(folder / "node.json")
    user = User(username="bo", association="Østerby IF", password_hash="x")
    await store.save_user(user)
    first = Event(id="urn:uuid:e1", title="Banko", updated=NOW, start=NOW)
    await store.save_item(first)
    folder.rename(tmp_path / "moved")  # the write cannot make its temp file: it fails
    try:
        with pytest.raises(StorageError):
            await store.save_item(replace(first, id="urn:uuid:e2", title="Loppemarked"))
        # Neither the table of what failed nor any other table changed in memory.
        assert store.user("bo") == user and store.get("e2") is None
    finally:
        (tmp_path / "moved").rename(folder)
    await store.save_item(replace(first, id="urn:uuid:e3", title="Julefrokost"))
    store.close()
    reopened = Store.open(folder / "node.json")
    assert reopened.user("bo") == user
    assert sorted(i.title for i in reopened.items()) == ["Banko", "Julefrokost"]
    reopened.close()
