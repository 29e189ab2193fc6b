"""Moving an old data directory (every source in one `aggregator.json`) to a file per source.

Run by `Store.load` at every start; it does something only once. Crash-safe and re-runnable:
every record of the old file is checked before anything is written (a bad one stops the
service with the same one-line error as before, and nothing changes); the source files are
written, then the index, which is the commit point: until it exists, a start migrates again
from the untouched old file. Only then is the old file (and its `.bak`) renamed to
`….migrated`, kept for a rollback; a start that finds the index and an old file finishes that.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aggregator.reader.state import SourceState
from aggregator.store.sources import GARBLED, refusal, state_from, state_record
from klynge.storage import DurableStorage, Tables, backup_path, rename_durably

if TYPE_CHECKING:
    from aggregator.store.sources import Store

LEGACY_NAME = "aggregator.json"  # the single file of Klynge before the store per source
LEGACY_TABLE = "sources"
MIGRATED_SUFFIX = ".migrated"
log = logging.getLogger("klynge.aggregator")


def migrate(store: Store) -> dict[str, SourceState] | None:
    """Move the old single file into per-source files once; return the states it held."""
    legacy = store.data_dir / LEGACY_NAME
    if store.index_path.exists() or backup_path(store.index_path).exists():
        _retire(legacy)  # none, or a crash came between the index and the rename: finish
        return None
    tables = DurableStorage(legacy).read()  # None when missing; damaged: says so, with .bak
    if tables is None:
        return None
    states = legacy_states(legacy, tables)
    store.save_new(state_record(state) for state in states.values())
    _retire(legacy)
    log.info("moved %s (%d sources) into %s", legacy, len(states), store.directory)
    return states


def legacy_states(path: Path, tables: Tables) -> dict[str, SourceState]:
    """Return every source state of an old file, or raise the one-line error for a bad record."""
    states = {}
    for key, doc in tables.get(LEGACY_TABLE, {}).items():
        try:
            state = state_from(unpacked(doc))
        except GARBLED as e:
            url = doc.get("url") if isinstance(doc, dict) else None
            record = f"{LEGACY_TABLE}/{key}" + (f" ({url})" if isinstance(url, str) else "")
            raise refusal(path, record, e, check_legacy_tables) from e
        states[state.url] = state
    return states


def unpacked(doc: Any) -> dict[str, Any]:
    """Return an old source document with its entries as a list (they were a JSON string)."""
    out: dict[str, Any] = dict(doc)
    if isinstance(out.get("entries"), str):
        out["entries"] = json.loads(out["entries"])
    return out


def check_legacy_tables(tables: Tables) -> None:
    """Validate every source record of an old file the way migrating does."""
    for doc in tables.get(LEGACY_TABLE, {}).values():
        state_from(unpacked(doc))


def _retire(legacy: Path) -> None:
    for path in (backup_path(legacy), legacy):
        if path.exists():
            rename_durably(path, path.with_name(path.name + MIGRATED_SUFFIX))
