"""Signed links for the e-mails: confirm a sign-up, unsubscribe (HMAC-SHA256, RFC 2104).

A token is `address.purpose.issued.signature`, the address base64url-encoded: nothing to
store per link, and nobody can make one for an address without the aggregator's secret.
A confirmation link expires; an unsubscribe link never does (it sits in every old e-mail).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from datetime import datetime, timedelta

CONFIRM = "confirm"
UNSUBSCRIBE = "unsubscribe"
CONFIRM_VALID = timedelta(days=7)
MAX_TOKEN = 600  # characters: an address is at most 254


def make_token(secret: bytes, purpose: str, address: str, issued: datetime | None = None) -> str:
    """Return a signed token for `address` and `purpose` (issued now, or never expiring)."""
    name = base64.urlsafe_b64encode(address.encode()).decode().rstrip("=")
    stamp = str(int(issued.timestamp())) if issued else "0"
    body = f"{name}.{purpose}.{stamp}"
    return f"{body}.{_sign(secret, body)}"


def read_token(secret: bytes, token: str, purpose: str, now: datetime) -> str | None:
    """Return the address of a valid, unexpired token for `purpose`, else None."""
    parts = token.split(".") if len(token) <= MAX_TOKEN else []
    if len(parts) != 4 or parts[1] != purpose or not parts[2].isdigit():
        return None
    body = ".".join(parts[:3])
    if not hmac.compare_digest(parts[3], _sign(secret, body)):
        return None
    if purpose == CONFIRM and now.timestamp() - int(parts[2]) > CONFIRM_VALID.total_seconds():
        return None
    try:
        padded = parts[0] + "=" * (-len(parts[0]) % 4)
        return base64.urlsafe_b64decode(padded).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def _sign(secret: bytes, body: str) -> str:
    digest = hmac.new(secret, body.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")
