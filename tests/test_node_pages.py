"""The node's pages through the real server: public pages, login, CSRF, the login rate limit,
and the volunteer forms (create, re-render on error, cancel, postpone, delete).
The preview, publish, confirmation and undo steps are in test_node_pages_flow.py."""

from __future__ import annotations

import asyncio
import html
import ipaddress
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import icalendar
import pytest
from aiohttp.test_utils import TestClient
from clock_support import COPENHAGEN, hostile_dates, local_today
from node_support import PASSWORD, NodeDir, auth, make_node

from node.app import create_app
from node.keys import STORE

Client = TestClient[Any, Any]
ClientFactory = Callable[..., Coroutine[Any, Any, Client]]
SOON = local_today() + timedelta(days=7)


@pytest.fixture
def tomorrow(now: datetime) -> date:
    """Return tomorrow's date in Copenhagen, seen from the test's instant."""
    return now.astimezone(COPENHAGEN).date() + timedelta(days=1)


NO_PLACE = {"place": "", "place_name": "", "place_street": "", "place_postcode": "",
            "place_locality": ""}  # fmt: skip
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
HIDDEN_RE = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


@pytest.fixture
def node_dir(tmp_path: Path) -> NodeDir:
    return make_node(tmp_path)


@pytest.fixture
async def client(node_dir: NodeDir, aiohttp_client: ClientFactory) -> AsyncIterator[Client]:
    # Plain http here so the test client sends the cookie back (https makes it Secure).
    config = replace(node_dir.config(), public_url="http://osterby.test")
    yield await aiohttp_client(create_app(config, housekeeping=False))


async def csrf(client: Client, path: str) -> str:
    response = await client.get(path)
    assert response.status == 200, path
    match = CSRF_RE.search(await response.text())
    assert match, path
    return match.group(1)


async def login(client: Client, username: str, password: str = PASSWORD) -> int:
    token = await csrf(client, "/login")
    form = {"csrf_token": token, "username": username, "password": password}
    response = await client.post("/login", data=form, allow_redirects=False)
    return response.status


def hidden_fields(page: str) -> dict[str, str]:
    """Return the hidden inputs of a page (the preview carries the typed values in them)."""
    return {name: html.unescape(value) for name, value in HIDDEN_RE.findall(page)}


async def publish(client: Client, path: str, form: dict[str, str]) -> Any:
    """Send a form to its preview, check the preview, then press "Publish" (no redirects)."""
    preview = await client.post(path, data=form)
    page = await preview.text()
    assert preview.status == 200 and 'value="publish"' in page, page
    fields = hidden_fields(page)
    return await client.post(path, data={**fields, "action": "publish"}, allow_redirects=False)


def event_form(token: str, **changes: str) -> dict[str, str]:
    form = {
        "csrf_token": token,
        "title": "Juletræstænding",
        "date": str(SOON),
        "start_time": "16:00",
        "end_time": "18:00",
        "place": "__new__",
        "place_name": "Gadekæret",
        "place_street": "Bygaden",
        "place_postcode": "8882",
        "place_locality": "Østerby",
        "category": "community",
        "description": "Vi tænder træet.",
    }
    return {**form, **changes}


async def test_login_sets_a_safe_session_cookie(
    node_dir: NodeDir, aiohttp_client: ClientFactory
) -> None:
    client = await aiohttp_client(create_app(node_dir.config(), housekeeping=False))
    response = await client.get("/login")  # the public URL is https: the cookie is Secure
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("klynge_session=")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie


async def test_login_replaces_the_session(client: Client) -> None:
    token = await csrf(client, "/login")
    before = client.session.cookie_jar.filter_cookies(client.make_url("/"))["klynge_session"]
    form = {"csrf_token": token, "username": "bo", "password": PASSWORD}
    response = await client.post("/login", data=form, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == "/admin"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    after = client.session.cookie_jar.filter_cookies(client.make_url("/"))["klynge_session"]
    assert after.value != before.value  # a new session at login: no session fixation
    token = await csrf(client, "/admin")
    response = await client.post("/logout", data={"csrf_token": token}, allow_redirects=False)
    assert response.status == 303
    assert (await client.get("/admin", allow_redirects=False)).status == 303


async def test_admin_requires_login(client: Client) -> None:
    response = await client.get("/admin", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"].startswith("/login?next=")


async def test_wrong_password_then_right(client: Client) -> None:
    assert await login(client, "bo", "wrong password!") == 401
    assert await login(client, "nobody", PASSWORD) == 401
    assert await login(client, "bo") == 303
    page = await client.get("/admin")
    assert "Østerby IF" in await page.text()


async def test_too_many_failed_logins_are_refused(client: Client) -> None:
    for _ in range(5):
        assert await login(client, "bo", "wrong password!") == 401
    # Now even the right password is refused for this user until the window passes.
    assert await login(client, "bo") == 429
    page = await client.get("/admin", allow_redirects=False)
    assert page.status == 303  # still not logged in


async def test_a_burst_of_parallel_guesses_gets_no_more_tries_than_the_limit(
    client: Client,
) -> None:
    token = await csrf(client, "/login")

    async def guess(n: int) -> int:
        form = {"csrf_token": token, "username": "bo", "password": f"wrong password {n}"}
        response = await client.post("/login", data=form, allow_redirects=False)
        return response.status

    # All sent at once: none of the first may still be checking its password when the next
    # asks whether the user is blocked, or the limit of 5 only counts finished attempts.
    statuses = await asyncio.gather(*(guess(n) for n in range(20)))
    assert sorted(statuses) == [401] * 5 + [429] * 15
    assert await login(client, "bo") == 429


async def test_good_logins_do_not_use_up_the_address_limit(
    node_dir: NodeDir, aiohttp_client: ClientFactory
) -> None:
    config = replace(node_dir.config(), public_url="http://osterby.test", login_limit_address=3)
    client = await aiohttp_client(create_app(config, housekeeping=False))
    for _ in range(4):  # a shared office address logging in often
        assert await login(client, "carl") == 303
    assert await login(client, "x1", "wrong password!") == 401


async def test_failed_logins_limited_per_address(
    node_dir: NodeDir, aiohttp_client: ClientFactory
) -> None:
    config = replace(node_dir.config(), public_url="http://osterby.test", login_limit_address=3)
    client = await aiohttp_client(create_app(config, housekeeping=False))
    for name in ("x1", "x2", "x3"):
        assert await login(client, name, "wrong password!") == 401
    assert await login(client, "carl") == 429


async def test_address_limit_uses_the_proxys_forwarded_address(
    node_dir: NodeDir, aiohttp_client: ClientFactory
) -> None:
    # The test client connects from 127.0.0.1, listed as the proxy (test_node_sessions.py has
    # a direct client whose header is ignored).
    proxy = (ipaddress.ip_network("127.0.0.1"),)
    config = replace(node_dir.config(), public_url="http://osterby.test", login_limit_address=2,
                     trusted_proxies=proxy)  # fmt: skip
    client = await aiohttp_client(create_app(config, housekeeping=False))

    async def attempt(name: str, password: str, forwarded: str) -> int:
        token = await csrf(client, "/login")
        form = {"csrf_token": token, "username": name, "password": password}
        headers = {"X-Forwarded-For": forwarded}
        response = await client.post("/login", data=form, headers=headers, allow_redirects=False)
        return response.status

    assert await attempt("x1", "wrong password!", "198.51.100.7") == 401
    assert await attempt("x2", "wrong password!", "10.0.0.1, 198.51.100.7") == 401
    assert await attempt("carl", PASSWORD, "198.51.100.7") == 429  # that address is blocked
    assert await attempt("carl", PASSWORD, "203.0.113.9") == 303  # another resident is not


async def test_form_post_without_csrf_is_refused(client: Client) -> None:
    assert await login(client, "bo") == 303
    form = event_form("")
    del form["csrf_token"]
    response = await client.post("/admin/events/new", data=form, allow_redirects=False)
    assert response.status == 403
    assert client.server.app[STORE].items() == []
    forged = await client.post("/admin/events/new", data=event_form("forged"))
    assert forged.status == 403
    assert client.server.app[STORE].items() == []


async def test_create_event_by_form_then_cancel_postpone_delete(client: Client) -> None:
    assert await login(client, "bo") == 303
    token = await csrf(client, "/admin/events/new")
    response = await publish(client, "/admin/events/new", event_form(token))
    assert response.status == 303
    [event] = client.server.app[STORE].events()
    assert event.title == "Juletræstænding" and event.organizer == "Østerby IF"
    assert event.place is not None and event.place.name == "Gadekæret"
    assert event.start.isoformat().startswith(f"{SOON}T16:00")  # type: ignore[union-attr]
    uid = event.id.removeprefix("urn:uuid:")
    listing = await (await client.get("/admin")).text()
    assert "Juletræstænding" in listing and f"/admin/events/{uid}/cancel" in listing

    for action, status, sequence in (("cancel", "cancelled", 1), ("postpone", "postponed", 2)):
        token = await csrf(client, "/admin")
        response = await client.post(f"/admin/events/{uid}/{action}", data={"csrf_token": token},
                                     allow_redirects=False)  # fmt: skip
        assert response.status == 303
        [changed] = client.server.app[STORE].events()
        assert (changed.status, changed.sequence) == (status, sequence)
    feed = await (await client.get("/feed.atom")).text()
    assert "<klynge:status>postponed</klynge:status>" in feed

    token = await csrf(client, "/admin")
    response = await client.post(f"/admin/events/{uid}/delete", data={"csrf_token": token},
                                 allow_redirects=False)  # fmt: skip
    assert response.status == 303
    assert client.server.app[STORE].events() == []
    feed = await (await client.get("/feed.atom")).text()
    assert f'ref="urn:uuid:{uid}"' in feed


@hostile_dates
async def test_weekly_repeat_and_edit_form_roundtrip(client: Client, tomorrow: date) -> None:
    assert await login(client, "bo") == 303
    token = await csrf(client, "/admin/events/new")
    until = tomorrow + timedelta(weeks=6)
    form = event_form(token, date=str(tomorrow), repeat_until=str(until), **NO_PLACE)
    assert (await publish(client, "/admin/events/new", form)).status == 303
    [event] = client.server.app[STORE].events()
    assert str(event.rrule).startswith("FREQ=WEEKLY;UNTIL=") and event.place is None
    uid = event.id.removeprefix("urn:uuid:")
    page = await (await client.get(f"/admin/events/{uid}/edit")).text()
    assert f'value="{until}"' in page and f'value="{tomorrow}"' in page
    token = CSRF_RE.search(page).group(1)  # type: ignore[union-attr]
    form = event_form(
        token, date=str(tomorrow), repeat_until=str(until), title="Gymnastik", **NO_PLACE
    )
    form["status"] = "confirmed"
    response = await publish(client, f"/admin/events/{uid}/edit", form)
    assert response.status == 303
    [edited] = client.server.app[STORE].events()
    assert edited.title == "Gymnastik" and edited.rrule == event.rrule
    assert edited.sequence == 0  # only the title changed


async def test_validation_error_rerenders_form_with_input(client: Client) -> None:
    assert await login(client, "bo") == 303
    token = await csrf(client, "/admin/events/new")
    form = event_form(token, title="Min <b>fest</b>", end_time="15:00")
    response = await client.post("/admin/events/new", data=form)
    assert response.status == 422
    page = await response.text()
    assert 'value="Min &lt;b&gt;fest&lt;/b&gt;"' in page  # what was typed, escaped
    assert 'id="f-end_time-error"' in page
    assert "Slutningen er før starten." in page
    assert client.server.app[STORE].items() == []


@hostile_dates
async def test_notice_by_form_with_expiry(client: Client, tomorrow: date) -> None:
    assert await login(client, "bo") == 303
    token = await csrf(client, "/admin/notices/new")
    form = {"csrf_token": token, "title": "Kat bortløbet", "body": "Grå og venlig.",
            "expires": str(tomorrow), "category": "lost-found"}  # fmt: skip
    response = await publish(client, "/admin/notices/new", form)
    assert response.status == 303
    [notice] = client.server.app[STORE].notices()
    assert notice.expires is not None and notice.expires.astimezone(
        COPENHAGEN
    ).date() == tomorrow + timedelta(days=1)
    assert notice.expires.astimezone(COPENHAGEN).hour == 0  # shown all of its last day
    page = await (await client.get("/")).text()
    assert "Kat bortløbet" in page
    uid = notice.id.removeprefix("urn:uuid:")
    assert (await client.get(f"/notices/{uid}")).status == 200


async def test_form_errors_on_dates_are_in_danish_and_say_what_to_do(client: Client) -> None:
    assert await login(client, "bo") == 303
    token = await csrf(client, "/admin/notices/new")
    # A browser without a date picker lets people type the Danish way.
    form = {"csrf_token": token, "title": "Kat bortløbet", "expires": "1.12.2026"}
    page = await (await client.post("/admin/notices/new", data=form)).text()
    assert "Det er ikke en gyldig dato (ÅÅÅÅ-MM-DD)." in page
    token = await csrf(client, "/admin/events/new")
    before = str(SOON - timedelta(days=7))
    form = event_form(token, **NO_PLACE, repeat_until=before)
    response = await client.post("/admin/events/new", data=form)
    page = await response.text()
    assert response.status == 422 and 'id="f-repeat_until-error"' in page
    assert "Sidste gang kan ikke være før den første dato; vælg en senere dag." in page
    assert "FREQ=WEEKLY" not in page


async def test_a_failed_write_says_so_in_danish_and_is_logged(
    client: Client, node_dir: NodeDir, caplog: pytest.LogCaptureFixture
) -> None:
    assert await login(client, "bo") == 303
    token = await csrf(client, "/admin/events/new")
    preview = await client.post("/admin/events/new", data=event_form(token, **NO_PLACE))
    fields = {**hidden_fields(await preview.text()), "action": "publish"}
    moved = node_dir.path.with_name("moved")
    node_dir.path.rename(moved)  # the data directory is gone: the write fails
    try:
        with caplog.at_level(logging.ERROR, logger="klynge.web"):
            response = await client.post("/admin/events/new", data=fields)
            page = await response.text()
    finally:
        moved.rename(node_dir.path)
    assert response.status == 500
    assert "Intet blev gemt" in page and "administrator" in page
    assert "cannot write" in caplog.text and str(node_dir.path / "node.json") in caplog.text
    assert client.server.app[STORE].items() == []
    again = await client.post("/admin/events/new", data=fields, allow_redirects=False)
    assert again.status == 303 and len(client.server.app[STORE].items()) == 1


async def test_other_association_cannot_edit_by_form(client: Client, node_dir: NodeDir) -> None:
    created = await client.post("/api/events", headers=auth(node_dir.token),
                                json={"title": "IF fest", "start": f"{SOON}T20:00"})  # fmt: skip
    uid = (await created.json())["id"]
    assert await login(client, "carl") == 303
    assert (await client.get(f"/admin/events/{uid}/edit")).status == 403
    token = await csrf(client, "/admin")
    response = await client.post(f"/admin/events/{uid}/delete", data={"csrf_token": token})
    assert response.status == 403
    assert len(client.server.app[STORE].events()) == 1
    assert "IF fest" not in await (await client.get("/admin")).text()


async def test_admin_pages_only_for_admins(client: Client) -> None:
    assert await login(client, "bo") == 303
    for path in ("/admin/users", "/admin/places", "/admin/status"):
        assert (await client.get(path)).status == 403
    assert await login(client, "anna") == 303
    token = await csrf(client, "/admin/places")
    form = {"csrf_token": token, "name": "Kirken", "street": "Kirkevej 1", "postcode": "8882",
            "locality": "Østerby", "lat": "56,19", "lon": "9.56"}  # fmt: skip
    assert (await client.post("/admin/places", data=form)).status == 200
    [place] = client.server.app[STORE].places()
    assert (place.name, place.lat) == ("Kirken", 56.19)
    token = await csrf(client, "/admin/users")
    form = {"csrf_token": token, "username": "dora", "association": "Østerby Skole",
            "password": "short"}  # fmt: skip
    response = await client.post("/admin/users", data=form)
    assert response.status == 422 and client.server.app[STORE].user("dora") is None
    form["password"] = "long enough password"
    assert (await client.post("/admin/users", data=form)).status == 200
    assert client.server.app[STORE].user("dora") is not None
    assert await login(client, "dora", "long enough password") == 303


async def test_event_page_json_ld_and_ics(client: Client, node_dir: NodeDir) -> None:
    payload = {"title": "Foredrag </script><script>alert(1)</script>", "start": f"{SOON}T19:30",
               "location": {"name": "Skolen", "street": "Skolevej 2", "postcode": "8882",
                            "locality": "Østerby"}, "status": "cancelled"}  # fmt: skip
    created = await client.post("/api/events", json=payload, headers=auth(node_dir.token))
    uid = (await created.json())["id"]
    page = await (await client.get(f"/events/{uid}")).text()
    block = re.search(r'<script type="application/ld\+json">(.*?)</script>', page, re.S)
    assert block is not None
    assert "<" not in block.group(1)  # `</script>` cannot end the element early
    data = json.loads(block.group(1))
    assert data["@type"] == "Event" and data["name"] == payload["title"]
    assert data["eventStatus"] == "https://schema.org/EventCancelled"
    assert data["location"]["address"]["addressLocality"] == "Østerby"
    assert "<script>alert" not in page
    response = await client.get(f"/events/{uid}.ics")
    assert response.content_type == "text/calendar"
    [vevent] = icalendar.Calendar.from_ical(await response.read()).walk("VEVENT")
    assert str(vevent["uid"]) == f"urn:uuid:{uid}" and str(vevent["status"]) == "CANCELLED"
    assert (await client.get("/events/0b7e9f2e-1111-4222-8333-444455556666")).status == 404


@hostile_dates
async def test_village_page_puts_late_and_early_events_under_their_local_day(
    client: Client, node_dir: NodeDir, tomorrow: date
) -> None:
    today = tomorrow - timedelta(days=1)
    for title, start in (("Midnatsbad", f"{today}T23:45"), ("Morgenløb", f"{tomorrow}T00:15")):
        response = await client.post("/api/events", headers=auth(node_dir.token),
                                     json={"title": title, "start": start})  # fmt: skip
        assert response.status == 201, await response.text()
    page = await (await client.get("/")).text()
    today_part = page[page.index(f'id="day-{today}"') : page.index(f'id="day-{tomorrow}"')]
    assert "I dag," in today_part and "Midnatsbad" in today_part and ">23:45<" in today_part
    tomorrow_part = page[page.index(f'id="day-{tomorrow}"') :]
    assert "I morgen," in tomorrow_part and "Morgenløb" in tomorrow_part
    assert "Midnatsbad" not in tomorrow_part


@hostile_dates
async def test_village_page_lists_upcoming_and_subscribe_links(
    client: Client, node_dir: NodeDir, tomorrow: date
) -> None:
    await client.post("/api/events", headers=auth(node_dir.token),
                      json={"title": "Høstmarked", "start": f"{tomorrow}T10:00"})  # fmt: skip
    page = await (await client.get("/")).text()
    assert "Høstmarked" in page
    assert "webcal://osterby.test/calendar.ics" in page
    assert 'href="http://osterby.test/feed.atom"' in page
    english_phone = await (await client.get("/", headers={"Accept-Language": "en"})).text()
    assert "Subscribe" not in english_phone, "the node's configured Danish wins (issue 16)"
    english = await (await client.get("/?lang=en")).text()
    assert "Subscribe" in english


async def test_tokens_page_makes_and_revokes_a_token(client: Client) -> None:
    assert await login(client, "bo") == 303
    token = await csrf(client, "/admin/tokens")
    page = await (await client.post("/admin/tokens", data={"csrf_token": token,
                                                          "action": "new"})).text()  # fmt: skip
    shown = re.search(r'<code id="new-token">([^<]+)</code>', page)
    assert shown is not None
    secret = shown.group(1)
    created = await client.post("/api/events", headers=auth(secret),
                                json={"title": "Via nøgle", "start": f"{SOON}T12:00"})  # fmt: skip
    assert created.status == 201
    token_id = secret.split("_")[1]
    again = await (await client.get("/admin/tokens")).text()
    assert token_id in again and secret not in again  # shown once only
    response = await client.post("/admin/tokens", data={"csrf_token": token, "revoke": token_id},
                                 allow_redirects=False)  # fmt: skip
    assert response.status == 303
    refused = await client.post("/api/events", headers=auth(secret),
                                json={"title": "Igen", "start": f"{SOON}T12:00"})  # fmt: skip
    assert refused.status == 401
    # Another user's token cannot be revoked by bo.
    anna_token = next(t for t in client.server.app[STORE].tokens() if t.username == "anna")
    response = await client.post("/admin/tokens", data={"csrf_token": token,
                                                        "revoke": anna_token.id})  # fmt: skip
    assert response.status == 403
    assert not client.server.app[STORE].token(anna_token.id).revoked  # type: ignore[union-attr]
