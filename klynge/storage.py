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
import stat
import tempfile
import tomllib
from collections.abc import Callable, Collection
from pathlib import Path
from types import TracebackType
from typing import Any

from tinydb import TinyDB
from tinydb.storages import Storage

from klynge.errors import DataDirLocked, StorageError
from klynge.messages import Message, define

SCHEMA_VERSION = 1
META_TABLE = "_meta"
LOCK_NAME = ".lock"

Tables = dict[str, dict[str, Any]]

# What can be wrong with a data file, and what to do (Danish in klynge/locale).
CANNOT_READ = define("storage.cannot_read", "cannot read %(path)s: %(reason)s")
CANNOT_WRITE = define("storage.cannot_write", "cannot write %(path)s: %(reason)s")
LONE_BACKUP = define(
    "storage.lone_backup",
    "%(path)s is missing but its backup %(bak)s exists; "
    "restore it with: cp %(bak)s %(path)s  (or remove %(bak)s to start empty)",
)
NEWER = define(
    "storage.newer",
    "%(path)s was written by a newer Klynge (schema %(schema)s; this version reads up "
    "to %(max)s). Upgrade Klynge, or restore a backup made by this version.",
)
DAMAGED = define("storage.damaged", "%(path)s is damaged (not a complete Klynge JSON database)")
NOT_OURS = define(
    "storage.not_ours",
    "%(path)s is not a Klynge database (it has no schema record: Klynge did not write it)",
)
INVALID_RECORD = define(
    "storage.invalid_record", "%(path)s: the record %(record)s is not valid (%(reason)s)"
)
WITH_ADVICE = define("storage.with_advice", "%(problem)s; %(advice)s")
NO_BACKUP = define(
    "storage.no_backup", "there is no backup %(bak)s. Restore it from your own backup copy."
)
BACKUP_UNREADABLE = define(
    "storage.backup_unreadable", "its backup %(bak)s cannot be read (%(reason)s)."
)
BACKUP_DAMAGED = define(
    "storage.backup_damaged",
    "its backup %(bak)s is damaged too. Restore from your own backup copy.",
)
BACKUP_GOOD = define(
    "storage.backup_good",
    "its backup %(bak)s looks good (the version before the last write). "
    "Stop the service and restore it with: cp %(bak)s %(path)s",
)
CANNOT_BACK_UP = define("storage.cannot_back_up", "cannot back up %(path)s: %(reason)s")
CANNOT_WRITE_BACKUP = define(
    "storage.cannot_write_backup", "cannot write backup %(path)s: %(reason)s"
)
NOT_TOML = define("storage.not_toml", "cannot back up %(path)s: it is not valid TOML (%(detail)s)")
NO_DATA_DIR = define("storage.no_data_dir", "data directory %(path)s does not exist")
SAME_DIR = define("storage.same_dir", "the backup directory must differ from the data directory")
IN_USE_BY = define(
    "storage.in_use_by", "data directory %(path)s is in use by process %(pid)s; stop it first"
)
IN_USE = define(
    "storage.in_use", "data directory %(path)s is in use by another process; stop it first"
)


TOO_OPEN = define(
    "storage.too_open",
    "%(path)s holds secrets but other users could read it (mode %(mode)s); it is now 0600",
)
STILL_OPEN = define(
    "storage.still_open",
    "%(path)s holds secrets but other users could read it (mode %(mode)s), and it could not "
    "be made 0600: %(error)s",
)
PRIVATE = 0o600  # files holding secrets: the owner reads and writes, nobody else


def write_private(path: Path, text: str) -> None:
    """Create a new file holding secrets, readable by its owner only from the first byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


def keep_private(path: Path) -> Message | None:
    """Make a file holding secrets 0600 if others may read or write it; return the warning."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return None
    if not mode & 0o077:
        return None
    where = {"path": str(path), "mode": f"{mode:04o}"}
    try:
        os.chmod(path, PRIVATE)
    except OSError as e:  # not the owner, or a read-only mount: say so, and go on
        return Message(STILL_OPEN, {**where, "error": e.strerror or str(e)})
    return Message(TOO_OPEN, where)


def _os_error(code: str, path: Path, e: OSError) -> StorageError:
    return StorageError(Message(code, {"path": str(path), "reason": str(e.strerror or e)}))


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
            raise _os_error(CANNOT_READ, self.path, e) from e
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
            raise _os_error(CANNOT_WRITE, self.path, e) from e

    def _refuse_lone_backup(self) -> None:
        bak = backup_path(self.path)
        if bak.exists():
            # A lone backup means the main file was removed by hand: refuse to start empty.
            raise StorageError(Message(LONE_BACKUP, {"path": str(self.path), "bak": str(bak)}))

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
        found = str(schema)[:40]
        raise StorageError(
            Message(NEWER, {"path": str(path), "schema": found, "max": SCHEMA_VERSION})
        )


def _damaged_message(path: Path) -> Message:
    return _with_backup_advice(path, Message(DAMAGED, {"path": str(path)}))


def _not_ours_message(path: Path) -> Message:
    return _with_backup_advice(path, Message(NOT_OURS, {"path": str(path)}))


def _with_backup_advice(
    path: Path, head: Message, check: Callable[[Tables], object] | None = None
) -> Message:
    """Return `head` followed by what the backup holds and how to restore it."""
    return Message(WITH_ADVICE, {"problem": head, "advice": _backup_advice(path, check)})


def _backup_advice(path: Path, check: Callable[[Tables], object] | None) -> Message:
    bak = backup_path(path)
    try:
        bak_raw = bak.read_bytes()
    except FileNotFoundError:
        return Message(NO_BACKUP, {"bak": str(bak)})
    except OSError as e:
        return Message(BACKUP_UNREADABLE, {"bak": str(bak), "reason": str(e.strerror or e)})
    if not _backup_good(bak_raw, check):
        return Message(BACKUP_DAMAGED, {"bak": str(bak)})
    return Message(BACKUP_GOOD, {"bak": str(bak), "path": str(path)})


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
    path: Path, record: str, reason: Message | str, check: Callable[[Tables], object]
) -> StorageError:
    """Return the error for a stored record that does not validate: file, record, backup.

    `check` validates a whole file's tables the way loading does; it is run on the backup to
    say whether restoring it helps.
    """
    if isinstance(reason, str):
        reason = " ".join(reason.split())  # one line on stderr
    head = Message(INVALID_RECORD, {"path": str(path), "record": record, "reason": reason})
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
        raise _os_error(CANNOT_BACK_UP, db_path, e) from e
    tables = _parse(raw)
    if tables is None:
        raise StorageError(_damaged_message(db_path))
    if not _has_schema(tables):
        raise StorageError(_not_ours_message(db_path))
    try:
        _atomic_copy(raw, dest_path)
    except OSError as e:
        raise _os_error(CANNOT_WRITE_BACKUP, dest_path, e) from e


def _backup_file(path: Path, dest_path: Path) -> None:
    try:
        raw = path.read_bytes()  # written by a rename too: the version opened is complete
    except OSError as e:
        raise _os_error(CANNOT_BACK_UP, path, e) from e
    try:
        _atomic_copy(raw, dest_path)
    except OSError as e:
        raise _os_error(CANNOT_WRITE_BACKUP, dest_path, e) from e


def _backup_config(path: Path, dest_path: Path) -> None:
    raw = path.read_bytes()
    try:
        tomllib.loads(raw.decode())
    except (ValueError, UnicodeDecodeError) as e:
        raise StorageError(Message(NOT_TOML, {"path": str(path), "detail": str(e)})) from e
    _atomic_copy(raw, dest_path)


def backup_data_dir(data_dir: Path, dest_dir: Path, files: Collection[str] = ()) -> list[Path]:
    """Back up every database (*.json) and config (*.toml) file of a data directory.

    `files` names a service's own other files (a cache, a list kept as plain JSON, a secret):
    each is copied as it is, readable by its owner only like every copy.
    """
    if not data_dir.is_dir():
        raise StorageError(Message(NO_DATA_DIR, {"path": str(data_dir)}))
    if dest_dir.resolve() == data_dir.resolve():
        raise StorageError(Message(SAME_DIR))
    dest_dir.mkdir(parents=True, exist_ok=True)
    copied = []
    for path in sorted(data_dir.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue  # the lock, temp files
        if path.name in files:
            _backup_file(path, dest_dir / path.name)
        elif path.suffix == ".json":
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
            raise StorageError(Message(NO_DATA_DIR, {"path": str(self.data_dir)}))
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            # flock dies with its process, so a lock file left by `kill -9` never blocks.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            where = {"path": str(self.data_dir), "pid": holder}
            raise DataDirLocked(Message(IN_USE_BY if holder.isdigit() else IN_USE, where)) from None
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
