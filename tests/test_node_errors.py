"""Refusals of the node's API: bad payloads (table-driven) and authorisation, each with the
documented status and error shape, and with nothing changed in the store or on disk."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import node_support
import pytest
from clock_support import local_today
from node_support import Client, ClientFactory, NodeDir, auth, ok

from node.app import create_app
from node.keys import STORE

SOON = str(local_today() + timedelta(days=7))
GOOD = {"title": "Loppemarked", "start": f"{SOON}T10:00", "end": f"{SOON}T14:00"}


node_dir, client = node_support.node_dir, node_support.client  # fixtures


def ev(**changes: Any) -> dict[str, Any]:
    return {k: v for k, v in {**GOOD, **changes}.items() if v is not ...}


# (name, path, body: dict -> JSON | bytes as is, status, error code, field named or None)
BAD: list[tuple[str, str, Any, int, str, str | None]] = [
    ("missing title", "events", ev(title=...), 422, "invalid", "title"),
    ("empty title", "events", ev(title=""), 422, "invalid", "title"),
    ("blank title", "events", ev(title="   \t"), 422, "invalid", "title"),
    ("10,000-character title", "events", ev(title="x" * 10_000), 422, "invalid", "title"),
    ("end before start", "events", ev(end=f"{SOON}T09:00"), 422, "invalid", "end"),
    ("31 February", "events", ev(start="2027-02-31T10:00", end=...), 422, "invalid", "start"),
    ("date without time", "events", ev(start=SOON, end=...), 422, "invalid", "start"),
    ("missing start", "events", ev(start=...), 422, "invalid", "start"),
    ("unknown timezone", "events", ev(timezone="Europe/Atlantis"), 422, "invalid", "timezone"),
    ("unbounded RRULE", "events", ev(rrule="FREQ=WEEKLY"), 422, "invalid", "rrule"),
    ("hourly RRULE", "events", ev(rrule="FREQ=HOURLY;COUNT=3"), 422, "invalid", "rrule"),
    ("unreadable RRULE", "events", ev(rrule="FREQ=SOMETIMES;COUNT=2"), 422, "invalid", "rrule"),
    ("javascript: URL", "events", ev(url="javascript:alert(1)"), 422, "invalid", "url"),
    ("<script> in description", "events",
     ev(description="Hej <script>alert(1)</script>"), 422, "invalid", "description"),
    ("description too long", "events", ev(description="x" * 20_001), 422, "invalid",
     "description"),
    ("title a number", "events", ev(title=42), 422, "invalid", "title"),
    ("all_day a string", "events", ev(all_day="yes"), 422, "invalid", "all_day"),
    ("start a list", "events", ev(start=["2026", "12"]), 422, "invalid", "start"),
    ("location a number", "events", ev(location=7), 422, "invalid", "location"),
    ("latitude out of range", "events",
     ev(location={"name": "Mark", "lat": 200, "lon": 10}), 422, "invalid", "location"),
    ("unknown location field", "events",
     ev(location={"name": "Mark", "floor": 2}), 422, "invalid", "location"),
    ("unknown field", "events", ev(colour="red"), 422, "invalid", "colour"),
    ("unknown status", "events", ev(status="maybe"), 422, "invalid", "status"),
    ("bad category", "events", ev(category="Sport & Fun!"), 422, "invalid", "category"),
    ("body an array", "events", [GOOD], 422, "invalid", None),
    ("invalid JSON", "events", b'{"title": "Marked",', 400, "bad_request", None),
    ("invalid UTF-8", "events", b'{"title": "Mark\xe6d"}', 400, "bad_request", None),
    ("NaN", "events", b'{"title": NaN}', 400, "bad_request", None),
    ("Infinity", "events", b'{"title": "x", "location": {"name": "M", "lat": -Infinity}}', 400,
     "bad_request", None),
    ("a number too big for a float", "events",
     b'{"title": "x", "location": {"name": "M", "lat": 1e999, "lon": 1}}', 400, "bad_request",
     None),
    ("a 5,000-digit integer", "events", b'{"title": "x", "sequence": ' + b"9" * 5000 + b"}",
     400, "bad_request", None),
    ("lone surrogate in a value", "events",
     b'{"title": "Mark\\ud800ed", "start": "2030-01-01T10:00"}', 400, "bad_request", None),
    ("lone surrogate in a key", "events", b'{"\\udfff": 1}', 400, "bad_request", None),
    ("surrogate nested in a location", "events",
     b'{"title": "x", "location": {"name": "\\udc00"}}', 400, "bad_request", None),
    ("1,000-deep arrays", "events", b'{"title": ' + b"[" * 1000 + b"]" * 1000 + b"}", 400,
     "bad_request", None),
    ("30,000-deep arrays", "events", b'{"title": ' + b"[" * 30_000 + b"]" * 30_000 + b"}",
     400, "bad_request", None),
    ("objects nested 40 deep", "events", b'{"title": ' + b'{"a":' * 40 + b"1" + b"}" * 41, 400,
     "bad_request", None),
    ("byte-order mark", "events", b'\xef\xbb\xbf{"title": "x"}', 400, "bad_request", None),
    ("empty body", "events", b"", 400, "bad_request", None),
    ("only white space", "events", b"  \n ", 400, "bad_request", None),
    ("UTF-16", "events", '{"title": "x"}'.encode("utf-16"), 400, "bad_request", None),
    ("1 MB body", "events", ev(description="x" * 1_000_000), 413, "too_large", None),
    ("notice expiry not a date", "notices", {"title": "Kat væk", "expires": "tomorrow"}, 422,
     "invalid", "expires"),
    ("notice related not an id", "notices", {"title": "Kat", "related": "my event"}, 422,
     "invalid", "related"),
    ("notice javascript: link in body", "notices",
     {"title": "Kat", "body": '<a href="javascript:x()">se</a>'}, 422, "invalid", "body"),
    ("notice unknown field", "notices", {"title": "Kat", "start": SOON}, 422, "invalid", "start"),
]  # fmt: skip


def snapshot(client: Client, node_dir: NodeDir) -> tuple[int, bytes]:
    store = client.server.app[STORE]
    db = node_dir.path / "node.json"
    return len(store.items()) + len(store.tombstones()), db.read_bytes() if db.exists() else b""


@pytest.mark.parametrize(("name", "section", "body", "status", "code", "field"), BAD,
                         ids=[row[0] for row in BAD])  # fmt: skip
async def test_bad_payload_refused_and_nothing_stored(
    client: Client,
    node_dir: NodeDir,
    name: str,
    section: str,
    body: Any,
    status: int,
    code: str,
    field: str | None,
) -> None:
    before = snapshot(client, node_dir)
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {**auth(node_dir.token), "Content-Type": "application/json"}
    response = await client.post(f"/api/{section}", data=data, headers=headers)
    assert response.status == status, await response.text()
    error = (await response.json())["error"]
    assert error["code"] == code
    assert error["message"]
    if field is not None:
        assert field in error["fields"], error
        assert error["fields"][field]
    assert snapshot(client, node_dir) == before


# (Content-Type sent, accepted): JSON and its +json forms; anything else is refused.
CONTENT_TYPES = [
    ("application/json", True),
    ("application/json; charset=utf-8", True),
    ("application/merge-patch+json", True),
    ("text/plain", False),
    ("application/x-www-form-urlencoded", False),
    ("multipart/form-data; boundary=x", False),
    ("application/json; charset=latin-1", False),
    ("", False),
]


@pytest.mark.parametrize(("content_type", "accepted"), CONTENT_TYPES)
async def test_only_json_content_types_are_read(
    client: Client, node_dir: NodeDir, content_type: str, accepted: bool
) -> None:
    before = snapshot(client, node_dir)
    headers = {**auth(node_dir.token), "Content-Type": content_type}
    response = await client.post("/api/events", data=json.dumps(GOOD).encode(), headers=headers)
    if accepted:
        assert response.status == 201, await response.text()
        return
    assert response.status == 400, await response.text()
    error = (await response.json())["error"]
    assert error["code"] == "bad_request" and "application/json" in error["message"]
    assert snapshot(client, node_dir) == before


async def test_brackets_and_escapes_inside_text_are_fine(client: Client, node_dir: NodeDir) -> None:
    title = '[[[[[[[[[[[[ {{{{{{{{{{{{ \\" \U0001f384'  # deep-looking, an escape, an emoji
    body = json.dumps({**GOOD, "title": title}).encode()  # ensure_ascii: a surrogate pair
    headers = {**auth(node_dir.token), "Content-Type": "application/json"}
    response = await client.post("/api/events", data=body, headers=headers)
    assert response.status == 201, await response.text()
    assert (await response.json())["title"] == title


async def test_malformed_json_is_explained_in_danish(client: Client, node_dir: NodeDir) -> None:
    headers = {**auth(node_dir.token), "Content-Type": "application/json"}
    response = await client.post("/api/events", data=b'{"title": "\\ud800"}', headers=headers)
    assert response.status == 400
    assert "surrogattegn" in (await response.json())["error"]["message"]


async def test_patch_refuses_malformed_json_and_keeps_the_entry(
    client: Client, node_dir: NodeDir
) -> None:
    created = await client.post("/api/events", json=GOOD, headers=auth(node_dir.token))
    path = created.headers["Location"]
    before = snapshot(client, node_dir)
    headers = {**auth(node_dir.token), "Content-Type": "application/json"}
    for body in (b'{"title": "\\ud83d"}', b"[" * 5000 + b"]" * 5000, b'{"title": 1e400}'):
        response = await client.patch(path, data=body, headers=headers)
        assert response.status == 400, await response.text()
        assert (await response.json())["error"]["code"] == "bad_request"
    assert snapshot(client, node_dir) == before
    assert (await (await client.get(path, headers=auth(node_dir.token))).json())["title"] == (
        GOOD["title"]
    )


async def test_chunked_oversize_body_is_413(client: Client, node_dir: NodeDir) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"title": "'
        for _ in range(100):
            yield b"x" * 10_000
        yield b'"}'

    before = snapshot(client, node_dir)
    response = await client.post("/api/events", data=chunks(), headers=auth(node_dir.token))
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "too_large"
    assert snapshot(client, node_dir) == before


async def test_errors_in_danish_by_default_and_english_on_request(
    client: Client, node_dir: NodeDir
) -> None:
    bad = ev(end=f"{SOON}T09:00")
    da = await client.post("/api/events", json=bad, headers=auth(node_dir.token))
    en = await client.post("/api/events", json=bad,
                           headers={**auth(node_dir.token), "Accept-Language": "en"})  # fmt: skip
    da_text = (await da.json())["error"]["fields"]["end"]
    en_text = (await en.json())["error"]["fields"]["end"]
    assert en_text == "The end is before the start."
    assert da_text != en_text and "slut" in da_text.lower()


async def test_patch_with_bad_value_changes_nothing(client: Client, node_dir: NodeDir) -> None:
    created = await client.post("/api/events", json=GOOD, headers=auth(node_dir.token))
    uid = (await created.json())["id"]
    before = snapshot(client, node_dir)
    response = await client.patch(f"/api/events/{uid}", json={"end": f"{SOON}T08:00"},
                                  headers=auth(node_dir.token))  # fmt: skip
    assert response.status == 422
    assert snapshot(client, node_dir) == before


# --- authorisation ----------------------------------------------------------------------------


async def _create(client: Client, token: str) -> str:
    response = await client.post("/api/events", json=GOOD, headers=auth(token))
    assert response.status == 201
    return str((await response.json())["id"])


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer kn_00000000_wrong"}, {"Authorization": "Basic YW5uYTp4"},
     {"Authorization": "Bearer "}],
    ids=["no token", "bad token", "wrong scheme", "empty token"],
)  # fmt: skip
async def test_missing_or_bad_token_is_401(
    client: Client, node_dir: NodeDir, headers: dict[str, str]
) -> None:
    uid = await _create(client, node_dir.token)
    before = snapshot(client, node_dir)
    for method, path in (("POST", "/api/events"), ("PATCH", f"/api/events/{uid}"),
                         ("DELETE", f"/api/events/{uid}"), ("GET", "/api/events")):  # fmt: skip
        response = await client.request(method, path, json={"title": "Hacket"}, headers=headers)
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "unauthorized"
    assert snapshot(client, node_dir) == before


async def test_revoked_token_is_401(node_dir: NodeDir, aiohttp_client: ClientFactory) -> None:
    # Tokens are revoked with the node stopped (the CLI and the server share the data dir lock).
    token_id = node_dir.token.split("_")[1]
    assert "revoked" in ok(["token", "revoke", str(node_dir.path), token_id])
    client = await aiohttp_client(create_app(node_dir.config(), housekeeping=False))
    headers = {**auth(node_dir.token), "Accept-Language": "en"}
    response = await client.post("/api/events", json=GOOD, headers=headers)
    assert response.status == 401
    assert (await response.json())["error"]["message"] == "The API token has been revoked."
    assert client.server.app[STORE].items() == []
    still = await client.post("/api/events", json=GOOD, headers=auth(node_dir.other_token))
    assert still.status == 201


async def test_other_associations_entry_is_403(client: Client, node_dir: NodeDir) -> None:
    uid = await _create(client, node_dir.token)
    before = snapshot(client, node_dir)
    other = auth(node_dir.other_token)
    patched = await client.patch(f"/api/events/{uid}", json={"title": "Kirkens nu"}, headers=other)
    assert patched.status == 403
    assert (await patched.json())["error"]["code"] == "forbidden"
    deleted = await client.delete(f"/api/events/{uid}", headers=other)
    assert deleted.status == 403
    assert snapshot(client, node_dir) == before
    # An admin may change any association's entry; the organiser stays the original one.
    admin = await client.patch(f"/api/events/{uid}", json={"title": "Rettet"},
                               headers=auth(node_dir.admin_token))  # fmt: skip
    body = await admin.json()
    assert admin.status == 200 and body["title"] == "Rettet" and body["organizer"] == "Østerby IF"


async def test_unknown_entry_is_404(client: Client, node_dir: NodeDir) -> None:
    missing = "0b7e9f2e-1111-4222-8333-444455556666"
    response = await client.patch(f"/api/events/{missing}", json={"title": "x"},
                                  headers=auth(node_dir.token))  # fmt: skip
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "not_found"
