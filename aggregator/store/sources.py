"""The aggregator's store: one TinyDB file per source, and an index that names the files.

`DIR/store/index.json` maps each source URL to its file, `DIR/store/<hash of the URL>.json`
holds that source's state, entries and tombstones as one document. TinyDB rewrites a whole
file on every write (design.md), so a changed source costs a write of its own data only,
whatever the other sources hold (bench/storage_bench.py). Every file is written by
`klynge.storage` (temp file, fsync, rename, the previous version kept as `.bak`). A new
source's file is written before the index names it: a file the index does not name is left
over from a crash and is replaced. Sources no longer configured keep their files (a source
added again gets its entries back) but are neither loaded nor written.

A damaged source file sets that source aside (an error line naming the file and its backup;
the file is left as it is, the source starts empty and is not written until the next start),
so the other sources still load; a damaged index stops the service, as a damaged database
always did. The only module that imports TinyDB, which is not thread-safe: the caller runs
every method of a Store on one thread (the refresher's store thread).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterable, MutableMapping
from datetime import datetime
from pathlib import Path
from typing import Any

from tinydb import TinyDB
from tinydb.table import Document, Table

from aggregator.reader.carpools import carpool_contacts
from aggregator.reader.merge import Content
from aggregator.reader.state import SourceState
from aggregator.store.records import (
    item_from,
    item_record,
    source_from,
    source_record,
    tombstone_from,
    tombstone_record,
)
from klynge.errors import KlyngeError, StorageError, ValidationError
from klynge.messages import Message, optional
from klynge.model import Item, share_repeated
from klynge.storage import DurableStorage, Tables, backup_path, invalid_record

STORE_DIR = "store"  # inside the data directory
INDEX_NAME = "index.json"
INDEX_TABLE = "sources"  # in the index: one document {url, file} per source
TABLE = "source"  # in a source's file: its one document, id 1
DOC_ID = 1
FILE_NAME = re.compile(r"[0-9a-f]{32}\.json")  # what the index may name: nothing else is opened
log = logging.getLogger("klynge.aggregator")


def file_name(url: str) -> str:
    """Return the name of a source's file: a hash, so any URL gives a safe, fixed-length name."""
    return hashlib.blake2b(url.encode(), digest_size=16).hexdigest() + ".json"


def state_record(state: SourceState) -> dict[str, Any]:
    """Return one source's state and content as a TinyDB document body."""
    content = state.content
    return {
        **state.scalars(),
        "origin": source_record(content.origin),
        "entries": [_entry(content, i, item) for i, item in content.entries.items()],
        "tombstones": [tombstone_record(t) for t in content.tombstones.values()],
        "held": sorted(content.held),
        "flag": content.flag.to_json() if content.flag is not None else None,
    }


def _entry(content: Content, entry_id: str, item: Item) -> dict[str, Any]:
    record = item_record(item)
    if item.source == content.origin:
        record.pop("source", None)  # usually: stored once per source, not per entry
    return {**record, "first_seen": content.first_seen[entry_id].isoformat()}


def state_from(doc: dict[str, Any]) -> SourceState:
    """Return the SourceState of a document made by `state_record` (the one way states load)."""
    origin = source_from(doc.get("origin"))
    entries, first_seen = {}, {}
    for raw in doc.get("entries", []):
        raw = dict(raw)
        seen = datetime.fromisoformat(raw.pop("first_seen"))
        try:
            item = item_from(raw)
        except ValidationError as e:
            # Stored by an older, looser version: the source's next fetch brings it back if
            # it is valid now; meanwhile it is not served.
            log.error("entry %s left out of %s in the store: %s", raw.get("id"), doc["url"], e)
            continue
        if item.source is None and origin is not None:
            # The item was just built here and is not shared yet: set its provenance in place
            # (dataclasses.replace would validate it again, ~0.3 ms an entry).
            object.__setattr__(item, "source", origin)
        entries[item.id], first_seen[item.id] = item, seen
    tombs = [tombstone_from(t) for t in doc.get("tombstones", [])]
    share_repeated(entries.values())  # the village's venue: one Place, not one per entry
    content = Content(
        origin=origin,
        entries=entries,
        first_seen=first_seen,
        tombstones={t.id: t for t in tombs},
        held=frozenset(doc.get("held", [])),
        flag=optional(doc.get("flag")),
    ).warm()
    return SourceState(
        url=doc["url"],
        etag=doc.get("etag", ""),
        last_modified=doc.get("last_modified", ""),
        body_hash=doc.get("body_hash", ""),
        last_success=_time(doc.get("last_success")),
        last_attempt=_time(doc.get("last_attempt")),
        last_error=optional(doc.get("last_error")),
        failures=int(doc.get("failures", 0)),
        next_check=_time(doc.get("next_check")),
        problems=tuple(Message.from_json(p) for p in doc.get("problems", [])),
        limited=optional(doc.get("limited")),
        content=content,
    )


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


# Whatever a garbled field makes the conversions raise (a missing key, a wrong type, a date
# that is not one).
GARBLED = (KeyError, TypeError, ValueError, AttributeError, KlyngeError)


def refusal(
    path: Path, record: str, error: Exception, check: Callable[[Tables], object]
) -> StorageError:
    """Return the one-line StorageError for a stored record that does not load."""
    reason: Message | str = error.detail if isinstance(error, KlyngeError) else str(error)
    if isinstance(error, KeyError):
        reason = f"missing {error}"
    return invalid_record(path, record, reason, check)


def check_source_tables(tables: Tables) -> None:
    """Validate a source file's document the way loading does."""
    for doc in tables.get(TABLE, {}).values():
        state_from(dict(doc))


def check_index_tables(tables: Tables) -> None:
    """Validate an index file's documents the way loading does."""
    for doc in tables.get(INDEX_TABLE, {}).values():
        _index_entry(dict(doc))


def _index_entry(doc: dict[str, Any]) -> tuple[str, str]:
    url, name = doc["url"], doc["file"]
    if not isinstance(url, str) or not isinstance(name, str) or not FILE_NAME.fullmatch(name):
        raise ValueError(f"file {name!r} is not a source file name")
    return url, name


def _replace_with(record: dict[str, Any]) -> Callable[[MutableMapping[str, Any]], None]:
    def replace(doc: MutableMapping[str, Any]) -> None:
        doc.clear()
        doc.update(record)

    return replace


class Store:
    """Per-source state and entries in `DIR/store/`, one TinyDB file per source."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.directory = data_dir / STORE_DIR
        self.index_path = self.directory / INDEX_NAME
        self.writes = 0  # file writes since opening, for tests and the benchmark
        self.set_aside: dict[str, StorageError] = {}  # sources whose file did not load
        self._files: dict[str, str] = {}  # source URL -> file name, as in the index
        self._index: TinyDB | None = None

    def load(self, urls: Iterable[str] | None = None) -> dict[str, SourceState]:
        """Return the stored states of `urls` (default: all), migrating an old data directory."""
        from aggregator.store.migrate import migrate

        migrated = migrate(self)
        self._read_index()
        wanted = list(self._files) if urls is None else [u for u in urls if u in self._files]
        if migrated is not None:
            return {url: migrated[url] for url in wanted if url in migrated}
        states = {}
        for url in wanted:
            state = self._load_source(url)
            if state is not None:
                states[url] = state
        return states

    def path_of(self, url: str) -> Path | None:
        """Return the file holding a stored source, None for a source never stored."""
        name = self._files.get(url)
        return None if name is None else self.directory / name

    def save(self, state: SourceState) -> None:
        """Write one source's state and entries to its own file (one file write)."""
        if state.url in self.set_aside:
            return  # its damaged file stays as it is, for the operator to restore
        record = state_record(state)
        name = self._files.get(state.url)
        if name is not None:
            table = _database(self.directory / name).table(TABLE)
            had = carpool_contacts(table.get(doc_id=DOC_ID))
            if table.update(_replace_with(record), doc_ids=[DOC_ID]):
                self.writes += 1
                if had - carpool_contacts(record):
                    # Again, so the `.bak` (the previous version) keeps no removed contact
                    # details either (issue 14: gone from the store file when the event ends).
                    table.update(_replace_with(record), doc_ids=[DOC_ID])
                    self.writes += 1
                return
        self.save_new([record])

    def save_new(self, records: Iterable[dict[str, Any]]) -> None:
        """Write the files of sources not yet indexed, then index them in one write."""
        self.directory.mkdir(exist_ok=True)
        names = {}
        for record in records:
            name = self._files.get(record["url"]) or file_name(record["url"])
            path = self.directory / name
            if record["url"] not in self._files:
                _discard(path)  # the index does not name it: left over from a crash
            _database(path).table(TABLE).insert(Document(record, doc_id=DOC_ID))
            self.writes += 1
            names[record["url"]] = name
        fresh = [{"url": u, "file": n} for u, n in names.items() if u not in self._files]
        if fresh:
            self._index_table().insert_multiple(fresh)
            self.writes += 1
        self._files.update(names)

    def close(self) -> None:
        """Close the index (source files are opened for each read and write)."""
        if self._index is not None:
            self._index.close()

    def _index_table(self) -> Table:
        if self._index is None:
            self._index = _database(self.index_path)
        return self._index.table(INDEX_TABLE)

    def _read_index(self) -> None:
        table = self._index_table()
        for doc in table.all():
            try:
                url, name = _index_entry(dict(doc))
            except GARBLED as e:
                record = f"{INDEX_TABLE}/{doc.doc_id}"
                raise refusal(self.index_path, record, e, check_index_tables) from e
            self._files[url] = name

    def _load_source(self, url: str) -> SourceState | None:
        path = self.directory / self._files[url]
        try:
            return _read_source(path, url)
        except StorageError as e:
            # One source's damaged file must not take the others down: it is set aside.
            log.error("%s", e.message)
            self.set_aside[url] = e
            return None


def _read_source(path: Path, url: str) -> SourceState | None:
    """Return the state in a source's file (None if it has none) or raise StorageError."""
    doc = _database(path).table(TABLE).get(doc_id=DOC_ID)
    if doc is None:
        return None  # written by nobody yet: the source starts as new
    record = f"{TABLE}/{DOC_ID} ({url})"
    try:
        state = state_from(dict(doc))
        if state.url != url:
            raise ValueError(f"it holds {state.url}")
    except GARBLED as e:
        raise refusal(path, record, e, check_source_tables) from e
    return state


def _database(path: Path) -> TinyDB:
    return TinyDB(path, storage=DurableStorage)


def _discard(path: Path) -> None:
    for stale in (path, backup_path(path)):
        stale.unlink(missing_ok=True)
