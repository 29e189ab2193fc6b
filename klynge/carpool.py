"""A carpool post: an offer of seats or a request for one, tied to an event (issue 14).

The model's part of a carpool notice (`Notice.carpool`): frozen, validated, no I/O. The
contact fields are shown to everyone (the form says so) and leave every store and feed when
the event has ended (docs/node.md, "Carpools").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from klynge.errors import ValidationError
from klynge.messages import Message, define

DIRECTIONS = ("offer", "request")
Direction = Literal["offer", "request"]
SEATS_MAX = 8  # a car; more is a bus, and a bus is not a resident's post
PLACE_MAX = 80
NAME_MAX = 40
EMAIL_MAX = 120

BAD_DIRECTION = define("carpool.bad_direction", "Choose whether you offer or ask for seats.")
BAD_SEATS = define("carpool.bad_seats", "Give a number of seats from 1 to %(max)s.")
NO_ORIGIN = define("carpool.no_origin", "Say where you drive from (at most %(max)s characters).")
BAD_DEPARTURE = define("carpool.bad_departure", "The departure needs a date and time.")
NO_NAME = define("carpool.no_name", "Give a first name (at most %(max)s characters).")
NO_CONTACT = define("carpool.no_contact", "Give a phone number or an e-mail address.")
BAD_PHONE = define("carpool.bad_phone", "Give a phone number of 8 digits, e.g. 20 12 34 56.")
BAD_EMAIL = define("carpool.bad_email", "Give an e-mail address such as mette@example.dk.")

_PHONE_RE = re.compile(r"^(?:\+45|0045)?\d{8}$")
_EMAIL_RE = re.compile(r"^[^@\s<>\"'/\\]{1,64}@[A-Za-z0-9.-]{1,60}\.[A-Za-z]{2,20}$")


@dataclass(frozen=True, slots=True)
class Carpool:
    """Who offers or asks for how many seats, from where and when, and how to reach them."""

    direction: Direction
    seats: int
    origin: str  # "from" in the feed: where the car leaves
    departure: datetime | None = None
    contact: str = ""  # a first name
    phone: str = ""  # eight digits, as written (klynge.phone links it)
    email: str = ""

    def __post_init__(self) -> None:
        errors = _errors(self)
        if errors:
            raise ValidationError(errors)

    @property
    def phone_digits(self) -> str:
        """Return the phone number's last eight digits (for a tel: link), or ''."""
        return re.sub(r"\D", "", self.phone)[-8:]

    @property
    def phone_shown(self) -> str:
        """Return the phone number in the Danish way, 20 12 34 56."""
        d = self.phone_digits
        return " ".join(d[i : i + 2] for i in range(0, len(d), 2))


def _errors(c: Carpool) -> dict[str, Message]:
    errors: dict[str, Message] = {}
    if c.direction not in DIRECTIONS:
        errors["direction"] = Message(BAD_DIRECTION)
    if isinstance(c.seats, bool) or not isinstance(c.seats, int) or not 1 <= c.seats <= SEATS_MAX:
        errors["seats"] = Message(BAD_SEATS, {"max": SEATS_MAX})
    if not isinstance(c.origin, str) or not c.origin or len(c.origin) > PLACE_MAX:
        errors["origin"] = Message(NO_ORIGIN, {"max": PLACE_MAX})
    if c.departure is not None and (
        not isinstance(c.departure, datetime) or c.departure.tzinfo is None
    ):
        errors["departure"] = Message(BAD_DEPARTURE)
    if not isinstance(c.contact, str) or len(c.contact) > NAME_MAX:
        errors["contact"] = Message(NO_NAME, {"max": NAME_MAX})
    errors.update(contact_errors(c.phone, c.email))
    return errors


def contact_errors(phone: str, email: str) -> dict[str, Message]:
    """Return the problems with a phone number and an e-mail address (both may be empty)."""
    if not isinstance(phone, str) or not isinstance(email, str):
        return {"phone": Message(NO_CONTACT)}
    errors: dict[str, Message] = {}
    if phone and not _PHONE_RE.match(phone.replace(" ", "")):
        errors["phone"] = Message(BAD_PHONE)
    if email and (len(email) > EMAIL_MAX or not _EMAIL_RE.match(email)):
        errors["email"] = Message(BAD_EMAIL)
    return errors


def without_contact(carpool: Carpool) -> Carpool:
    """Return the post with its personal data removed (name, phone, e-mail)."""
    return Carpool(carpool.direction, carpool.seats, carpool.origin, carpool.departure)


def carpool_doc(carpool: Carpool) -> dict[str, object]:
    """Return a carpool as a JSON-ready dict (store files and the JSON API)."""
    departure = carpool.departure.isoformat(timespec="seconds") if carpool.departure else None
    doc: dict[str, object] = {
        "direction": carpool.direction,
        "seats": carpool.seats,
        "from": carpool.origin,
        "departure": departure,
    }
    doc.update({k: v for k, v in _contact(carpool).items() if v})
    return doc


def _contact(carpool: Carpool) -> dict[str, str]:
    return {"contact": carpool.contact, "phone": carpool.phone, "email": carpool.email}


def doc_carpool(doc: object) -> Carpool:
    """Rebuild (and validate) a carpool from a dict made by `carpool_doc`."""
    if not isinstance(doc, dict):
        raise TypeError("a carpool must be a JSON object")
    departure = doc.get("departure")
    return Carpool(
        direction=doc["direction"],
        seats=doc["seats"],
        origin=doc["from"],
        departure=datetime.fromisoformat(departure) if isinstance(departure, str) else None,
        contact=doc.get("contact", ""),
        phone=doc.get("phone", ""),
        email=doc.get("email", ""),
    )
