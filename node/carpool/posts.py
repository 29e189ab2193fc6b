"""Carpool posts in the node's store: open, change, withdraw, remove, and expire them.

A post is a Notice (category `carpool`, `related` its event, `carpool` its details) in the
node's one store file, so the feed, backups and durability are the ones every entry has. Its
secret lives beside it in the `carpool_keys` table as a sha256 hash only; the link that holds
the secret is shown once. When the event has ended, the post is deleted with a tombstone (no
personal data) and its key record goes too; a second write follows, so the store's `.bak`
(the previous version, klynge.storage) holds no contact details either.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from klynge.carpool import Carpool
from klynge.model import Event, Notice, new_id
from node.serialize import short_id
from node.store import Store, Tables

KEYS = "carpool_keys"  # short id -> {"hash": sha256 of the secret, "event": the event's id}
NO_END_HOURS = 4  # an event without an end is taken to be over this long after it starts


def ends_at(event: Event) -> datetime:
    """Return when an event is over for carpooling (its end; start + 4 h when it has none)."""
    end = event.series_end()
    return end if event.end is not None or event.all_day else end + timedelta(hours=NO_END_HOURS)


def is_carpool(item: object) -> bool:
    """Tell whether an entry is a carpool post."""
    return isinstance(item, Notice) and item.carpool is not None


def open_posts(store: Store, event_id: str) -> list[Notice]:
    """Return an event's carpool posts, offers first, oldest first."""
    found = [n for n in store.notices() if n.carpool is not None and n.related == event_id]
    return sorted(found, key=lambda n: (n.carpool.direction != "offer", n.created or n.updated))  # type: ignore[union-attr]


def title_of(carpool: Carpool, lang: str) -> str:
    """Return the post's one-line title ("Tilbyder 3 pladser fra Østerby Kirke")."""
    seats = carpool.seats
    if lang == "en":
        verb = "Offers" if carpool.direction == "offer" else "Looking for"
        noun = "seat" if seats == 1 else "seats"
        return f"{verb} {seats} {noun} from {carpool.origin}"
    verb = "Tilbyder" if carpool.direction == "offer" else "Søger"
    noun = "plads" if seats == 1 else "pladser"
    return f"{verb} {seats} {noun} fra {carpool.origin}"


def secret_hash(secret: str) -> str:
    """Return the stored form of a post's secret (sha256; the secret has 192 random bits)."""
    return hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()


def owns(store: Store, notice: Notice, secret: str) -> bool:
    """Tell, in constant time, whether `secret` is the post's secret."""
    record = store.table(KEYS).get(short_id(notice.id))
    stored = record.get("hash") if isinstance(record, dict) else None
    if not isinstance(stored, str) or len(secret) > 100:
        return False
    return hmac.compare_digest(secret_hash(secret), stored)


async def create(
    store: Store, event: Event, carpool: Carpool, now: datetime, lang: str
) -> tuple[Notice, str]:
    """Store a new post for `event`; return it and its secret (to be shown once)."""
    secret = secrets.token_urlsafe(24)
    notice = Notice(
        id=new_id(),
        title=title_of(carpool, lang),
        updated=now,
        created=now,
        category="carpool",
        organizer=event.organizer,  # the association answers for posts on its events
        expires=ends_at(event),
        related=event.id,
        carpool=carpool,
    )
    await store.save_item(notice)
    record = {"hash": secret_hash(secret), "event": event.id}
    await store.commit(_put_key(short_id(notice.id), record))
    return notice, secret


async def change(
    store: Store, notice: Notice, carpool: Carpool, now: datetime, lang: str
) -> Notice:
    """Store the post's new details (a new edit time and sequence, so copies update)."""
    changed = replace(
        notice,
        title=title_of(carpool, lang),
        carpool=carpool,
        updated=_later(notice, now),
        sequence=notice.sequence + 1,
    )
    await store.save_item(changed)
    return changed


async def withdraw(store: Store, notice: Notice, now: datetime) -> None:
    """Delete a post (a tombstone in the feed), its key, and the contact details in `.bak`."""
    await store.delete_item(notice, now)
    await store.commit(_drop_keys({short_id(notice.id)}))


async def expire(store: Store, now: datetime) -> int:
    """Delete the posts whose event has ended or is gone; return how many went."""
    events = {e.id: e for e in store.events()}
    gone, moved = [], []
    for notice in store.notices():
        if notice.carpool is None:
            continue
        event = events.get(notice.related)
        if event is None or ends_at(event) <= now:
            gone.append(notice)
        elif notice.expires != ends_at(event):  # the event was moved: the post follows it
            moved.append(replace(notice, expires=ends_at(event), updated=_later(notice, now)))
    for notice in gone:
        await store.delete_item(notice, now)
    for notice in moved:
        await store.save_item(notice)
    orphans = {k for k in store.table(KEYS) if store.get(k, "notice") is None}
    if gone or orphans:
        # Also when nothing else changed: this write replaces a `.bak` that held contacts.
        await store.commit(_drop_keys(orphans))
    return len(gone)


def _later(notice: Notice, now: datetime) -> datetime:
    # A new edit time even within the same second, so every copy takes the change.
    return max(now, notice.updated + timedelta(seconds=1))


def _put_key(key: str, record: dict[str, Any]) -> Any:
    def put(tables: Tables) -> None:
        tables[KEYS] = {**tables.get(KEYS, {}), key: record}

    return put


def _drop_keys(keys: set[str]) -> Any:
    def drop(tables: Tables) -> None:
        tables[KEYS] = {k: v for k, v in tables.get(KEYS, {}).items() if k not in keys}

    return drop
