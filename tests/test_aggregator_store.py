"""The aggregator's store file and start-up: per-document encoding, loading in the background."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aggregator_support as support
import pytest
from aggregator_support import FeedServer, config_for, event, feed, notice, start_aggregator

from aggregator.config import Source
from aggregator.keys import MERGED, REFRESHER
from aggregator.store.sources import DocumentStorage, Store, parse_tables
from klynge.errors import StorageError
from klynge.storage import DurableStorage

feed_server = support.feed_server  # a fixture


def test_document_encoding_gives_the_bytes_json_dumps_gives(tmp_path: Path) -> None:
    tables: dict[str, dict[str, Any]] = {
        "sources": {
            "1": {"url": "https://a.example/feed", "entries": '[{"title":"Æble \\"x\\""}]'},
            "2": {"text": 'æ"\\\n\u2028\x00', "n": [1, 2.5, None, True, {"k": []}]},
        },
        "_default": {},
        "_meta": {"1": {"schema": 1}},
    }
    ours = DocumentStorage(tmp_path / "a.json").encode(tables)
    assert ours == DurableStorage(tmp_path / "b.json").encode(tables)
    assert json.loads(ours) == tables
    assert parse_tables(ours.decode()) == tables
    spaced = json.dumps(tables, indent=2)
    assert parse_tables(spaced) == tables


@pytest.mark.parametrize(
    "text", ['{"sources":{"1":{}}', '{"sources":[]}', '{"a":{"1":{}}}x', "", "[1]", '{"a":{1:{}}}']
)
def test_a_damaged_file_is_refused_in_the_same_words(tmp_path: Path, text: str) -> None:
    path = tmp_path / "aggregator.json"
    path.write_text(text)
    with pytest.raises(StorageError) as ours:
        DocumentStorage(path).read()
    with pytest.raises(StorageError) as theirs:
        DurableStorage(path).read()
    assert ours.value.message == theirs.value.message


def test_a_missing_file_reads_as_empty(tmp_path: Path) -> None:
    assert DocumentStorage(tmp_path / "aggregator.json").read() is None


async def test_stored_entries_load_in_the_background_and_refreshes_wait_for_them(
    feed_server: FeedServer, tmp_path: Path, aiohttp_client: Any
) -> None:
    url = feed_server.set("/a.atom", feed("Østerby", [event("Loppemarked"), notice("Opslag")]))
    config = config_for(tmp_path, [Source(url, "Østerby")])
    first = await start_aggregator(aiohttp_client, config)
    await first.server.app[REFRESHER].refresh_all()
    await first.close()
    with_entries = Store(config.database_path)
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
