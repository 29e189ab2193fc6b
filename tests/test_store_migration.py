"""An aggregator data directory written before the store per source (every source in one
`aggregator.json`, made by tests/data/aggregator-store-v1/make_v1_store.py with the old code)
is moved to a file per source at the first start: every entry and state survives, a second
start changes nothing, and a start after a crash at either step finishes the move."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from aggregator_support import refresher_of, start_aggregator

from aggregator.config import load_config
from aggregator.keys import MERGED
from aggregator.reader.state import SourceState
from aggregator.store.migrate import legacy_states, unpacked
from aggregator.store.sources import Store, state_record

V1 = Path(__file__).parent / "data" / "aggregator-store-v1" / "data"
OLD_FILE = V1 / "aggregator.json"
CONFIGURED = [
    "http://osterby.test/feed.atom",
    "http://vesterby.test/feed.atom",
    "http://nord.test/feed.atom",
    "http://skolen.test/kalender.ics",
]
REMOVED = "http://gammel.test/feed.atom"  # stored, no longer in aggregator.toml
# Kept as they were, compared as stored JSON (the state's words go through `state_from`).
RAW_KEYS = ["url", "etag", "last_modified", "body_hash", "last_success", "last_attempt",
            "failures", "next_check", "origin", "entries", "tombstones", "held"]  # fmt: skip
# The messages (last_error, problems, limited, flag) are stored as codes now: an old sentence
# is moved as a `legacy.text` message, compared through state_record below.


@pytest.fixture
def v1_dir(tmp_path: Path) -> Path:
    """A copy of the old data directory."""
    return Path(shutil.copytree(V1, tmp_path / "agg"))


def old_documents() -> dict[str, dict[str, Any]]:
    """Return the old file's source documents by URL, their entries unpacked."""
    tables = json.loads((V1 / "aggregator.json").read_bytes())
    return {doc["url"]: unpacked(doc) for doc in tables["sources"].values()}


def old_states() -> dict[str, SourceState]:
    """Return the old file's states as the one loading function reads them."""
    path = V1 / "aggregator.json"
    return legacy_states(path, json.loads(path.read_bytes()))


def files(directory: Path) -> dict[str, tuple[int, bytes]]:
    """Return every file under `directory` (but the lock) with its mtime and bytes."""
    found = (p for p in directory.rglob("*") if p.is_file() and p.name != ".lock")
    return {str(p.relative_to(directory)): (p.stat().st_mtime_ns, p.read_bytes()) for p in found}


def assert_all_survived(directory: Path) -> None:
    """Check every stored source's file against the old file, field by field."""
    store = Store(directory)
    states = store.load()
    assert sorted(states) == sorted([*CONFIGURED, REMOVED])
    olds, old = old_documents(), old_states()
    for url, state in states.items():
        path = store.path_of(url)
        assert path is not None
        doc = json.loads(path.read_bytes())["source"]["1"]
        assert {k: doc[k] for k in RAW_KEYS} == {k: olds[url][k] for k in RAW_KEYS}, url
        assert state_record(state) == state_record(old[url]), url
    store.close()


async def test_the_first_start_moves_every_source_and_a_second_changes_nothing(
    v1_dir: Path, aiohttp_client: Any
) -> None:
    config = load_config(v1_dir, env={})
    client = await start_aggregator(aiohttp_client, config)
    refresher = refresher_of(client)
    await refresher.ready()
    assert sorted(refresher.states) == sorted(CONFIGURED)  # the removed one is not loaded
    osterby, vesterby = refresher.states[CONFIGURED[0]], refresher.states[CONFIGURED[1]]
    assert osterby.etag == 'W/"osterby-17"' and osterby.last_modified.startswith("Sat, 28 Nov")
    assert vesterby.failures == 3 and "503" in json.dumps(vesterby.scalars())
    titles = {i.title for i in client.app[MERGED].merged().items}
    assert {"Strikkeklub", "Julemarked", "Samkørsel til julemarkedet", "Fodbold for de små",
            "Loppemarked i Nørby", "Skolebestyrelsesmøde"} <= titles  # fmt: skip
    relayed = refresher.states[CONFIGURED[2]].content
    assert {i.source.title for i in relayed.entries.values() if i.source} == {"Nørby"}
    assert relayed.held and relayed.flag is not None and relayed.flag.english().startswith("2 of 3")
    events = await (await client.get("/api/events", params={"from": "2026-12-01"})).json()
    assert sum(e["title"] == "Strikkeklub" for e in events["events"]) >= 4  # weekly, expanded
    await client.close()

    names = sorted(p.name for p in v1_dir.iterdir())
    assert names == [
        "aggregator.json.bak.migrated",
        "aggregator.json.migrated",
        "aggregator.toml",
        "store",
        "templates",  # the compiled templates (klynge.web.WebState.keep_compiled)
    ]
    assert (v1_dir / "aggregator.json.migrated").read_bytes() == OLD_FILE.read_bytes()
    assert_all_survived(v1_dir)

    before = files(v1_dir)
    again = await start_aggregator(aiohttp_client, config)
    await refresher_of(again).ready()
    assert {u: state_record(s) for u, s in refresher_of(again).states.items()} == {
        u: state_record(s) for u, s in refresher.states.items()
    }
    await again.close()
    assert files(v1_dir) == before


def crash_before_the_index(directory: Path) -> None:
    """Leave the directory as a crash after the source files, before the index, leaves it."""
    for name in ("aggregator.json", "aggregator.json.bak"):
        (directory / f"{name}.migrated").rename(directory / name)
    store = directory / "store"
    (store / "index.json").unlink()
    (store / "index.json.bak").unlink(missing_ok=True)
    # One file from the crashed attempt is stale: it must be replaced, not trusted.
    victim = next(p for p in store.iterdir() if p.suffix == ".json")
    victim.write_text('{"source": {"1": {"url": "http://osterby.test/feed.atom"')


def crash_before_the_rename(directory: Path) -> None:
    """Leave the directory as a crash after the index, before the old file's rename, leaves it."""
    for name in ("aggregator.json", "aggregator.json.bak"):
        (directory / f"{name}.migrated").rename(directory / name)


@pytest.mark.parametrize("crash", [crash_before_the_index, crash_before_the_rename])
def test_a_start_after_a_crash_finishes_the_move(v1_dir: Path, crash: Any) -> None:
    Store(v1_dir).load()
    crash(v1_dir)
    assert sorted(Store(v1_dir).load(CONFIGURED)) == sorted(CONFIGURED)
    assert not (v1_dir / "aggregator.json").exists()
    assert (v1_dir / "aggregator.json.migrated").read_bytes() == OLD_FILE.read_bytes()
    assert_all_survived(v1_dir)
    before = files(v1_dir)
    Store(v1_dir).load(CONFIGURED)
    assert files(v1_dir) == before
