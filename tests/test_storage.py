"""Durable storage: atomic writes survive kill -9, damage is reported, the data dir is locked."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from klynge.errors import DataDirLocked, StorageError
from klynge.storage import (
    SCHEMA_VERSION,
    DataDirLock,
    backup_data_dir,
    backup_database,
    backup_path,
    open_database,
)

# Inserts documents forever; prints each number only after insert() has returned.
WRITER = """
import sys
from pathlib import Path
from klynge.storage import open_database
db = open_database(Path(sys.argv[1]))
table = db.table("events")
n = int(sys.argv[2])
while True:
    table.insert({"n": n, "title": "Fællesspisning i forsamlingshuset " * 3})
    print(n, flush=True)
    n += 1
"""

# Takes the lock, says so, then waits to be killed.
HOLDER = """
import sys, time
from pathlib import Path
from klynge.storage import DataDirLock
lock = DataDirLock(Path(sys.argv[1]))
lock.acquire()
print("locked", flush=True)
time.sleep(120)
"""

# Tries to take the lock and prints the outcome.
TAKER = """
import sys
from pathlib import Path
from klynge.errors import DataDirLocked
from klynge.storage import DataDirLock
try:
    with DataDirLock(Path(sys.argv[1])):
        print("acquired")
except DataDirLocked as e:
    print("LOCKED:", e.message)
"""


@contextmanager
def child(code: str, *args: object) -> Iterator[subprocess.Popen[str]]:
    """Run a Python child that is always killed at the end, and at most 60 s from now."""
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    watchdog = threading.Timer(60, proc.kill)
    watchdog.start()
    try:
        yield proc
    finally:
        watchdog.cancel()
        proc.kill()
        proc.wait(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()


def read_acknowledged(proc: subprocess.Popen[str], count: int) -> list[int]:
    """Read `count` acknowledged numbers from a writer child."""
    assert proc.stdout is not None
    acked = []
    for _ in range(count):
        line = proc.stdout.readline()
        assert line.endswith("\n"), "writer stopped early"
        acked.append(int(line))
    return acked


def stored_numbers(path: Path) -> set[int]:
    """Return the `n` of every event stored in the database at `path`."""
    db = open_database(path)
    try:
        return {doc["n"] for doc in db.table("events").all()}
    finally:
        db.close()


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "node.json"
    db = open_database(path)
    db.table("events").insert({"title": "Loppemarked", "place": "Skolegården"})
    db.close()
    again = open_database(path)
    assert again.table("events").all() == [{"title": "Loppemarked", "place": "Skolegården"}]
    assert json.loads(path.read_bytes())["_meta"] == {"1": {"schema": SCHEMA_VERSION}}


def test_missing_file_is_an_empty_database(tmp_path: Path) -> None:
    db = open_database(tmp_path / "absent.json")
    assert db.table("events").all() == []
    assert not (tmp_path / "absent.json").exists()


def test_backup_file_holds_the_previous_version(tmp_path: Path) -> None:
    path = tmp_path / "node.json"
    db = open_database(path)
    events = db.table("events")
    events.insert({"title": "first"})
    events.insert({"title": "second"})
    previous = json.loads(backup_path(path).read_bytes())
    assert [d["title"] for d in previous["events"].values()] == ["first"]
    assert len(events.all()) == 2
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []


def test_damaged_file_names_file_and_good_backup(tmp_path: Path) -> None:
    path = tmp_path / "node.json"
    db = open_database(path)
    db.table("events").insert({"title": "first"})
    db.table("events").insert({"title": "second"})
    path.write_bytes(path.read_bytes()[:25])  # truncated, as after a bad copy
    with pytest.raises(StorageError) as info:
        open_database(path)
    message = info.value.message
    assert str(path) in message and f"{path}.bak" in message
    assert "looks good" in message and f"cp {path}.bak {path}" in message


@pytest.mark.parametrize("content", [b"", b"[1, 2]", b'{"events": [1]}', b"\xff\xfe"])
def test_damaged_file_never_reads_as_empty(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "node.json"
    path.write_bytes(content)
    with pytest.raises(StorageError, match="damaged") as info:
        open_database(path)
    assert f"there is no backup {path}.bak" in info.value.message


def test_damaged_file_with_damaged_backup(tmp_path: Path) -> None:
    path = tmp_path / "node.json"
    path.write_bytes(b"{")
    backup_path(path).write_bytes(b"nonsense")
    with pytest.raises(StorageError, match="is damaged too"):
        open_database(path)


def test_missing_file_with_backup_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "node.json"
    backup_path(path).write_bytes(b'{"events": {}}')
    with pytest.raises(StorageError, match=r"missing but its backup .* exists"):
        open_database(path)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "node.json"
    path.write_text(json.dumps({"_meta": {"1": {"schema": SCHEMA_VERSION + 1}}, "events": {}}))
    with pytest.raises(StorageError, match="newer Klynge") as info:
        open_database(path)
    assert str(path) in info.value.message


def test_lock_names_the_holding_process(tmp_path: Path) -> None:
    with DataDirLock(tmp_path):
        result = subprocess.run(
            [sys.executable, "-c", TAKER, str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    assert result.stdout.strip() == (
        f"LOCKED: data directory {tmp_path} is in use by process {os.getpid()}; stop it first"
    )


def test_lock_is_released_on_exit(tmp_path: Path) -> None:
    with DataDirLock(tmp_path):
        pass
    with DataDirLock(tmp_path) as lock:
        assert lock.path.read_text().strip() == str(os.getpid())


def test_lock_of_killed_process_does_not_block(tmp_path: Path) -> None:
    with child(HOLDER, tmp_path) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(DataDirLocked, match=f"in use by process {holder.pid};"):
            DataDirLock(tmp_path).acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    assert (tmp_path / ".lock").read_text().strip() == str(holder.pid)  # stale file stays
    with DataDirLock(tmp_path) as lock:
        assert lock.path.read_text().strip() == str(os.getpid())


def write_until_killed(path: Path, start: int, count: int) -> list[int]:
    """Run a writer from `start`, SIGKILL it after `count` acknowledgements; return them all."""
    with child(WRITER, path, start) as writer:
        acked = read_acknowledged(writer, count)
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=10)
        assert writer.stdout is not None
        rest = writer.stdout.read()
    # Lines printed between our last read and the kill were acknowledged too.
    return acked + [int(line) for line in rest.splitlines(keepends=True) if line.endswith("\n")]


@pytest.mark.parametrize("round_", [1, 2, 3])
def test_every_acknowledged_write_survives_kill_9(tmp_path: Path, round_: int) -> None:
    path = tmp_path / "node.json"
    acked: list[int] = []
    # Kill, reopen and resume several times at different points, as a flaky power supply would.
    for count in (40 * round_, 90, 25, 60 + 30 * round_, 120):
        start = max(stored_numbers(path), default=-1) + 1
        acked += write_until_killed(path, start, count)
        stored = stored_numbers(path)  # raises StorageError if the kill left a damaged file
        assert set(acked) <= stored
        assert len(stored) <= len(acked) + 1  # at most the one write in flight at the kill


def test_readers_only_ever_see_complete_files(tmp_path: Path) -> None:
    path = tmp_path / "node.json"
    with child(WRITER, path, 0) as writer:
        read_acknowledged(writer, 20)
        for _ in range(1000):
            assert json.loads(path.read_bytes())["events"]


def test_backup_while_writing_holds_everything_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "node.json"
    with child(WRITER, path, 0) as writer:
        acked = read_acknowledged(writer, 50)
        for round_ in range(20):
            dest = tmp_path / f"backup-{round_}.json"
            backup_database(path, dest)
            assert set(acked) <= stored_numbers(dest)
            acked += read_acknowledged(writer, 10)


def test_backup_data_dir_copies_databases_and_config(tmp_path: Path) -> None:
    data, dest = tmp_path / "data", tmp_path / "backup"
    data.mkdir()
    db = open_database(data / "node.json")
    db.table("events").insert({"n": 1})
    db.table("events").insert({"n": 2})  # creates node.json.bak
    (data / "config.toml").write_text('name = "Østerby"\n', encoding="utf-8")
    with DataDirLock(data):
        copied = backup_data_dir(data, dest)
    assert [p.name for p in copied] == ["config.toml", "node.json"]
    assert sorted(p.name for p in dest.iterdir()) == ["config.toml", "node.json"]
    assert stored_numbers(dest / "node.json") == {1, 2}
    assert (dest / "config.toml").read_text(encoding="utf-8") == 'name = "Østerby"\n'


def test_backup_refuses_a_damaged_database(tmp_path: Path) -> None:
    (tmp_path / "node.json").write_bytes(b'{"events": ')
    with pytest.raises(StorageError, match="damaged"):
        backup_database(tmp_path / "node.json", tmp_path / "copy.json")
    assert not (tmp_path / "copy.json").exists()
