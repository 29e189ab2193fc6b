"""Sending through the configured SMTP server: smtplib, run in a thread, bounded in time."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage

from aggregator.outreach_config import MailSettings

TIMEOUT = 30.0  # seconds for each SMTP step; a hung server must not hold the sender for ever


async def send(settings: MailSettings, messages: Sequence[EmailMessage]) -> list[str]:
    """Send the messages over one connection; return the recipients that were refused."""
    return await asyncio.to_thread(_send, settings, list(messages))


def _send(settings: MailSettings, messages: list[EmailMessage]) -> list[str]:
    refused: list[str] = []
    with _connect(settings) as smtp:
        if settings.username:
            smtp.login(settings.username, settings.password)
        for message in messages:
            try:
                smtp.send_message(message)
            except smtplib.SMTPRecipientsRefused:
                refused.append(str(message["To"]))
    return refused


def _connect(settings: MailSettings) -> smtplib.SMTP:
    if settings.security == "ssl":
        context = ssl.create_default_context()
        return smtplib.SMTP_SSL(
            settings.smtp_host, settings.smtp_port, timeout=TIMEOUT, context=context
        )
    smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=TIMEOUT)
    if settings.security == "starttls":
        smtp.starttls(context=ssl.create_default_context())
    return smtp
