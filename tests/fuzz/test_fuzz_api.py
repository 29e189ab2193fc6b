"""Fuzzing the node's JSON API and the aggregator's POST /ping through real apps on loopback.

Property: every body is stored (201/200) or refused with the pinned JSON error shape and
400/413/422, within the time bound, never a 500; and an accepted entry does not break the
pages and documents built from it (feed, calendar, the entry's page and .ics, the village page).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from fuzz_support import budget, form_text, hard_limit, hostile_text, rrule_text
from hypothesis import event, example, given
from hypothesis import strategies as st
from node_support import NodeDir, auth, make_node

from aggregator.app import create_app as create_aggregator
from aggregator.config import AggregatorConfig, Source
from node.app import create_app

pytestmark = pytest.mark.fuzz

Client = TestClient[Any, Any]
ClientFactory = Callable[..., Coroutine[Any, Any, Client]]
REFUSED = {400: "bad_request", 413: "too_large", 422: "invalid"}

_WHEN = st.sampled_from(
    ["2026-12-24T18:00", "2026-12-24T18:00:00+01:00", "2026-12-24", "2027-03-28T02:30",
     "2027-10-31T02:30", "0001-01-01T00:00", "9999-12-31T23:59", "9999-12-31", "1900-01-01",
     "2200-12-31T23:59:59-23:59", "2026-02-29", "2026-12-24T18:00Z", "24/12/2026", ""]
)  # fmt: skip
_LOCATION = st.one_of(
    st.none(),
    hostile_text(),
    st.fixed_dictionaries(
        {},
        optional={
            "name": hostile_text(),
            "street": hostile_text(),
            "postcode": hostile_text(),
            "locality": hostile_text(),
            "lat": st.one_of(st.floats(allow_nan=False), st.integers(), hostile_text()),
            "lon": st.one_of(st.floats(allow_nan=False), st.integers(), st.none()),
            "floor": st.integers(),
        },
    ),
)
_JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | hostile_text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)


def _field(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Return mostly the field's own kind of value, sometimes any JSON value at all."""
    return st.one_of(*[value] * 7, _JSON_VALUE)


ZONES = ["Europe/Copenhagen", "UTC", "America/Nuuk", "Europe/Atlantis", "", "../etc"]
STATUSES = ["confirmed", "cancelled", "postponed", "tentative", "x"]
EVENTS = st.fixed_dictionaries(
    {"title": _field(st.one_of(st.just("Loppemarked"), hostile_text())), "start": _field(_WHEN)},
    optional={
        "end": _field(st.one_of(_WHEN, st.none())),
        "all_day": _field(st.booleans()),
        "timezone": _field(st.sampled_from(ZONES)),
        "location": _field(_LOCATION),
        "description": _field(hostile_text(200)),
        "category": _field(st.sampled_from(["sport", "culture", "", "Sport & Fun!", "x" * 60])),
        "status": _field(st.sampled_from(STATUSES)),
        "rrule": _field(st.one_of(rrule_text(), st.none())),
        "url": _field(st.one_of(hostile_text(), st.just("https://osterby.example.dk/x"))),
        "colour": st.just("red"),
    },
)
NOTICES = st.fixed_dictionaries(
    {"title": _field(st.one_of(st.just("Kat væk"), hostile_text()))},
    optional={
        "body": _field(hostile_text(200)),
        "category": _field(st.sampled_from(["carpool", "lost-found", "", "Bad!"])),
        "expires": _field(st.one_of(_WHEN, st.none())),
        "related": _field(st.one_of(st.none(), hostile_text(),
                                    st.just("urn:uuid:0b9e4a52-7c1d-4e55-9a3b-2f4f0c6d8e11"))),
        "url": _field(st.one_of(st.none(), hostile_text())),
    },
)  # fmt: skip


def encoded(payload: Any, how: str) -> bytes:
    """Return the payload as JSON bytes: plain, ASCII-escaped (lone surrogates as \\ud800)."""
    text = json.dumps(payload, ensure_ascii=how == "ascii")
    return text.encode("utf-8", errors="surrogatepass")


@pytest.fixture
def node_dir(tmp_path: Path) -> NodeDir:
    return make_node(tmp_path)


@pytest.fixture
async def client(node_dir: NodeDir, aiohttp_client: ClientFactory) -> AsyncIterator[Client]:
    yield await aiohttp_client(create_app(node_dir.config(), housekeeping=False))


async def assert_refused_in_words(response: Any) -> None:
    """Assert a refusal has one of the documented statuses and the pinned JSON error shape."""
    assert response.status in REFUSED, (response.status, await response.text())
    error = (await response.json())["error"]
    assert error["code"] == REFUSED[response.status] and error["message"].strip()
    assert all(isinstance(v, str) and v.strip() for v in error.get("fields", {}).values())


async def assert_outputs_still_build(client: Client, body: dict[str, Any]) -> None:
    """Fetch what an accepted entry shows up in; every page and document must still build."""
    paths = ["/feed.atom", "/calendar.ics", "/", f"/{body['kind']}s/{body['id']}"]
    if body["kind"] == "event":
        paths.append(f"/events/{body['id']}.ics")
    for path in paths:
        response = await client.get(path)
        assert response.status == 200, (path, await response.text())


async def send(client: Client, method: str, path: str, data: bytes, token: str) -> Any:
    headers = {**auth(token), "Content-Type": "application/json"}
    with hard_limit():
        return await client.request(method, path, data=data, headers=headers)


async def post_and_check(client: Client, node_dir: NodeDir, section: str, data: bytes) -> None:
    response = await send(client, "POST", f"/api/{section}", data, node_dir.token)
    if response.status != 201:
        event(f"refused {response.status}")
        await assert_refused_in_words(response)
        return
    event("stored")
    body = await response.json()
    await assert_outputs_still_build(client, body)
    deleted = await client.delete(f"/api/{section}/{body['id']}", headers=auth(node_dir.token))
    assert deleted.status == 204  # keeps the store small for the next examples


@budget(40)
@given(payload=EVENTS, how=st.sampled_from(["utf-8", "ascii"]))
@example(payload={"title": "\ud800", "start": "2026-12-24T18:00"}, how="ascii")
@example(payload={"title": "Jul", "start": "9999-12-31T23:59", "all_day": False}, how="utf-8")
async def test_event_payloads_are_stored_or_refused_in_words(
    client: Client, node_dir: NodeDir, payload: dict[str, Any], how: str
) -> None:
    await post_and_check(client, node_dir, "events", encoded(payload, how))


@budget(40)
@given(payload=NOTICES, how=st.sampled_from(["utf-8", "ascii"]))
async def test_notice_payloads_are_stored_or_refused_in_words(
    client: Client, node_dir: NodeDir, payload: dict[str, Any], how: str
) -> None:
    await post_and_check(client, node_dir, "notices", encoded(payload, how))


@budget(25)
@given(payload=EVENTS, how=st.sampled_from(["utf-8", "ascii"]))
async def test_event_patches_are_saved_or_refused_in_words(
    client: Client, node_dir: NodeDir, payload: dict[str, Any], how: str
) -> None:
    good = encoded({"title": "Loppemarked", "start": "2026-12-24T10:00"}, "utf-8")
    created = await send(client, "POST", "/api/events", good, node_dir.token)
    uid = (await created.json())["id"]
    patch = {k: v for k, v in payload.items() if k != "title" or len(payload) == 1}
    path = f"/api/events/{uid}"
    response = await send(client, "PATCH", path, encoded(patch, how), node_dir.token)
    if response.status == 200:
        event("saved")
        await assert_outputs_still_build(client, await response.json())
    else:
        event(f"refused {response.status}")
        await assert_refused_in_words(response)
    assert (await client.delete(f"/api/events/{uid}", headers=auth(node_dir.token))).status == 204


RAW_BODIES = st.one_of(
    st.binary(max_size=500),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"", b"null", b"[]", b"{}", b'{"title": NaN}', b'{"title": Infinity}',
                     b"[" * 100_000, b'{"a":' * 50_000, b'"\\ud800"', b'{"title": "\\udfff"}',
                     b"\xef\xbb\xbf{}", b'{"title": 1e999}', b'{"title": "x", "title": 2}']),
)  # fmt: skip


@budget(60)
@given(body=RAW_BODIES, section=st.sampled_from(["events", "notices"]))
@example(body=b"[" * 100_000, section="events")
async def test_raw_bodies_are_refused_in_words(
    client: Client, node_dir: NodeDir, body: bytes, section: str
) -> None:
    await post_and_check(client, node_dir, section, body)


# --- the aggregator's POST /ping ----------------------------------------------------------------

SOURCE = "http://127.0.0.1:9/feed.atom"  # discard port: the triggered fetch fails fast


@pytest.fixture
async def aggregator(tmp_path: Path, aiohttp_client: ClientFactory) -> Client:
    data = tmp_path / "agg"
    data.mkdir()
    config = AggregatorConfig(
        data_dir=data, name="Klynge Syd", url="http://syd.example", sources=(Source(SOURCE),)
    )
    return await aiohttp_client(create_aggregator(config, periodic=False))


PING_FORMS = st.dictionaries(
    st.sampled_from(["hub.mode", "hub.url", "hub.topic", "x", ""]),
    st.one_of(st.sampled_from(["publish", SOURCE, "subscribe"]), form_text()),
    max_size=3,
)
CONTENT_TYPES = st.sampled_from(
    ["application/x-www-form-urlencoded", "multipart/form-data; boundary=xyz",
     "multipart/form-data", "text/plain", "application/json", "",
     "application/x-www-form-urlencoded; charset=utf-16",
     "application/x-www-form-urlencoded; charset=x-unknown"]
)  # fmt: skip


@budget(60)
@given(
    body=st.one_of(
        PING_FORMS.map(lambda form: form),
        st.binary(max_size=500),
        st.sampled_from([b"hub.mode=publish&hub.url=" + b"%ff" * 10, b"hub.url=%", b"=&=&&"]),
    ),
    content_type=CONTENT_TYPES,
)
@example(body={"hub.mode": "publish", "hub.url": SOURCE}, content_type="")
async def test_ping_bodies_are_answered_in_words(
    aggregator: Client, body: dict[str, str] | bytes, content_type: str
) -> None:
    headers = {"Content-Type": content_type} if content_type and isinstance(body, bytes) else {}
    with hard_limit():
        response = await aggregator.post("/ping", data=body, headers=headers)
    text = await response.text()
    event(f"answered {response.status}")
    assert response.status in (202, 400, 404, 413, 415), (response.status, text)
    assert text.strip() and "Traceback" not in text
