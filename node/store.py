"""The node's store: events, notices, tombstones, users, tokens, sessions, places, ping log.

The only module of the node that touches TinyDB. All data lives in one file, DIR/node.json,
opened with klynge.storage (atomic, fsynced writes). The whole state is kept in memory and
read from there; each change is one whole-file write (TinyDB rewrites the file anyway, and
one write per change keeps a deletion and its tombstone together). Writes are serialised by
an asyncio.Lock and run in a worker thread so the event loop keeps serving GETs meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from tinydb import TinyDB

from klynge.clock import SYSTEM_CLOCK, Clock
from klynge.errors import KlyngeError
from klynge.model import Event, Item, Notice, Place, Tombstone
from klynge.storage import DurableStorage, invalid_record
from node.encoding import TableEncoder
from node.serialize import (
    doc_to_item,
    doc_to_tombstone,
    item_to_doc,
    short_id,
    tombstone_to_doc,
)

Tables = dict[str, dict[str, Any]]
Change = Callable[[Tables], None]
TABLE_OF = {"event": "events", "notice": "notices"}
PING_LOG_SIZE = 50
T = TypeVar("T")
TOMBSTONE_DAYS = 30


class EncodingStorage(DurableStorage):
    """DurableStorage (atomic, fsynced, `.bak`) whose encoding reuses unchanged documents.

    Measured with 2,000 events: json.dumps of the whole file 20–40 ms per write, cached
    encoding ≈ 2 ms (bench/node_bench.py). The file format is the same.
    """

    def __init__(self, path: str | Path) -> None:
        super().__init__(path)
        self.encoder = TableEncoder()

    def encode(self, payload: Tables) -> bytes:
        """Return the file's bytes, reusing the encoding of unchanged documents."""
        return self.encoder.encode(payload)


@dataclass(frozen=True)
class User:
    """A volunteer account; belongs to one association."""

    username: str
    association: str
    password_hash: str
    admin: bool = False
    created: str = ""


@dataclass(frozen=True)
class TokenRecord:
    """An API token as stored: only the sha256 of the secret is kept."""

    id: str
    username: str
    hash: str
    created: str
    revoked: str = ""


@dataclass(frozen=True)
class SessionRecord:
    """A logged-in browser session as stored: the sha256 of its id, whose it is, and since when.

    Written at login and deleted at logout (or when the user's password changes or the user
    is removed); never on an ordinary request. Its age is checked against `created`.
    """

    id: str
    username: str
    created: str


class Store:
    """The node's data, in memory, persisted to one durable TinyDB file."""

    def __init__(self, db: TinyDB, clock: Clock = SYSTEM_CLOCK) -> None:
        self._db = db
        self.clock = clock
        self._tables: Tables = dict(db.storage.read() or {})
        self._lock = asyncio.Lock()
        self.listeners: list[Callable[[], None]] = []
        self._items: dict[str, Item] = {}
        self._tombstones: dict[str, Tombstone] = {}
        self._load()

    @classmethod
    def open(cls, path: Path, clock: Clock = SYSTEM_CLOCK) -> Store:
        """Open (or create) the store file at `path`; refuse one with a record that is bad."""
        db = TinyDB(path, storage=EncodingStorage)
        db.tables()  # as klynge.storage.open_database: fail at start on a damaged file
        try:
            return cls(db, clock)
        except BadRecord as e:
            db.close()
            raise invalid_record(path, e.record, e.reason, check_tables) from e

    def close(self) -> None:
        """Close the underlying database."""
        self._db.close()

    def _load(self) -> None:
        self._items, self._tombstones = check_tables(self._tables)

    def _table(self, name: str) -> dict[str, Any]:
        # Read-only view: writers replace whole tables (copy on write), never mutate one in
        # place, so readers on the loop never see a table change size under them.
        return self._tables.get(name, {})

    def table(self, name: str) -> dict[str, Any]:
        """Return one table of the file, read-only (a feature's own records: node.carpool)."""
        return self._table(name)

    # --- reading (from memory) --------------------------------------------------------------

    def _snapshot(self) -> list[Item]:
        # list() copies in one step under the GIL; a Python loop over the live dict in the
        # publisher's worker thread fails when a change on the loop adds or drops an entry.
        return list(self._items.values())

    def items(self, kind: str | None = None) -> list[Item]:
        """Return all stored events and notices (or those of one kind)."""
        return [i for i in self._snapshot() if kind is None or i.kind == kind]

    def events(self) -> list[Event]:
        """Return all stored events."""
        return [i for i in self._snapshot() if isinstance(i, Event)]

    def notices(self) -> list[Notice]:
        """Return all stored notices."""
        return [i for i in self._snapshot() if isinstance(i, Notice)]

    def get(self, uuid: str, kind: str | None = None) -> Item | None:
        """Return the entry with this uuid (and kind, if given), or None."""
        item = self._items.get(short_id(uuid))
        return item if item is not None and (kind is None or item.kind == kind) else None

    def tombstones(self) -> list[Tombstone]:
        """Return the tombstones of deleted entries."""
        return list(self._tombstones.values())

    @property
    def changed(self) -> datetime:
        """Return when the published data last changed."""
        state = self._table("state").get("1", {})
        if "changed" in state:
            return datetime.fromisoformat(state["changed"])
        times = [i.updated for i in self._snapshot()]
        times += [t.deleted for t in self._tombstones.values()]
        return max(times, default=datetime(2000, 1, 1, tzinfo=UTC))

    # --- writing ----------------------------------------------------------------------------

    async def _commit(self, change: Change, apply: Callable[[], None] | None = None) -> None:
        async with self._lock:
            await asyncio.to_thread(self._write, change)
            self._finish(apply)

    async def commit(self, change: Change) -> None:
        """Apply one change on the loop, serialised with the others (admin commands)."""
        await self._commit(change)

    def commit_sync(self, change: Change, apply: Callable[[], None] | None = None) -> None:
        """Apply one change without an event loop (command-line use)."""
        self._write(change)
        self._finish(apply)

    def _write(self, change: Change) -> None:
        # Change a copy and keep it only once it is on disk: after a failed write memory still
        # matches the file. (Reading the file back instead gave {} when it could not be read,
        # and the next good write then wrote every other table away.) Changes replace whole
        # tables, so a shallow copy suffices.
        tables = dict(self._tables)
        change(tables)
        self._db.storage.write(tables)
        self._tables = tables

    def _finish(self, apply: Callable[[], None] | None) -> None:
        if apply is not None:
            apply()
            for listener in self.listeners:
                listener()

    def _doc_key(self, table: str, entry_id: str) -> str:
        for key, doc in self._table(table).items():
            if doc.get("id") == entry_id:
                return key
        return str(max((int(k) for k in self._table(table)), default=0) + 1)

    def _mark_changed(self, tables: Tables, when: datetime) -> None:
        _put(tables, "state", "1", {"changed": when.isoformat(timespec="seconds")})

    async def save_item(self, item: Item) -> None:
        """Store a new or changed event or notice (durable when this returns)."""
        table = TABLE_OF[item.kind]
        doc = item_to_doc(item)

        def change(tables: Tables) -> None:
            _put(tables, table, self._doc_key(table, item.id), doc)
            self._mark_changed(tables, self.clock.now())

        def apply() -> None:
            self._items[short_id(item.id)] = item

        await self._commit(change, apply)

    async def delete_item(self, item: Item, when: datetime | None = None) -> Tombstone:
        """Remove an entry and record its tombstone (deleted now, or `when`) in one write."""
        tomb = Tombstone(id=item.id, deleted=when or self.clock.now())
        table = TABLE_OF[item.kind]

        def change(tables: Tables) -> None:
            _drop(tables, table, [self._doc_key(table, item.id)])
            _put(tables, "tombstones", self._doc_key("tombstones", tomb.id), tombstone_to_doc(tomb))
            self._mark_changed(tables, tomb.deleted)

        def apply() -> None:
            self._items.pop(short_id(item.id), None)
            self._tombstones[tomb.id] = tomb

        await self._commit(change, apply)
        return tomb

    async def restore_item(self, item: Item) -> None:
        """Store a deleted entry again and drop its tombstone, in one durable write (undo)."""
        table = TABLE_OF[item.kind]
        doc = item_to_doc(item)

        def change(tables: Tables) -> None:
            _put(tables, table, self._doc_key(table, item.id), doc)
            tombs = tables.get("tombstones", {})
            tables["tombstones"] = {k: d for k, d in tombs.items() if d.get("id") != item.id}
            self._mark_changed(tables, item.updated)

        def apply() -> None:
            self._items[short_id(item.id)] = item
            self._tombstones.pop(item.id, None)

        await self._commit(change, apply)

    async def save_many(self, items: Iterable[Item]) -> None:
        """Store many entries in one write (seeding, benchmarks)."""
        items = list(items)

        def change(tables: Tables) -> None:
            for name in set(TABLE_OF.values()):
                table = dict(self._table(name))
                index = {doc["id"]: key for key, doc in table.items()}
                top = max((int(k) for k in table), default=0)
                for item in (i for i in items if TABLE_OF[i.kind] == name):
                    if item.id not in index:
                        top += 1
                        index[item.id] = str(top)
                    table[index[item.id]] = item_to_doc(item)
                tables[name] = table
            self._mark_changed(tables, self.clock.now())

        def apply() -> None:
            self._items.update((short_id(i.id), i) for i in items)

        await self._commit(change, apply)

    async def purge(self, now: datetime) -> int:
        """Drop expired notices and tombstones older than 30 days; return how many went."""
        cutoff = now - timedelta(days=TOMBSTONE_DAYS)
        notices = [n for n in self.notices() if n.expires is not None and n.expires <= now]
        tombs = [t for t in self._tombstones.values() if t.deleted < cutoff]
        if not notices and not tombs:
            return 0

        def change(tables: Tables) -> None:
            gone = {n.id for n in notices} | {t.id for t in tombs}
            for name in ("notices", "tombstones"):
                table = self._table(name)
                _drop(tables, name, [k for k, d in table.items() if d.get("id") in gone])
            self._mark_changed(tables, now)

        def apply() -> None:
            for notice in notices:
                self._items.pop(short_id(notice.id), None)
            for tomb in tombs:
                self._tombstones.pop(tomb.id, None)

        await self._commit(change, apply)
        return len(notices) + len(tombs)

    # --- users and tokens -------------------------------------------------------------------

    def user(self, username: str) -> User | None:
        """Return the user with this name, or None."""
        doc = self._table("users").get(username)
        return None if doc is None else User(**doc)

    def users(self) -> list[User]:
        """Return all users, sorted by name."""
        return sorted((User(**d) for d in self._table("users").values()), key=lambda u: u.username)

    def user_change(self, user: User) -> Change:
        """Return the change that stores a user (keyed by username)."""

        def change(tables: Tables) -> None:
            _put(tables, "users", user.username, asdict(user))

        return change

    async def save_user(self, user: User) -> None:
        """Store a new or changed user."""
        await self._commit(self.user_change(user))

    def tokens(self) -> list[TokenRecord]:
        """Return all token records."""
        return [TokenRecord(**d) for d in self._table("tokens").values()]

    def token(self, token_id: str) -> TokenRecord | None:
        """Return the token record with this id, or None."""
        doc = self._table("tokens").get(token_id)
        return None if doc is None else TokenRecord(**doc)

    def token_change(self, record: TokenRecord) -> Change:
        """Return the change that stores a token record (keyed by its id)."""

        def change(tables: Tables) -> None:
            _put(tables, "tokens", record.id, asdict(record))

        return change

    async def save_token(self, record: TokenRecord) -> None:
        """Store a new or revoked token record."""
        await self._commit(self.token_change(record))

    # --- sessions ---------------------------------------------------------------------------

    def session(self, session_id: str) -> SessionRecord | None:
        """Return the session record with this id (the hash of the cookie's id), or None."""
        doc = self._table("sessions").get(session_id)
        return None if doc is None else SessionRecord(**doc)

    def sessions(self) -> list[SessionRecord]:
        """Return all session records."""
        return [SessionRecord(**d) for d in self._table("sessions").values()]

    async def save_session(self, record: SessionRecord) -> None:
        """Store a new session (at login)."""

        def change(tables: Tables) -> None:
            _put(tables, "sessions", record.id, asdict(record))

        await self._commit(change)

    async def delete_session(self, session_id: str) -> None:
        """Remove one session (at logout)."""
        if session_id not in self._table("sessions"):
            return

        def change(tables: Tables) -> None:
            _drop(tables, "sessions", [session_id])

        await self._commit(change)

    def end_sessions_change(self, username: str) -> Change:
        """Return the change that removes every session of `username`."""

        def change(tables: Tables) -> None:
            table = tables.get("sessions", {})
            ended = [k for k, d in table.items() if d.get("username") == username]
            _drop(tables, "sessions", ended)

        return change

    def password_change(self, user: User) -> Change:
        """Return the change that stores a user's new password and ends the user's sessions."""
        return _both(self.user_change(user), self.end_sessions_change(user.username))

    def remove_user_change(self, username: str, when: datetime) -> Change:
        """Return the change that removes a user, ends its sessions and revokes its tokens.

        The tokens are revoked rather than left to fail, so a later user of the same name
        does not inherit them.
        """

        def change(tables: Tables) -> None:
            _drop(tables, "users", [username])
            for record in self.tokens():
                if record.username == username and not record.revoked:
                    doc = asdict(record) | {"revoked": when.isoformat()}
                    _put(tables, "tokens", record.id, doc)

        return _both(change, self.end_sessions_change(username))

    async def purge_sessions(self, cutoff: datetime) -> int:
        """Drop sessions created before `cutoff` (expired); return how many went."""
        table = self._table("sessions")
        old = [k for k, d in table.items() if datetime.fromisoformat(d["created"]) < cutoff]
        if old:

            def change(tables: Tables) -> None:
                _drop(tables, "sessions", old)

            await self._commit(change)
        return len(old)

    # --- places -----------------------------------------------------------------------------

    def places(self) -> list[Place]:
        """Return the saved places added by admins, sorted by name."""
        docs = self._table("places").values()
        return sorted((Place(**d) for d in docs), key=lambda p: p.name.casefold())

    async def save_place(self, place: Place) -> None:
        """Store a saved place (replacing one of the same name)."""

        def change(tables: Tables) -> None:
            _put(tables, "places", place.name.casefold(), asdict(place))

        await self._commit(change)

    async def delete_place(self, name: str) -> None:
        """Remove a saved place by name."""

        def change(tables: Tables) -> None:
            _drop(tables, "places", [name.casefold()])

        await self._commit(change)

    # --- ping log ---------------------------------------------------------------------------

    def ping_log(self) -> list[dict[str, Any]]:
        """Return the recorded ping failures and recoveries, newest first."""
        table = self._table("pings")
        return [table[key] for key in sorted(table, key=int, reverse=True)]

    async def record_ping(self, entry: dict[str, Any]) -> None:
        """Keep a ping failure (or the recovery after one) for the admin status page."""

        def change(tables: Tables) -> None:
            keys = sorted(self._table("pings"), key=int)
            _drop(tables, "pings", keys[: max(0, len(keys) - PING_LOG_SIZE + 1)])
            _put(tables, "pings", str(max((int(k) for k in keys), default=0) + 1), entry)

        await self._commit(change)


class BadRecord(Exception):
    """A stored record that does not validate: which one, and why."""

    def __init__(self, record: str, reason: str) -> None:
        super().__init__(f"{record}: {reason}")
        self.record, self.reason = record, reason


# Whatever a garbled field makes the conversions raise (a missing key, a wrong type, a date
# that is not one, a value the model refuses).
_GARBLED = (KeyError, TypeError, ValueError, AttributeError, KlyngeError)


def check_tables(tables: Tables) -> tuple[dict[str, Item], dict[str, Tombstone]]:
    """Validate every record of a store file; return its entries and tombstones.

    Users, tokens, places and the state are checked here too, so a garbled one stops the
    node at start with the record named instead of failing a request later.
    """
    items: dict[str, Item] = {}
    for table in TABLE_OF.values():
        for key, doc in _docs(tables, table):
            item = _checked(table, key, doc, doc_to_item)
            items[short_id(item.id)] = item
    tombs = [_checked("tombstones", k, d, doc_to_tombstone) for k, d in _docs(tables, "tombstones")]
    for name, build in _OTHER_TABLES.items():
        for key, doc in _docs(tables, name):
            _checked(name, key, doc, build)
    return items, {t.id: t for t in tombs}


def _docs(tables: Tables, name: str) -> Iterable[tuple[str, Any]]:
    return tables.get(name, {}).items()


def _checked(table: str, key: str, doc: Any, build: Callable[[Any], T]) -> T:
    try:
        if not isinstance(doc, dict):
            raise TypeError("it is not a JSON object")
        return build(doc)
    except _GARBLED as e:
        reason = getattr(e, "message", None) or (
            f"missing {e}" if isinstance(e, KeyError) else str(e)
        )
        named = (
            f" ({doc['id']})" if isinstance(doc, dict) and isinstance(doc.get("id"), str) else ""
        )
        raise BadRecord(f"{table}/{key}{named}", reason) from e


def _typed(cls: type[T]) -> Callable[[dict[str, Any]], T]:
    """Return a builder of `cls` from a document that checks each str/bool field's type."""

    def build(doc: dict[str, Any]) -> T:
        record = cls(**doc)
        for f in fields(cls):  # type: ignore[arg-type]
            want = bool if f.type == "bool" else str
            if type(getattr(record, f.name)) is not want:
                raise TypeError(f"{f.name} must be {'true or false' if want is bool else 'text'}")
        return record

    return build


def _session(doc: dict[str, Any]) -> SessionRecord:
    record = _typed(SessionRecord)(doc)
    datetime.fromisoformat(record.created)
    return record


def _state(doc: dict[str, Any]) -> None:
    if "changed" in doc:
        datetime.fromisoformat(doc["changed"])


_OTHER_TABLES: dict[str, Callable[[dict[str, Any]], object]] = {
    "users": _typed(User),
    "tokens": _typed(TokenRecord),
    "sessions": _session,
    "places": lambda doc: Place(**doc),
    "state": _state,
    "pings": dict,
}


def _put(tables: Tables, name: str, key: str, doc: dict[str, Any]) -> None:
    table = dict(tables.get(name, {}))
    table[key] = doc
    tables[name] = table


def _both(first: Change, second: Change) -> Change:
    def change(tables: Tables) -> None:
        first(tables)
        second(tables)

    return change


def _drop(tables: Tables, name: str, keys: Iterable[str]) -> None:
    table = dict(tables.get(name, {}))
    for key in keys:
        table.pop(key, None)
    tables[name] = table
