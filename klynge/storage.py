"""Durable TinyDB storage: atomic writes, a kept backup, a schema version, a data-dir lock.

Every acknowledged write is on disk before `write` returns: the new state goes to a temp file
in the same directory, is fsynced, the previous file is kept as `NAME.bak`, the temp file is
renamed over the main file (rename is atomic on POSIX) and the directory is fsynced so the
rename itself survives power loss. At every instant the main file holds a complete version.

TinyDB is not thread-safe and rewrites the whole file on every write (about 1 ms per 100
documents, design.md): callers serialise writes (one process per data directory, enforced by
`DataDirLock`; within it, one task or thread writes at a time).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import tomllib
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from tinydb import TinyDB
from tinydb.storages import Storage

from klynge.errors import DataDirLocked, StorageError

SCHEMA_VERSION = 1
META_TABLE = "_meta"
LOCK_NAME = ".lock"

Tables = dict[str, dict[str, Any]]


def backup_path(path: Path) -> Path:
    """Return the path of the backup kept next to a database file."""
    return path.with_name(path.name + ".bak")


class DurableStorage(Storage):
    """A TinyDB JSON storage whose writes are atomic, fsynced and keep the previous file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def read(self) -> Tables | None:
        """Return the stored tables, None for a missing file, or raise StorageError."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            self._refuse_lone_backup()
            return None
        except OSError as e:
            raise StorageError(f"cannot read {self.path}: {e.strerror}") from e
        tables = _parse(raw)
        if tables is None:
            raise StorageError(_damaged_message(self.path))
        if not _has_schema(tables):
            raise StorageError(_not_ours_message(self.path))
        _check_schema(self.path, tables)
        return tables

    def write(self, data: Tables) -> None:
        """Write all tables atomically and durably, keeping the previous file as `.bak`."""
        self.write_bytes(self.encode({**data, META_TABLE: {"1": {"schema": SCHEMA_VERSION}}}))

    def encode(self, payload: Tables) -> bytes:
        """Return the file's bytes for `payload`; subclasses may cache unchanged documents."""
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()

    def write_bytes(self, raw: bytes) -> None:
        """Replace the file with `raw` atomically (temp, fsync, rename, fsync dir), keeping .bak."""
        try:
            tmp = _write_temp(self.path, raw)
            try:
                self._keep_backup()
                os.replace(tmp, self.path)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            _fsync_dir(self.path.parent)
        except OSError as e:
            raise StorageError(f"cannot write {self.path}: {e.strerror or e}") from e

    def _refuse_lone_backup(self) -> None:
        bak = backup_path(self.path)
        if bak.exists():
            # A lone backup means the main file was removed by hand: refuse to start empty.
            raise StorageError(
                f"{self.path} is missing but its backup {bak} exists; "
                f"restore it with: cp {bak} {self.path}  (or remove {bak} to start empty)"
            )

    def _keep_backup(self) -> None:
        # A hard link makes `.bak` the current version without a moment where the main file
        # is absent; the link goes in under a temp name and is renamed, so `.bak` is always
        # complete too.
        if not self.path.exists():
            return
        bak = backup_path(self.path)
        tmp_bak = bak.with_name(f".{bak.name}.{os.getpid()}.tmp")
        tmp_bak.unlink(missing_ok=True)
        try:
            os.link(self.path, tmp_bak)
        except OSError:
            # File systems without hard links (FAT on a USB stick): copy and fsync instead.
            tmp_bak = _write_temp(bak, self.path.read_bytes())
        os.replace(tmp_bak, bak)


def open_database(path: Path) -> TinyDB:
    """Open a TinyDB file with durable storage, checking it is readable right away."""
    db = TinyDB(path, storage=DurableStorage)
    db.tables()  # Fail at start-up, not at the first request, on a damaged or newer file.
    return db


def _parse(raw: bytes) -> Tables | None:
    """Return the tables in `raw`, or None when it is not a TinyDB document."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or not all(isinstance(t, dict) for t in data.values()):
        return None
    return data


def _has_schema(tables: Tables) -> bool:
    # Every file DurableStorage writes has the schema record; one without it (`{}` typed by
    # hand, another program's JSON) would otherwise open as an empty database.
    meta = tables.get(META_TABLE, {}).get("1")
    return isinstance(meta, dict) and "schema" in meta


def _check_schema(path: Path, tables: Tables) -> None:
    meta = tables.get(META_TABLE, {}).get("1", {})
    schema = meta.get("schema", 1) if isinstance(meta, dict) else 1
    if not isinstance(schema, int) or schema > SCHEMA_VERSION:
        raise StorageError(
            f"{path} was written by a newer Klynge (schema {schema}; this version reads up "
            f"to {SCHEMA_VERSION}). Upgrade Klynge, or restore a backup made by this version."
        )


def _damaged_message(path: Path) -> str:
    return _with_backup_advice(path, f"{path} is damaged (not a complete Klynge JSON database)")


def _not_ours_message(path: Path) -> str:
    head = f"{path} is not a Klynge database (it has no schema record: Klynge did not write it)"
    return _with_backup_advice(path, head)


def _with_backup_advice(
    path: Path, head: str, check: Callable[[Tables], object] | None = None
) -> str:
    """Return `head` followed by what the backup holds and how to restore it."""
    bak = backup_path(path)
    try:
        bak_raw = bak.read_bytes()
    except FileNotFoundError:
        return f"{head}; there is no backup {bak}. Restore it from your own backup copy."
    except OSError as e:
        return f"{head}; its backup {bak} cannot be read ({e.strerror})."
    if not _backup_good(bak_raw, check):
        return f"{head}; its backup {bak} is damaged too. Restore from your own backup copy."
    return (
        f"{head}; its backup {bak} looks good (the version before the last write). "
        f"Stop the service and restore it with: cp {bak} {path}"
    )


def _backup_good(raw: bytes, check: Callable[[Tables], object] | None) -> bool:
    tables = _parse(raw)
    if tables is None or not _has_schema(tables):
        return False
    if check is None:
        return True
    try:
        check(tables)
    except Exception:  # whatever made the main file's record fail
        return False
    return True


def invalid_record(
    path: Path, record: str, reason: str, check: Callable[[Tables], object]
) -> StorageError:
    """Return the error for a stored record that does not validate: file, record, backup.

    `check` validates a whole file's tables the way loading does; it is run on the backup to
    say whether restoring it helps.
    """
    reason = " ".join(reason.split())  # one line on stderr
    head = f"{path}: the record {record} is not valid ({reason})"
    return StorageError(_with_backup_advice(path, head, check))


def _write_temp(target: Path, raw: bytes) -> Path:
    """Write `raw` to a fsynced temp file next to `target` and return its path."""
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)


def _fsync_dir(directory: Path) -> None:
    # fsync on the directory makes the rename itself durable (ext4 and others need it).
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rename_durably(source: Path, dest: Path) -> None:
    """Rename a file atomically, the rename itself made to survive power loss."""
    os.replace(source, dest)
    _fsync_dir(dest.parent)


def _atomic_copy(raw: bytes, dest: Path) -> None:
    tmp = _write_temp(dest, raw)
    try:
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(dest.parent)


def backup_database(db_path: Path, dest_path: Path) -> None:
    """Copy a database file consistently, even while its service is writing to it."""
    try:
        # One read of one opened file: writers only ever rename complete files into place,
        # so whichever version we opened is complete.
        raw = db_path.read_bytes()
    except OSError as e:
        raise StorageError(f"cannot back up {db_path}: {e.strerror}") from e
    tables = _parse(raw)
    if tables is None:
        raise StorageError(_damaged_message(db_path))
    if not _has_schema(tables):
        raise StorageError(_not_ours_message(db_path))
    try:
        _atomic_copy(raw, dest_path)
    except OSError as e:
        raise StorageError(f"cannot write backup {dest_path}: {e.strerror}") from e


def _backup_config(path: Path, dest_path: Path) -> None:
    raw = path.read_bytes()
    try:
        tomllib.loads(raw.decode())
    except (ValueError, UnicodeDecodeError) as e:
        raise StorageError(f"cannot back up {path}: it is not valid TOML ({e})") from e
    _atomic_copy(raw, dest_path)


def backup_data_dir(data_dir: Path, dest_dir: Path) -> list[Path]:
    """Back up every database (*.json) and config (*.toml) file of a data directory."""
    if not data_dir.is_dir():
        raise StorageError(f"data directory {data_dir} does not exist")
    if dest_dir.resolve() == data_dir.resolve():
        raise StorageError("the backup directory must differ from the data directory")
    dest_dir.mkdir(parents=True, exist_ok=True)
    copied = []
    for path in sorted(data_dir.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue  # the lock, temp files
        if path.suffix == ".json":
            backup_database(path, dest_dir / path.name)
        elif path.suffix == ".toml":
            _backup_config(path, dest_dir / path.name)
        else:
            continue  # `.bak` files and anything else
        copied.append(dest_dir / path.name)
    return copied


class DataDirLock:
    """Hold a data directory for one process, via fcntl.flock on `DIR/.lock`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise DataDirLocked naming the process that holds it."""
        if not self.data_dir.is_dir():
            raise StorageError(f"data directory {self.data_dir} does not exist")
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            # flock dies with its process, so a lock file left by `kill -9` never blocks.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            who = f"process {holder}" if holder.isdigit() else "another process"
            raise DataDirLocked(
                f"data directory {self.data_dir} is in use by {who}; stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Release the lock; the lock file stays (removing it would race a new holder)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> DataDirLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
