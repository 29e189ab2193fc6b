"""The public carpool form's decoder: anonymous input, bounded field by field, into a Carpool.

Anonymous input is the most hostile there is: every field is text of a bounded length before
anything else reads it, a field sent twice counts once (the first), and every problem is a
`Message` per field. tests/test_carpool_decode.py fuzzes it with hypothesis.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from klynge.carpool import (
    BAD_DEPARTURE,
    BAD_SEATS,
    NAME_MAX,
    NO_CONTACT,
    NO_NAME,
    PLACE_MAX,
    SEATS_MAX,
    Carpool,
)
from klynge.errors import ValidationError
from klynge.messages import Message
from klynge.model import clean_text, localize

HONEYPOT = "website"  # hidden from people by CSS; a bot that fills every field fills it
FIELD_MAX = 200  # characters read of any field; the model bounds each one lower still
_FORM_NAMES = {"contact": "name", "origin": "from"}  # the model's names -> the form's
FIELDS = ("direction", "seats", "from", "departure", "name", "phone", "email", HONEYPOT)


def field_text(form: Mapping[str, object], name: str) -> str:
    """Return one field as bounded, one-line text ('' when absent or not text)."""
    value = form.get(name, "")
    return clean_text(value[: FIELD_MAX * 2])[:FIELD_MAX] if isinstance(value, str) else ""


def is_bot(form: Mapping[str, object]) -> bool:
    """Tell whether the honeypot field was filled in (people never see it)."""
    return bool(field_text(form, HONEYPOT))


def decode_post(form: Mapping[str, object], day: date, tz: ZoneInfo) -> Carpool:
    """Return the validated carpool a form describes, or raise ValidationError per field.

    `day` is the event's local day: a departure given as a time alone (HH:MM) is on it.
    """
    text = {name: field_text(form, name) for name in FIELDS}
    errors: dict[str, Message] = {}
    seats = _seats(text["seats"], errors)
    departure = _departure(text["departure"], day, tz, errors)
    if not text["name"] or len(text["name"]) > NAME_MAX:
        errors["name"] = Message(NO_NAME, {"max": NAME_MAX})
    if not text["phone"] and not text["email"]:
        errors["phone"] = Message(NO_CONTACT)
    if len(text["from"]) > PLACE_MAX:
        text["from"] = text["from"][: PLACE_MAX + 1]  # refused by the model, in words
    try:
        carpool = Carpool(
            direction=text["direction"],  # type: ignore[arg-type]  # validated by Carpool
            seats=seats if seats is not None else 1,
            origin=text["from"],
            departure=departure,
            contact=text["name"][:NAME_MAX],
            phone=text["phone"],
            email=text["email"],
        )
    except ValidationError as e:
        found = {_FORM_NAMES.get(k, k): v for k, v in e.fields.items()}
        errors = {**found, **errors}
    if errors:
        raise ValidationError(errors)
    return carpool


def _seats(value: str, errors: dict[str, Message]) -> int | None:
    if value.isascii() and value.isdigit() and len(value) <= 2 and 1 <= int(value) <= SEATS_MAX:
        return int(value)
    errors["seats"] = Message(BAD_SEATS, {"max": SEATS_MAX})
    return None


def _departure(value: str, day: date, tz: ZoneInfo, errors: dict[str, Message]) -> datetime | None:
    """Return the departure: HH:MM on the event's day, or a full YYYY-MM-DDTHH:MM; optional."""
    if not value:
        return None
    try:
        if len(value) <= 5:
            return localize(datetime.combine(day, time.fromisoformat(value)), tz)
        parsed = datetime.fromisoformat(value.replace(" ", "T", 1))
    except ValueError:
        errors["departure"] = Message(BAD_DEPARTURE)
        return None
    if parsed.tzinfo is not None or not 1900 <= parsed.year <= 2200:
        errors["departure"] = Message(BAD_DEPARTURE)
        return None
    return localize(parsed, tz)
