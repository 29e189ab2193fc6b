"""Read a carpool notice's own Klynge elements (docs/feed-format.md, "Carpools")."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from klynge.carpool import BAD_DEPARTURE, BAD_SEATS, SEATS_MAX, Carpool
from klynge.errors import ValidationError
from klynge.messages import Message
from klynge.model import clean_text, parse_when

_SEATS_DIGITS = 2  # "8" at most; a longer number is refused before int() reads it


def read_carpool(k: Callable[[str], str], tz: str) -> tuple[Carpool | None, dict[str, Message]]:
    """Return the carpool of an entry's elements (None without `direction`), or its problems."""
    direction = k("direction").strip().lower()
    if not direction:
        return None, {}
    seats_text = k("seats").strip()
    if not seats_text.isdigit() or len(seats_text) > _SEATS_DIGITS:
        return None, {"seats": Message(BAD_SEATS, {"max": SEATS_MAX})}
    departure = None
    if k("departure").strip():
        try:
            when = parse_when(k("departure"), tz=tz, all_day=False)
            departure = when if isinstance(when, datetime) else None
        except ValueError:
            return None, {"departure": Message(BAD_DEPARTURE)}
    try:
        carpool = Carpool(
            direction=direction,  # type: ignore[arg-type]  # validated by Carpool
            seats=int(seats_text),
            origin=clean_text(k("from")),
            departure=departure,
            contact=clean_text(k("contact")),
            phone=clean_text(k("phone")),
            email=clean_text(k("email")),
        )
    except ValidationError as e:
        return None, dict(e.fields)
    return carpool, {}
