"""The carpool form decoder under hostile input (hypothesis): a Carpool or words, nothing else."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from klynge.carpool import NAME_MAX, PLACE_MAX, SEATS_MAX, Carpool
from klynge.errors import ValidationError
from klynge.messages import Message
from node.carpool.decode import FIELDS, decode_post, field_text, is_bot

TZ = ZoneInfo("Europe/Copenhagen")
DAY = date(2027, 3, 28)  # spring forward: 02:00-03:00 does not exist
GOOD = {"direction": "offer", "seats": "3", "from": "Østerby Kirke", "departure": "09:15",
        "name": "Mette", "phone": "20 12 34 56"}  # fmt: skip

values = st.one_of(
    st.text(max_size=400),
    st.integers(),
    st.none(),
    st.binary(max_size=50),
    st.lists(st.text(max_size=5), max_size=3),
    st.sampled_from(
        ["offer", "request", "3", "0", "-1", "٣", "²", "09:15", "02:30", "+4520123456"]
    ),
)
forms = st.dictionaries(st.sampled_from([*FIELDS, "other"]), values, max_size=10)


@settings(max_examples=300, deadline=None)
@given(forms)
def test_any_form_gives_a_carpool_or_field_messages(form: dict[str, object]) -> None:
    try:
        carpool = decode_post(form, DAY, TZ)
    except ValidationError as e:
        assert e.fields and all(isinstance(m, Message) for m in e.fields.values())
        assert set(e.fields) <= {
            "direction",
            "seats",
            "from",
            "departure",
            "name",
            "phone",
            "email",
        }
        for message in e.fields.values():
            assert message.render("da") and message.render("en")
        return
    assert isinstance(carpool, Carpool)
    assert 1 <= carpool.seats <= SEATS_MAX and 0 < len(carpool.origin) <= PLACE_MAX
    assert 0 < len(carpool.contact) <= NAME_MAX and (carpool.phone or carpool.email)
    text = carpool.origin + carpool.contact + carpool.phone + carpool.email
    assert "\n" not in text and "\r" not in text and "\x00" not in text


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(list(GOOD)), st.text(max_size=300), max_size=6))
def test_any_text_over_a_good_form(changes: dict[str, str]) -> None:
    try:
        carpool = decode_post(GOOD | changes, DAY, TZ)
    except ValidationError as e:
        # Only a changed field is ever blamed (and the contact when both ways are gone).
        assert set(e.fields) <= set(changes) | {"phone"}, (e.fields, changes)
        return
    assert carpool.contact == field_text(GOOD | changes, "name")


def test_a_good_form() -> None:
    carpool = decode_post(GOOD, DAY, TZ)
    assert (carpool.direction, carpool.seats, carpool.origin, carpool.contact) == (
        "offer", 3, "Østerby Kirke", "Mette")  # fmt: skip
    assert (
        carpool.departure is not None
        and carpool.departure.isoformat() == "2027-03-28T09:15:00+02:00"
    )
    assert carpool.phone_digits == "20123456"


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("seats", "9", "seats"),
        ("seats", "٣", "seats"),  # an Arabic-Indic three is a digit to str.isdigit()
        ("seats", "0", "seats"),
        ("direction", "sell", "direction"),
        ("from", "x" * 81, "from"),
        ("departure", "25:00", "departure"),
        ("departure", "2027-03-28T09:15+05:00", "departure"),
        ("name", "", "name"),
        ("phone", "112", "phone"),
        ("email", "a@b", "email"),
    ],
)
def test_each_bad_field_is_named(field: str, value: str, named: str) -> None:
    with pytest.raises(ValidationError) as caught:
        decode_post(GOOD | {field: value}, DAY, TZ)
    assert named in caught.value.fields


def test_a_departure_in_the_spring_gap_moves_forward() -> None:
    carpool = decode_post(GOOD | {"departure": "02:30"}, DAY, TZ)
    assert (
        carpool.departure is not None
        and carpool.departure.isoformat() == "2027-03-28T03:30:00+02:00"
    )


def test_no_contact_at_all_is_refused_and_the_honeypot_is_seen() -> None:
    with pytest.raises(ValidationError) as caught:
        decode_post(GOOD | {"phone": ""}, DAY, TZ)
    assert "phone" in caught.value.fields
    assert is_bot({"website": " x "}) and not is_bot({"website": "  "}) and not is_bot({})
