"""The host's moderation, on disk: hidden entries and paused sources, each with a reason.

`DIR/store/moderation.json` holds two tables, `hidden` (entry id -> reason, since) and
`paused` (source URL -> reason, since), written by klynge.storage like every other file here
(atomic, fsynced, the previous version kept as `.bak`). Hidden entries stay in the sources'
files: moderation filters the merged view (aggregator.publish.merged), it deletes nothing, so
`unhide` brings an entry back as it was.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from aggregator.store.sources import STORE_DIR
from klynge.errors import ValidationError
from klynge.messages import Message, define
from klynge.model import clean_text
from klynge.storage import DurableStorage, invalid_record

FILE_NAME = "moderation.json"
MAX_REASON = 500
BAD_ID = define(
    "moderation.bad_id", "%(id)s is not an entry id (urn:uuid:… or the uuid of its page)"
)
NO_REASON = define("moderation.no_reason", "give a reason (--reason TEXT); /status shows it")
BAD_RECORD = define("moderation.bad_record", "it is not a reason with a time")


@dataclass(frozen=True)
class Hold:
    """Why and since when an entry is hidden or a source paused."""

    reason: str
    since: datetime


@dataclass(frozen=True)
class Moderation:
    """The hidden entries (by id) and the paused sources (by URL)."""

    hidden: Mapping[str, Hold] = field(default_factory=dict)
    paused: Mapping[str, Hold] = field(default_factory=dict)

    def hide(self, entry_id: str, hold: Hold) -> Moderation:
        """Return this moderation with an entry hidden."""
        return replace(self, hidden={**self.hidden, entry_id: hold})

    def unhide(self, entry_id: str) -> Moderation:
        """Return this moderation with an entry shown again."""
        return replace(self, hidden={k: v for k, v in self.hidden.items() if k != entry_id})

    def pause(self, url: str, hold: Hold) -> Moderation:
        """Return this moderation with a source paused."""
        return replace(self, paused={**self.paused, url: hold})

    def unpause(self, url: str) -> Moderation:
        """Return this moderation with a source polled again."""
        return replace(self, paused={k: v for k, v in self.paused.items() if k != url})


def entry_id(given: str) -> str:
    """Return the entry id for an id or page uuid as a host types it (`urn:uuid:X` or `X`)."""
    text = given.strip()
    bare = text.removeprefix("urn:uuid:")
    try:
        return f"urn:uuid:{uuid.UUID(bare)}"
    except ValueError:
        if text.startswith(("urn:", "tag:", "http:", "https:")) and len(text) <= 500:
            return text  # an atom:id of another form, as a generic Atom feed may use
        raise ValidationError({"entry": Message(BAD_ID, {"id": text[:100]})}) from None


def hold(reason: str, now: datetime) -> Hold:
    """Return a hold with a reason in plain text; refuse an empty one."""
    text = clean_text(reason)[:MAX_REASON]
    if not text:
        raise ValidationError({"reason": Message(NO_REASON)})
    return Hold(text, now)


class ModerationFile:
    """Reads and writes the moderation file of a data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / STORE_DIR / FILE_NAME
        self._storage = DurableStorage(self.path)

    def load(self) -> Moderation:
        """Return the stored moderation (none for a directory without the file)."""
        tables = self._storage.read() or {}
        try:
            return moderation_from(tables)
        except _Bad as e:
            raise invalid_record(self.path, e.record, Message(BAD_RECORD), moderation_from) from e

    def save(self, moderation: Moderation) -> None:
        """Write the moderation (one small file write)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._storage.write(
            {"hidden": _records(moderation.hidden), "paused": _records(moderation.paused)}
        )


class _Bad(ValueError):
    def __init__(self, record: str) -> None:
        super().__init__(record)
        self.record = record


def moderation_from(tables: Mapping[str, Any]) -> Moderation:
    """Read the moderation tables of a file; raise ValueError naming a bad record."""
    return Moderation(hidden=_holds(tables, "hidden"), paused=_holds(tables, "paused"))


def _holds(tables: Mapping[str, Any], name: str) -> dict[str, Hold]:
    holds = {}
    for key, doc in tables.get(name, {}).items():
        try:
            holds[str(key)] = Hold(str(doc["reason"]), datetime.fromisoformat(doc["since"]))
        except (KeyError, TypeError, ValueError) as e:
            raise _Bad(f"{name}/{key}") from e
    return holds


def _records(holds: Mapping[str, Hold]) -> dict[str, dict[str, str]]:
    return {k: {"reason": h.reason, "since": h.since.isoformat()} for k, h in holds.items()}
