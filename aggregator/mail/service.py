"""The mailer: sign-up with double opt-in, confirmation, unsubscribe, and the weekly run.

`tick()` is called every few minutes by the scheduler. It reads the time from the service
clock (config.clock): once the configured weekday and hour have come, it sends the week
ahead to every active subscriber who has not had it, recording each one in the subscribers
file as it goes, so a restart never sends the same week twice and a run cut short goes on.
A run is due for a day after its hour (a service that was down a little still sends).
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import date, datetime, timedelta
from email.message import EmailMessage

from aggregator.config import AggregatorConfig
from aggregator.mail import compose, smtp
from aggregator.mail.subscribers import FULL, MAX_SUBSCRIBERS, Subscriber, SubscriberStore
from aggregator.mail.tokens import CONFIRM, UNSUBSCRIBE, make_token, read_token
from aggregator.outreach_config import WEEKDAYS
from aggregator.publish.digest import Digest, build_digest, week_ahead
from aggregator.reader.merge import Merged
from klynge.errors import Conflict, KlyngeError
from klynge.messages import Message, define
from klynge.model import zone

log = logging.getLogger("klynge.aggregator.mail")
CATCH_UP = timedelta(days=1)
BATCH = 50  # messages over one SMTP connection, then the file records them
SEND_FAILED = define(
    "mail.send_failed",
    "The e-mail could not be sent just now (%(reason)s). Try again in a little while.",
)


class SendFailed(KlyngeError):
    """The SMTP server could not be reached or refused the message."""

    status = 503
    code = "mail_failed"


class Mailer:
    """Owns the subscribers and sends the confirmation and weekly e-mails."""

    def __init__(self, config: AggregatorConfig, merged: Callable[[], Awaitable[Merged]]) -> None:
        assert config.mail is not None
        self.config, self.settings = config, config.mail
        self.merged = merged
        self.store = SubscriberStore(config.data_dir)
        self.data = self.store.load()
        self.secret = self.store.secret()
        self._lock = asyncio.Lock()

    def _now(self) -> datetime:
        return self.config.clock.now()

    def link(self, path: str, purpose: str, address: str) -> str:
        """Return the absolute URL of a signed link for `address`."""
        issued = self._now() if purpose == CONFIRM else None
        token = make_token(self.secret, purpose, address, issued)
        return f"{self.config.url.rstrip('/')}{path}?token={token}"

    async def sign_up(self, address: str, lang: str) -> None:
        """Keep `address` as pending and send it the confirmation link (no-op if active)."""
        async with self._lock:
            known = self.data.people.get(address)
            if known is not None and known.state == "active":
                return  # say nothing different: the page must not tell who subscribes
            if known is None and len(self.data.people) >= MAX_SUBSCRIBERS:
                raise Conflict(Message(FULL))
            self.data.people[address] = Subscriber(address, "pending", lang, self._now())
            await asyncio.to_thread(self.store.save, self.data, self._now())
        url = self.link("/digest/confirm", CONFIRM, address)
        message = compose.confirmation(
            self.settings, self.config.name, address, url, lang, self._now()
        )
        try:
            await smtp.send(self.settings, [message])
        except (OSError, smtplib.SMTPException) as e:
            log.warning("the confirmation to a new subscriber could not be sent: %s", e)
            raise SendFailed(Message(SEND_FAILED, {"reason": type(e).__name__})) from e

    def address_of(self, token: str, purpose: str) -> str | None:
        """Return the address a signed token is for, if it is valid."""
        return read_token(self.secret, token, purpose, self._now())

    async def confirm(self, token: str) -> str | None:
        """Make a pending sign-up active; return its address (None for a bad token)."""
        address = self.address_of(token, CONFIRM)
        async with self._lock:
            known = self.data.people.get(address or "")
            if address is None or known is None:
                return None
            known.state = "active"
            await asyncio.to_thread(self.store.save, self.data, self._now())
        return address

    async def unsubscribe(self, token: str) -> str | None:
        """Forget the address of an unsubscribe token; return it (None for a bad token)."""
        address = self.address_of(token, UNSUBSCRIBE)
        if address is None:
            return None
        async with self._lock:
            if self.data.people.pop(address, None) is not None:
                await asyncio.to_thread(self.store.save, self.data, self._now())
        return address

    def due_week(self, now: datetime) -> date | None:
        """Return the Monday of the week whose sending run is due at `now`, if one is."""
        local = now.astimezone(zone(self.config.timezone))
        weekday = WEEKDAYS.index(self.settings.send_weekday)
        day = local.date() - timedelta(days=(local.weekday() - weekday) % 7)
        hour = datetime(day.year, day.month, day.day, self.settings.send_hour,
                        tzinfo=local.tzinfo)  # fmt: skip
        if not hour <= local < hour + CATCH_UP:
            return None
        return week_ahead(day)

    async def tick(self) -> int:
        """Send the week ahead to whoever has not had it, if its time has come; return how many."""
        monday = self.due_week(self._now())
        if monday is None:
            return 0
        key = f"{monday.isocalendar()[0]}-W{monday.isocalendar()[1]:02d}"
        async with self._lock:
            if self.data.sent_week != key:
                self.data.sent_week, self.data.sent_to = key, set()
            waiting = [s for s in self.data.active() if s.address not in self.data.sent_to]
        if not waiting:
            return 0
        digest = build_digest(
            await self.merged(), monday, self._now(), self.config.timezone, self.config.name,
            self.config.url,
        )  # fmt: skip
        return await self._send_all(digest, waiting)

    async def _send_all(self, digest: Digest, waiting: list[Subscriber]) -> int:
        sent = 0
        for first in range(0, len(waiting), BATCH):
            batch = waiting[first : first + BATCH]
            messages = [self._weekly(digest, s) for s in batch]
            try:
                refused = await smtp.send(self.settings, messages)
            except (OSError, smtplib.SMTPException) as e:
                log.warning("the ugeseddel could not be sent: %s; trying again later", e)
                return sent
            async with self._lock:
                self.data.sent_to.update(s.address for s in batch)  # refused ones too: no loop
                await asyncio.to_thread(self.store.save, self.data, self._now())
            sent += len(batch) - len(refused)
        return sent

    def _weekly(self, digest: Digest, subscriber: Subscriber) -> EmailMessage:
        off = self.link("/digest/unsubscribe", UNSUBSCRIBE, subscriber.address)
        mine = replace(digest, unsubscribe_url=off)
        return compose.weekly(
            self.settings, mine, subscriber.address, subscriber.lang, self._now(), off
        )
