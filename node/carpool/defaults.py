"""Whether an event takes carpool posts when its association has not said (issue 14)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# "udebane" (away match) in the title: the matches parents drive to.
AWAY_WORDS = ("udebane", "away match", "away game")


def carpooling_of(values: Mapping[str, Any]) -> bool:
    """Return the `carpooling` input, or on for category sport and for away matches."""
    given = values.get("carpooling")
    if isinstance(given, bool):
        return given
    title = str(values.get("title") or "").casefold()
    return values.get("category") == "sport" or any(word in title for word in AWAY_WORDS)


def form_choice(value: str) -> bool | None:
    """Return the event form's carpooling choice: on, off, or '' for the default."""
    return {"on": True, "off": False}.get(value)
