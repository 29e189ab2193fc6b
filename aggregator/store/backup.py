"""`klynge aggregator backup`: a consistent copy of a data directory, also while it is served.

The settings (and an old `aggregator.json` not yet migrated) are copied as for the node, with
the ugeseddel's subscribers and their signing secret, and the host's moderation. Then
the index is copied first, and every source file that copy names after it: a source's file is
written before the index names it and is never removed while named, so each one is there,
and each is read once, as the complete version that a rename put in place. The copy is what
the service held at the moment the index was read, except that a source written meanwhile is
in it as it was written (each source's file stands alone: no record spans two files); a
source added after that moment waits for the next backup.
"""

from __future__ import annotations

import json
from pathlib import Path

from aggregator.mail.subscribers import FILE_NAME as SUBSCRIBERS
from aggregator.mail.subscribers import SECRET_NAME
from aggregator.store.moderation import FILE_NAME as MODERATION
from aggregator.store.sources import INDEX_NAME, INDEX_TABLE, STORE_DIR, check_index_tables
from klynge.errors import StorageError
from klynge.storage import backup_data_dir, backup_database


def backup_aggregator(data_dir: Path, dest_dir: Path) -> list[Path]:
    """Copy the settings, the subscribers, the index and every source file it names."""
    copied = backup_data_dir(data_dir, dest_dir, files=(SUBSCRIBERS, SECRET_NAME))
    store_copy = dest_dir / STORE_DIR
    moderation = data_dir / STORE_DIR / MODERATION
    if moderation.exists():  # the host's hidden entries and paused sources
        store_copy.mkdir(exist_ok=True)
        backup_database(moderation, store_copy / MODERATION)
        copied.append(store_copy / MODERATION)
    index = data_dir / STORE_DIR / INDEX_NAME
    if not index.exists():
        return copied  # nothing stored yet, or not migrated yet (the old file was copied)
    store_copy.mkdir(exist_ok=True)
    backup_database(index, store_copy / INDEX_NAME)
    for name in _named_files(store_copy / INDEX_NAME):
        backup_database(index.parent / name, store_copy / name)
        copied.append(store_copy / name)
    return [*copied, store_copy / INDEX_NAME]


def _named_files(index_copy: Path) -> list[str]:
    """Return the source files an index names, refusing an index that names anything else."""
    tables = json.loads(index_copy.read_bytes())  # backup_database checked it parses
    try:
        check_index_tables(tables)
    except (KeyError, TypeError, ValueError) as e:
        raise StorageError(f"cannot back up {index_copy.name}: {e}") from e
    return sorted({doc["file"] for doc in tables.get(INDEX_TABLE, {}).values()})
