"""Helpers for the carpool tests: an away match on a node, and posts through its public form."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from clock_support import COPENHAGEN, utc_now
from node_support import auth

Client = TestClient[Any, Any]
PHONE = "20 12 34 56"
LINK_RE = re.compile(r'class="private-link" href="([^"]+)"')
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def match_start(days: int = 5) -> datetime:
    """Return an away match's start: 10:00 Copenhagen time, `days` from the suite's now."""
    day = utc_now().astimezone(COPENHAGEN).date() + timedelta(days=days)
    return datetime(day.year, day.month, day.day, 10, tzinfo=COPENHAGEN)


async def away_match(client: Client, token: str, **extra: Any) -> dict[str, Any]:
    """Create Østerby IF's away match through the API (carpooling on by default); return it."""
    start = match_start()
    body = {
        "title": "Udebanekamp U10 mod Vesterlund",
        "start": start.strftime("%Y-%m-%dT%H:%M"),
        "end": (start + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"),
        "category": "sport",
        **extra,
    }
    response = await client.post("/api/events", json=body, headers=auth(token))
    assert response.status == 201, await response.text()
    found: dict[str, Any] = await response.json()
    return found


def offer(**extra: str) -> dict[str, str]:
    """Return the form of Mette's offer of 3 seats from Østerby Kirke at 9.15."""
    return {
        "direction": "offer",
        "seats": "3",
        "from": "Østerby Kirke",
        "departure": "09:15",
        "name": "Mette",
        "phone": PHONE,
        "email": "",
        "website": "",
        **extra,
    }


def request_seat(**extra: str) -> dict[str, str]:
    """Return the form of Jens' request for 1 seat from Nørrevang."""
    return offer(direction="request", seats="1", **{"from": "Nørrevang", "departure": "",
                 "name": "Jens", "phone": "", "email": "jens@example.dk", **extra})  # fmt: skip


def private_link(page: str) -> str:
    """Return the path of the private link on the page shown after posting."""
    match = LINK_RE.search(page)
    assert match, page
    return "/" + match.group(1).split("/", 3)[3]
