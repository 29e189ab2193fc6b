"""The subscribers of the ugeseddel: one small JSON file, written atomically, and a secret.

`DIR/subscribers.json` holds each address with its state (pending until the confirmation
link is followed, then active), its language, and which week was last sent to whom, so a
restart in the middle of a sending run goes on where it stopped instead of sending twice.
`DIR/mail-secret` (0600) signs the links in the e-mails (tokens.py).
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from klynge.errors import StorageError
from klynge.messages import Message, define
from klynge.storage import keep_private, rename_durably, write_private

FILE_NAME = "subscribers.json"
SECRET_NAME = "mail-secret"
MAX_SUBSCRIBERS = 10_000  # a cluster of villages; bounds the file and one sending run
PENDING_DAYS = 7  # an unconfirmed sign-up is forgotten after a week
DAMAGED = define(
    "mail.store_damaged",
    "%(path)s is damaged (%(reason)s); restore it from a backup or remove it to start "
    "with no subscribers",
)
CANNOT_WRITE = define("mail.store_cannot_write", "cannot write %(path)s: %(reason)s")
FULL = define("mail.store_full", "the ugeseddel has as many subscribers as it can take")


@dataclass
class Subscriber:
    """One address: pending or active, the language it signed up in, and since when."""

    address: str
    state: str  # "pending" or "active"
    lang: str
    since: datetime


@dataclass
class Subscribers:
    """Everything in the file: the addresses, and who got which week."""

    people: dict[str, Subscriber] = field(default_factory=dict)
    sent_week: str = ""  # the week of the current (or last) sending run, e.g. 2026-W49
    sent_to: set[str] = field(default_factory=set)

    def active(self) -> list[Subscriber]:
        """Return the confirmed subscribers, sorted by address."""
        return sorted((s for s in self.people.values() if s.state == "active"),
                      key=lambda s: s.address)  # fmt: skip


class SubscriberStore:
    """Reads and writes the subscribers file (one writer: the running aggregator)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FILE_NAME
        self.secret_path = data_dir / SECRET_NAME

    def secret(self) -> bytes:
        """Return the signing secret, creating it (0600) on first use."""
        if not self.secret_path.exists():
            write_private(self.secret_path, secrets.token_hex(32))
        keep_private(self.secret_path)
        return self.secret_path.read_text(encoding="utf-8").strip().encode()

    def load(self) -> Subscribers:
        """Read the file (none yet is an empty list); raise StorageError if it is damaged."""
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            return _from_json(raw)
        except FileNotFoundError:
            return Subscribers()
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            reason = getattr(e, "strerror", None) or str(e) or type(e).__name__
            raise StorageError(Message(DAMAGED, {"path": str(self.path), "reason": reason})) from e

    def save(self, data: Subscribers, now: datetime) -> None:
        """Write the file atomically, forgetting sign-ups never confirmed."""
        old = now - timedelta(days=PENDING_DAYS)
        data.people = {
            k: s for k, s in data.people.items() if s.state == "active" or s.since >= old
        }
        text = json.dumps(_to_json(data), ensure_ascii=False, indent=1, sort_keys=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            rename_durably(tmp, self.path)
        except OSError as e:
            where = {"path": str(self.path), "reason": e.strerror or str(e)}
            raise StorageError(Message(CANNOT_WRITE, where)) from e


def _to_json(data: Subscribers) -> dict[str, Any]:
    people = {
        s.address: {"state": s.state, "lang": s.lang, "since": s.since.isoformat()}
        for s in data.people.values()
    }
    return {"version": 1, "subscribers": people,
            "sent": {"week": data.sent_week, "to": sorted(data.sent_to)}}  # fmt: skip


def _from_json(raw: dict[str, Any]) -> Subscribers:
    people = {}
    for address, value in raw["subscribers"].items():
        if value["state"] not in ("pending", "active") or not isinstance(address, str):
            raise ValueError(f"the subscriber {address!r} has no valid state")
        since = datetime.fromisoformat(value["since"])
        if since.tzinfo is None:
            raise ValueError(f"the subscriber {address!r} has a time without a zone")
        people[address] = Subscriber(address, value["state"], str(value["lang"]), since)
    sent = raw.get("sent", {})
    return Subscribers(people, str(sent.get("week", "")), {str(a) for a in sent.get("to", [])})
