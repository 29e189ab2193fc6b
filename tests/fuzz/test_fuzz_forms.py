"""Fuzzing the volunteer forms through the real node app, logged in, with a valid CSRF token.

Property: every form is previewed (200), published (303), shown again with its errors (422) or
refused in words (400), within the time bound, never a 500; and a published entry leaves the
feed, the calendar and the pages building.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from fuzz_support import budget, form_text, hard_limit, rrule_text
from hypothesis import event, example, given
from hypothesis import strategies as st
from node_support import PASSWORD, NodeDir, auth, make_node

from node.app import create_app
from node.keys import STORE

pytestmark = pytest.mark.fuzz

Client = TestClient[Any, Any]
ClientFactory = Callable[..., Coroutine[Any, Any, Client]]
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
ERROR_RE = re.compile(r'class="field-error" id="f-([a-z_]+)-error"')
ANSWERS = {200: "shown", 303: "published", 400: "refused", 413: "too large", 422: "errors shown"}


@pytest.fixture
def node_dir(tmp_path: Path) -> NodeDir:
    return make_node(tmp_path)


@pytest.fixture
async def volunteer(node_dir: NodeDir, aiohttp_client: ClientFactory) -> AsyncIterator[Client]:
    """A test client logged in as bo (Østerby IF); plain http so the cookie comes back."""
    config = replace(node_dir.config(), public_url="http://osterby.test")
    client = await aiohttp_client(create_app(config, housekeeping=False))
    token = await csrf(client, "/login")
    form = {"csrf_token": token, "username": "bo", "password": PASSWORD}
    response = await client.post("/login", data=form, allow_redirects=False)
    assert response.status == 303
    yield client


async def csrf(client: Client, path: str) -> str:
    response = await client.get(path)
    assert response.status == 200, path
    match = CSRF_RE.search(await response.text())
    assert match, path
    return match.group(1)


# Mostly days and times a volunteer types, so that forms get past the first checks.
_DAY = st.sampled_from(["2026-12-24"] * 12 + ["2027-03-28", "2027-10-31", "0001-01-01",
                        "9999-12-31", "1900-01-01", "2200-12-31", "2026-02-30", "24-12-2026",
                        ""])  # fmt: skip
_TIME = st.sampled_from(["18:00"] * 12 + ["02:30", "23:59", "24:00", "7", "18.00", "", "18:00:00"])


def _maybe(value: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(*[value] * 9, form_text(40))


EVENT_FORMS = st.fixed_dictionaries(
    {
        "title": _maybe(st.just("Juletræstænding")),
        "date": _maybe(_DAY),
        "start_time": _maybe(_TIME),
        "place_name": _maybe(st.just("Gadekæret")),
    },
    optional={
        "end_date": _maybe(_DAY),
        "end_time": _maybe(_TIME),
        "all_day": st.sampled_from(["1", "on", "true", "", "yes"]),
        "place": st.sampled_from(["__new__", "__new__", "", "", "Forsamlingshuset", "Ukendt"]),
        "place_street": _maybe(st.just("Bygaden 1")),
        "place_postcode": _maybe(st.just("8882")),
        "place_locality": _maybe(st.just("Østerby")),
        "place_lat": _maybe(st.sampled_from(["55,64"] * 4 + ["55.64", "91", "-0", "1e999", "nan"])),
        "place_lon": _maybe(st.sampled_from(["11,82"] * 4 + ["181", "inf", ""])),
        "category": _maybe(st.sampled_from(["community", "sport", ""])),
        "description": _maybe(st.just("Vi tænder træet.")),
        "url": _maybe(st.just("https://osterby.example.dk/jul")),
        "repeat_until": st.one_of(*[st.just("")] * 3, _DAY, form_text(20)),
        "rrule": st.one_of(*[st.just("")] * 3, rrule_text(), form_text(20)),
        "status": _maybe(st.sampled_from(["confirmed", "cancelled", "postponed"])),
        "draft": st.sampled_from(["", "0b9e4a52-7c1d-4e55-9a3b-2f4f0c6d8e11", "x"]),
        "unknown": form_text(20),
    },
)
NOTICE_FORMS = st.fixed_dictionaries(
    {"title": _maybe(st.just("Kat væk"))},
    optional={
        "body": form_text(200),
        "category": _maybe(st.sampled_from(["lost-found", "carpool", ""])),
        "expires": _maybe(_DAY),
        "url": form_text(40),
        "related": st.sampled_from(["", "x", "urn:uuid:0b9e4a52-7c1d-4e55-9a3b-2f4f0c6d8e11"]),
    },
)
ACTIONS = st.sampled_from(["preview", "publish", "publish", "publish", "edit", "", "x"])


async def post_form(client: Client, path: str, form: dict[str, str], action: str) -> Any:
    data = {**form, "csrf_token": await csrf(client, path), "action": action}
    with hard_limit():
        response = await client.post(path, data=data, allow_redirects=False)
    event(ANSWERS.get(response.status, str(response.status)))
    assert response.status in ANSWERS, (response.status, await response.text())
    if response.status != 303:
        page = await response.text()
        assert page.lstrip().startswith("<!doctype html>"), page[:200]
        for name in ERROR_RE.findall(page)[:1]:
            event(f"first error at {name}")
    return response


async def outputs_still_build(client: Client, node_dir: NodeDir) -> None:
    """Fetch every public page and document; then delete bo's entries to keep the store small."""
    store = client.server.app[STORE]
    for path in ("/feed.atom", "/calendar.ics", "/", "/admin"):
        response = await client.get(path)
        assert response.status == 200, (path, await response.text())
    for item in store.items():
        uuid = item.id.removeprefix("urn:uuid:")
        page = await client.get(f"/{item.kind}s/{uuid}")
        assert page.status == 200, await page.text()
        await client.delete(f"/api/{item.kind}s/{uuid}", headers=auth(node_dir.token))


@budget(30)
@given(form=EVENT_FORMS, action=ACTIONS)
@example(form={"title": "Jul", "date": "9999-12-31", "start_time": "23:59"}, action="publish")
async def test_event_forms_are_answered_in_words(
    volunteer: Client, node_dir: NodeDir, form: dict[str, str], action: str
) -> None:
    response = await post_form(volunteer, "/admin/events/new", form, action)
    if response.status == 303:
        await outputs_still_build(volunteer, node_dir)


@budget(30)
@given(form=NOTICE_FORMS, action=ACTIONS)
async def test_notice_forms_are_answered_in_words(
    volunteer: Client, node_dir: NodeDir, form: dict[str, str], action: str
) -> None:
    response = await post_form(volunteer, "/admin/notices/new", form, action)
    if response.status == 303:
        await outputs_still_build(volunteer, node_dir)


@budget(20)
@given(form=EVENT_FORMS, action=ACTIONS)
async def test_event_edits_are_answered_in_words(
    volunteer: Client, node_dir: NodeDir, form: dict[str, str], action: str
) -> None:
    good = {"title": "Loppemarked", "start": "2026-12-24T10:00"}
    created = await volunteer.post("/api/events", json=good, headers=auth(node_dir.token))
    uuid = (await created.json())["id"]
    await post_form(volunteer, f"/admin/events/{uuid}/edit", form, action)
    await outputs_still_build(volunteer, node_dir)
