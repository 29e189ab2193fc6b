"""The e-mails themselves: the confirmation of a sign-up and the weekly ugeseddel.

The weekly e-mail carries the headers of RFC 2369 and RFC 8058 so that mail programs offer
one-click unsubscribe: `List-Unsubscribe: <https://…>` and
`List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058 §3.1 asks for an https URI;
an http one is sent as configured, for a cluster without TLS).
"""

from __future__ import annotations

import re
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from urllib.parse import urlsplit

from aggregator.outreach_config import MailSettings
from aggregator.publish.digest import Digest, digest_text, html_document, title, tr
from klynge.i18n import N_

# What an address must look like (RFC 5321 §4.5.3.1 limits, the common dot-atom form): no
# quoted local parts, no IP literals, no spaces or control characters, a dotted domain.
_ADDRESS_RE = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@"
                         r"(?=.{4,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
                         r"[A-Za-z]{2,63}$")  # fmt: skip
CONFIRM_SUBJECT = N_("Confirm your ugeseddel from %(site)s")
CONFIRM_BODY = N_(
    "Someone, probably you, asked to get the ugeseddel of %(site)s by e-mail every week.\n\n"
    "To say yes, open this link and press the button:\n%(url)s\n\n"
    "If it was not you, do nothing: without a yes you get no more e-mail from us."
)


def clean_address(text: str) -> str | None:
    """Return the address in its stored form (the domain lower-cased), or None if invalid."""
    value = text.strip()
    if len(value) > 254 or not _ADDRESS_RE.match(value) or ".." in value:
        return None
    local, domain = value.rsplit("@", 1)
    if local.startswith(".") or local.endswith("."):
        return None
    return f"{local}@{domain.lower()}"


def _base(settings: MailSettings, site: str, to: str, subject: str, now: datetime) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"{site} <{settings.from_address}>"
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=settings.from_address.rsplit("@", 1)[1])
    return message


def confirmation(
    settings: MailSettings, site: str, to: str, url: str, lang: str, now: datetime
) -> EmailMessage:
    """Return the e-mail that asks `to` to confirm the sign-up."""
    message = _base(settings, site, to, tr(lang, CONFIRM_SUBJECT, site=site), now)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies, please
    message.set_content(tr(lang, CONFIRM_BODY, site=site, url=url) + "\n")
    return message


def weekly(
    settings: MailSettings, digest: Digest, to: str, lang: str, now: datetime, list_url: str
) -> EmailMessage:
    """Return the weekly ugeseddel for `to`, text and HTML, with one-click unsubscribe."""
    message = _base(settings, digest.site, to, title(digest, lang), now)
    host = urlsplit(list_url).hostname or "klynge.invalid"
    message["List-Id"] = f"{digest.site} <ugeseddel.{host}>"
    message["List-Unsubscribe"] = f"<{digest.unsubscribe_url}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(digest_text(digest, lang))
    message.add_alternative(html_document(digest, lang), subtype="html")
    return message
