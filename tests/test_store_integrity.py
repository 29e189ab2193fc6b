"""A data file that is not ours, or holds a record that does not validate, stops `klynge … serve`
with one line naming the file, the record and the backup; the files stay as they were. Real
files in tmp_path, real service processes."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from clock_support import utc_now
from node_support import KLYNGE, make_node
from service_support import run_serve, service, wait_healthy

from aggregator.reader.merge import Content
from aggregator.reader.state import SourceState
from aggregator.store.sources import Store as AggregatorStore
from klynge.model import Event, new_id
from node.store import Store as NodeStore

pytestmark = pytest.mark.slow
Garble = Callable[[dict[str, Any]], None]


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """Assert the service stopped with exactly one `klynge: error:` line; return it."""
    assert done.returncode != 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("klynge: error:")]
    assert len(errors) == 1, done.stderr
    return errors[0]


def rewrite(path: Path, garble: Garble) -> None:
    tables = json.loads(path.read_bytes())
    garble(tables)
    path.write_text(json.dumps(tables, ensure_ascii=False), "utf-8")


def files(path: Path) -> tuple[bytes, bytes]:
    return path.read_bytes(), path.with_name(path.name + ".bak").read_bytes()


async def village(tmp_path: Path) -> Path:
    """A node whose node.json holds users, tokens and an event, and a good .bak."""
    node = make_node(tmp_path)
    db = node.path / "node.json"
    store = NodeStore.open(db)
    moment = utc_now()
    event = Event(id=new_id(), title="Loppemarked", updated=moment,
                  start=moment + timedelta(days=3), timezone="Europe/Copenhagen")  # fmt: skip
    await store.save_item(event)
    await store.save_item(replace(event, title="Stort loppemarked"))  # .bak has the event too
    store.close()
    return db


def first_event(tables: dict[str, Any]) -> dict[str, Any]:
    return next(iter(tables["events"].values()))


NODE_CASES: list[tuple[str, Garble, list[str]]] = [
    ("an empty object", lambda t: t.clear(), ["is not a Klynge database", "no schema record"]),
    ("no schema record", lambda t: t.pop("_meta"), ["is not a Klynge database"]),
    ("a start that is no date", lambda t: first_event(t).update(start="den 3. december"),
     ["the record events/1 (urn:uuid:", "den 3. december"]),
    ("an event without a title", lambda t: first_event(t).pop("title"),
     ["the record events/1 (urn:uuid:", "title"]),
    ("an event that is a string", lambda t: t["events"].update({"1": "Loppemarked"}),
     ["the record events/1 ", "not a JSON object"]),
    ("an admin flag that is text", lambda t: t["users"]["anna"].update(admin="yes"),
     ["the record users/anna ", "admin"]),
    ("a user with an unknown field", lambda t: t["users"]["bo"].update(colour="red"),
     ["the record users/bo ", "colour"]),
    ("a place with a bad latitude", lambda t: t.setdefault("places", {}).update(
        {"mark": {"name": "Mark", "lat": 123.0, "lon": 1.0}}), ["the record places/mark "]),
]  # fmt: skip


@pytest.mark.parametrize(("garble", "words"), [c[1:] for c in NODE_CASES],
                         ids=[c[0] for c in NODE_CASES])  # fmt: skip
async def test_node_refuses_to_start_on_a_bad_file(
    tmp_path: Path, garble: Garble, words: list[str]
) -> None:
    db = await village(tmp_path)
    rewrite(db, garble)
    before = files(db)
    line = one_error_line(run_serve("node", db.parent))
    assert str(db) in line
    for word in words:
        assert word in line
    assert f"its backup {db}.bak looks good" in line and f"cp {db}.bak {db}" in line
    assert files(db) == before


async def test_node_says_when_the_backup_is_bad_too(tmp_path: Path) -> None:
    db = await village(tmp_path)
    for path in (db, db.with_name("node.json.bak")):
        rewrite(path, lambda t: first_event(t).update(updated="gestern"))
    before = files(db)
    line = one_error_line(run_serve("node", db.parent))
    assert "gestern" in line and "is damaged too" in line and "cp " not in line
    assert files(db) == before


def init_cluster(tmp_path: Path) -> Path:
    """An aggregator data directory with aggregator.toml only."""
    directory = tmp_path / "klynge"
    subprocess.run(
        [KLYNGE, "aggregator", "init", str(directory), "--name", "Klyngen",
         "--url", "http://klynge.test"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return directory


OSTERBY, VESTERBY = "http://osterby.test/feed.atom", "http://vesterby.test/feed.atom"


def stored(url: str, title: str) -> SourceState:
    """A source's state with one upcoming event."""
    moment = utc_now()
    item = Event(id=new_id(), title=title, updated=moment, start=moment + timedelta(days=2),
                 timezone="Europe/Copenhagen")  # fmt: skip
    return SourceState(url, content=Content(entries={item.id: item}, first_seen={item.id: moment}))


def cluster(tmp_path: Path) -> AggregatorStore:
    """An aggregator with two sources stored, each file with a good .bak, and the index."""
    directory = init_cluster(tmp_path)
    with (directory / "aggregator.toml").open("a") as toml:
        toml.write(f'[[sources]]\nurl = "{OSTERBY}"\n\n[[sources]]\nurl = "{VESTERBY}"\n')
    store = AggregatorStore(directory)
    for url, title in ((OSTERBY, "Loppemarked"), (VESTERBY, "Fodbold")):
        store.save(stored(url, title))
        store.save(replace(stored(url, title), failures=1))
    store.save(stored("http://third.test/feed.atom", "Tredje"))  # the index gets a .bak
    store.close()
    return store


def source(tables: dict[str, Any]) -> dict[str, Any]:
    return next(iter(tables["sources"].values()))


def refuses(directory: Path, db: Path, words: list[str]) -> None:
    """Assert `serve DIRECTORY` stops with one line naming `db`, its good backup and `words`."""
    before = files(db)
    # The stored states load in the background (healthz answers meanwhile): the service stops
    # as soon as loading finds the bad record, without writing.
    line = one_error_line(run_serve("aggregator", directory))
    assert str(db) in line
    for word in words:
        assert word in line
    assert f"its backup {db}.bak looks good" in line and f"cp {db}.bak {db}" in line
    assert files(db) == before


INDEX_CASES: list[tuple[str, Garble, list[str]]] = [
    ("an empty object", lambda t: t.clear(), ["is not a Klynge database"]),
    ("a source without its file", lambda t: source(t).pop("file"),
     ["the record sources/1 ", "file"]),
    ("a file outside the store", lambda t: source(t).update(file="../aggregator.toml"),
     ["the record sources/1 ", "../aggregator.toml"]),
]  # fmt: skip


@pytest.mark.parametrize(("garble", "words"), [c[1:] for c in INDEX_CASES],
                         ids=[c[0] for c in INDEX_CASES])  # fmt: skip
def test_aggregator_refuses_to_start_on_a_bad_index(
    tmp_path: Path, garble: Garble, words: list[str]
) -> None:
    store = cluster(tmp_path)
    rewrite(store.index_path, garble)
    refuses(store.data_dir, store.index_path, words)


V1 = Path(__file__).parent / "data" / "aggregator-store-v1" / "data"
OLD_CASES: list[tuple[str, Garble, list[str]]] = [
    ("an empty object", lambda t: t.clear(), ["is not a Klynge database"]),
    ("failures that are words", lambda t: source(t).update(failures="mange"),
     ["the record sources/1 (http://osterby.test/feed.atom)", "mange"]),
    ("entries that are not JSON", lambda t: source(t).update(entries="[{"),
     ["the record sources/1 (http://osterby.test/feed.atom)"]),
    ("a source without its URL", lambda t: source(t).pop("url"), ["the record sources/1 "]),
]  # fmt: skip


@pytest.mark.parametrize(("garble", "words"), [c[1:] for c in OLD_CASES],
                         ids=[c[0] for c in OLD_CASES])  # fmt: skip
def test_aggregator_refuses_to_migrate_a_bad_old_file(
    tmp_path: Path, garble: Garble, words: list[str]
) -> None:
    directory = Path(shutil.copytree(V1, tmp_path / "klynge"))
    db = directory / "aggregator.json"
    rewrite(db, garble)
    refuses(directory, db, words)
    assert not (directory / "store").exists()  # nothing was moved


async def test_a_damaged_source_file_leaves_the_others_serving(tmp_path: Path) -> None:
    store = cluster(tmp_path)
    bad = store.path_of(VESTERBY)
    assert bad is not None
    rewrite(bad, lambda t: t["source"]["1"].update(failures="mange"))
    before = files(bad)
    with service("aggregator", store.data_dir) as running:
        await wait_healthy(running)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{running.base}/api/events") as response,
        ):
            titles = {e["title"] for e in (await response.json())["events"]}
        assert running.proc.poll() is None
        running.proc.terminate()
        assert running.proc.stderr is not None
        log = running.proc.stderr.read().decode()
    assert titles == {"Loppemarked"}
    [line] = [x for x in log.splitlines() if "mange" in x]
    assert f"{bad}: the record source/1 ({VESTERBY}) is not valid" in line
    assert f"its backup {bad}.bak looks good" in line and f"cp {bad}.bak {bad}" in line
    assert files(bad) == before  # set aside: not written over, whatever the polls did


async def test_brand_new_data_directories_start(tmp_path: Path) -> None:
    node = tmp_path / "osterby"
    subprocess.run(
        [KLYNGE, "node", "init", str(node), "--name", "Østerby", "--url", "http://osterby.test"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    agg = init_cluster(tmp_path)
    with service("node", node) as a, service("aggregator", agg) as b:
        await wait_healthy(a)
        await wait_healthy(b)
