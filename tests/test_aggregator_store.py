"""The aggregator's store: a TinyDB file per source and an index; loading in the background."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import aggregator_support as support
import pytest
from aggregator_support import FeedServer, config_for, event, feed, notice, start_aggregator
from clock_support import utc_now

from aggregator.config import Source
from aggregator.keys import MERGED, REFRESHER
from aggregator.reader.merge import Content
from aggregator.reader.state import SourceState
from aggregator.store.sources import FILE_NAME, Store, file_name, state_record
from klynge.errors import StorageError
from klynge.model import Event, FeedSource

feed_server = support.feed_server  # a fixture

ODD_URLS = [
    "http://a.example/feed.atom",
    "http://a.example/../../etc/passwd",
    "https://b.example/kalender.ics?by=Østerby&år=2026#x",
    "http://c.example/" + "x" * 3000,
    "http://d.example/feed.atom\n",
]


def state_of(url: str, title: str = "Loppemarked") -> SourceState:
    """A source's state with one event bound to it and validators."""
    origin = FeedSource(id=url, title="Østerby", self_url=url)
    now = utc_now()
    item = Event(id="urn:uuid:4b0c5b36-2f1e-4bb1-9a43-4b1d7a1f0001", title=title,
                 updated=now, start=now + timedelta(days=2), timezone="Europe/Copenhagen",
                 source=origin)  # fmt: skip
    content = Content(origin=origin, entries={item.id: item}, first_seen={item.id: now})
    return SourceState(url, etag='"v1"', last_success=now, content=content)


def test_file_names_are_safe_and_distinct_for_any_url(tmp_path: Path) -> None:
    names = [file_name(url) for url in ODD_URLS]
    assert all(FILE_NAME.fullmatch(name) for name in names) and len(set(names)) == len(names)
    saved = {url: state_of(url, title=f"Titel {len(url)}") for url in ODD_URLS}
    store = Store(tmp_path)
    for state in saved.values():
        store.save(state)
    store.close()
    listed = sorted(p.name for p in (tmp_path / "store").iterdir())
    assert listed == sorted([*names, "index.json", "index.json.bak"])
    loaded = Store(tmp_path).load()
    assert sorted(loaded) == sorted(ODD_URLS)
    for url, state in loaded.items():
        assert state_record(state) == state_record(saved[url])


def test_only_configured_sources_load_and_others_keep_their_files(tmp_path: Path) -> None:
    store = Store(tmp_path)
    for url in ODD_URLS[:3]:
        store.save(state_of(url))
    before = {p.name: p.read_bytes() for p in store.directory.iterdir()}
    again = Store(tmp_path)
    assert list(again.load([ODD_URLS[1], "http://new.example/feed.atom"])) == [ODD_URLS[1]]
    again.save(state_of(ODD_URLS[1], title="Stort loppemarked"))
    after = {p.name: p.read_bytes() for p in again.directory.iterdir()}
    assert {n for n in after if before.get(n) != after[n]} == {
        file_name(ODD_URLS[1]),
        file_name(ODD_URLS[1]) + ".bak",
    }


def test_a_damaged_source_file_sets_that_source_aside_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good, bad = ODD_URLS[0], ODD_URLS[2]
    store = Store(tmp_path)
    for url in (good, bad):
        store.save(state_of(url))
        store.save(state_of(url, title="Stort loppemarked"))  # a good .bak
    path = store.path_of(bad)
    assert path is not None
    data = json.loads(path.read_bytes())
    data["source"]["1"]["failures"] = "mange"
    path.write_text(json.dumps(data))
    before = path.read_bytes()
    again = Store(tmp_path)
    with caplog.at_level(logging.ERROR, "klynge.aggregator"):
        loaded = again.load([good, bad])
    assert list(loaded) == [good]
    [line] = [r.getMessage() for r in caplog.records]
    assert f"{path}: the record source/1 ({bad}) is not valid" in line and "mange" in line
    assert f"its backup {path}.bak looks good" in line and f"cp {path}.bak {path}" in line
    assert "\n" not in line
    again.save(state_of(bad, title="Nyt"))  # set aside: its file stays for the operator
    assert path.read_bytes() == before and bad in again.set_aside


@pytest.mark.parametrize(
    "doc", [{"url": "http://a.example/", "file": "../aggregator.toml"}, {"file": "x.json"}]
)
def test_an_index_naming_something_else_is_refused(tmp_path: Path, doc: dict[str, Any]) -> None:
    store = Store(tmp_path)
    store.save(state_of(ODD_URLS[0]))
    index = json.loads(store.index_path.read_bytes())
    index["sources"]["2"] = doc
    store.index_path.write_text(json.dumps(index))
    with pytest.raises(StorageError) as refused:
        Store(tmp_path).load()
    assert f"{store.index_path}: the record sources/2 is not valid" in refused.value.message


def test_a_file_left_by_a_crash_before_its_index_entry_is_replaced(tmp_path: Path) -> None:
    url = ODD_URLS[0]
    left = tmp_path / "store" / file_name(url)
    left.parent.mkdir()
    left.write_text('{"source": {"1": {"url": "http://a.example/feed.atom", "fail')
    store = Store(tmp_path)
    assert store.load() == {}  # the index does not name it: it is nobody's
    store.save(state_of(url))
    assert list(Store(tmp_path).load()) == [url]


async def test_stored_entries_load_in_the_background_and_refreshes_wait_for_them(
    feed_server: FeedServer, tmp_path: Path, aiohttp_client: Any
) -> None:
    url = feed_server.set("/a.atom", feed("Østerby", [event("Loppemarked"), notice("Opslag")]))
    config = config_for(tmp_path, [Source(url, "Østerby")])
    first = await start_aggregator(aiohttp_client, config)
    await first.server.app[REFRESHER].refresh_all()
    await first.close()
    with_entries = Store(config.data_dir)
    assert len(next(iter(with_entries.load().values())).content.entries) == 2
    with_entries.close()

    client = await start_aggregator(aiohttp_client, config)
    refresher = client.server.app[REFRESHER]
    assert (await client.get("/healthz")).status == 200
    await refresher.ready()
    assert not refresher.loading
    merged = client.server.app[MERGED].merged()
    assert {i.title for i in merged.items} == {"Loppemarked", "Opslag"}
    [outcome] = await refresher.refresh_all()
    assert outcome.ok and outcome.words == "not modified (304)"  # the stored ETag was loaded


def test_stored_problems_keep_codes_and_old_sentences_still_load() -> None:
    from aggregator.reader.state import SourceState
    from aggregator.store.sources import state_from, state_record
    from klynge.http.problems import TIMEOUT
    from klynge.messages import LEGACY, Message

    failing = SourceState(
        "https://a.example/feed.atom",
        failures=2,
        last_error=Message(TIMEOUT, {"seconds": 30}),
        problems=(Message(LEGACY, {"text": "entry x (title): Give a title."}),),
    )
    record = state_record(failing)
    assert record["last_error"] == {
        "code": "http.timeout",
        "params": {"seconds": 30},
        "message": "timed out after 30 s",
    }
    again = state_from(json.loads(json.dumps(record)))
    assert again.last_error == failing.last_error and again.problems == failing.problems
    assert again.limited is None and again.content.flag is None
    # A document written before codes: English sentences and "" for nothing.
    old = {**record, "last_error": "timed out", "problems": ["entry x: bad"], "limited": ""}
    old |= {"flag": "This fetch would remove 3 of 4 upcoming entries; …"}
    loaded = state_from(old)
    assert loaded.last_error == Message(LEGACY, {"text": "timed out"})
    assert loaded.last_error.render("da") == "tiden løb ud"  # a sentence the catalogue knows
    assert [p.english() for p in loaded.problems] == ["entry x: bad"]
    assert loaded.limited is None and loaded.content.flag is not None
